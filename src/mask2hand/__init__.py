"""mask2hand: 3D hand pose and shape from a binary silhouette."""

from mask2hand.errors import Mask2HandError
from mask2hand.version import __version__

__all__ = ["Mask2Hand", "Mask2HandError", "Prediction", "__version__"]


def __getattr__(name: str):
    # Lazy, so that `import mask2hand` (and `mask2hand --help`) does not import torch.
    if name in ("Mask2Hand", "Prediction"):
        from mask2hand.inference import api

        return getattr(api, name)
    raise AttributeError(f"module 'mask2hand' has no attribute {name!r}")
