"""mask2hand: 3D hand pose and shape from a binary silhouette."""

from mask2hand.errors import Mask2HandError

__version__ = "0.1.0"

__all__ = ["Mask2HandError", "__version__"]
