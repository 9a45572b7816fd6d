"""The one exception type that user-caused problems raise."""


class Mask2HandError(Exception):
    """A problem the user can fix: a bad file, a missing model, an invalid mask or setting.

    The message says what is wrong and what to do; the CLI prints it on one line and
    exits with status 2.
    """
