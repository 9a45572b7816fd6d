"""mask2hand: 3D hand pose and shape from a binary silhouette."""

import os

# Idle OpenMP threads sleep instead of spinning: on a busy machine (2 cores shared with other
# work) spinning threads cost milliseconds per parallel operation (fit and hypotheses ran 4 to
# 20 times slower). Every part of mask2hand (the CLI, the Python API) imports this package before
# torch; a value the user set wins. Torch imported before mask2hand keeps its own setting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mask2hand.errors import AnswerError, CameraError, InputError, Mask2HandError, ModelFileError
from mask2hand.version import __version__

__all__ = ["AnswerError", "CameraError", "InputError", "Mask2Hand", "Mask2HandError", "MaskInput", "ModelFileError",
           "Outcome", "Prediction", "__version__"]


def __getattr__(name: str):
    # Lazy, so that `import mask2hand` (and `mask2hand --help`) does not import torch.
    if name in ("Mask2Hand", "MaskInput", "Outcome", "Prediction"):
        from mask2hand.inference import api

        return getattr(api, name)
    raise AttributeError(f"module 'mask2hand' has no attribute {name!r}")
