"""The Mask2Hand network: encoder, RefineNet and the end-to-end model (paper section 3.1).

The names below are imported (with torch) on first use, so that the package's torch-free
modules, the pretrained registry (mask2hand.nn.pretrained) among them, import without torch.
"""

from __future__ import annotations

import importlib

# name -> the module that defines it
_EXPORTS = {
    "BACKBONES": "mask2hand.nn.backbone", "build_backbone": "mask2hand.nn.backbone",
    "Encoder": "mask2hand.nn.encoder", "EncoderOutput": "mask2hand.nn.encoder",
    "decode_root_position": "mask2hand.nn.encoder", "encode_root_position": "mask2hand.nn.encoder",
    "camera_features": "mask2hand.nn.encoder",
    "fold_batch_norms": "mask2hand.nn.fold",
    "Mask2HandNet": "mask2hand.nn.model", "Mask2HandOutput": "mask2hand.nn.model", "NetConfig": "mask2hand.nn.model",
    "REFINE_HEADS": "mask2hand.nn.refine", "RefineNet": "mask2hand.nn.refine",
    "matrix_to_axis_angle": "mask2hand.hand.lbs",
    "matrix_to_rotation_6d": "mask2hand.nn.rotation", "rotation_6d_to_matrix": "mask2hand.nn.rotation",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mask2hand.nn' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
