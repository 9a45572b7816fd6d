"""The exceptions that user-caused problems raise: Mask2HandError and its kinds.

Every message says what is wrong and what to do; the CLI prints it on one line and exits with
status 2. Callers that must tell problems apart catch a kind; the rest catch Mask2HandError.
"""


class Mask2HandError(Exception):
    """A problem the user can fix: a bad file, a missing model, an invalid mask or setting."""


class InputError(Mask2HandError):
    """A mask that cannot be read or holds no usable hand: a missing, damaged or oversized file,
    a photo instead of a silhouette, an empty or all-white mask, a hand too small."""


class CameraError(Mask2HandError):
    """Intrinsics that cannot belong to the image: a malformed K or K file, a focal length that is
    not positive, an implausible field of view or principal point."""


class AnswerError(Mask2HandError):
    """A network answer that cannot be used for this input, e.g. a hand placed behind the camera
    (usually a K that belongs to another image)."""


class ModelFileError(Mask2HandError):
    """A weights, checkpoint, ONNX or MANO file that is missing, damaged, of a newer format, or
    made for another network or hand model."""
