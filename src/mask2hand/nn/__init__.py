"""The Mask2Hand network: encoder, RefineNet and the end-to-end model (paper section 3.1)."""

from mask2hand.nn.backbone import BACKBONES, build_backbone
from mask2hand.nn.encoder import Encoder, EncoderOutput, decode_root_position, encode_root_position, camera_features
from mask2hand.nn.fold import fold_batch_norms
from mask2hand.nn.model import Mask2HandNet, Mask2HandOutput, NetConfig
from mask2hand.nn.refine import REFINE_HEADS, RefineNet
from mask2hand.hand.lbs import matrix_to_axis_angle
from mask2hand.nn.rotation import matrix_to_rotation_6d, rotation_6d_to_matrix

__all__ = [
    "BACKBONES", "REFINE_HEADS", "Encoder", "EncoderOutput", "Mask2HandNet", "Mask2HandOutput",
    "NetConfig", "RefineNet", "build_backbone", "decode_root_position", "encode_root_position", "camera_features",
    "fold_batch_norms",
    "matrix_to_axis_angle", "matrix_to_rotation_6d", "rotation_6d_to_matrix",
]
