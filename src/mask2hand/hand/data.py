"""The arrays that define a MANO-compatible hand, and the rig's constants: NumPy only, so that
loading a hand model's data (the open hand's asset, a MANO file) needs no torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mask2hand.errors import Mask2HandError

NUM_RIG_JOINTS = 16
NUM_FINGER_JOINTS = 15
NUM_BETAS = 10

# Rig joints (MANO order: wrist; index, middle, little, ring, thumb, three each)
# followed by the fingertips (thumb, index, middle, ring, little), reordered to the
# FreiHAND / OpenPose order (README, Conventions).
MANO_TO_FREIHAND = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
JOINT_NAMES = ("wrist",
               "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
               "index_mcp", "index_pip", "index_dip", "index_tip",
               "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
               "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
               "little_mcp", "little_pip", "little_dip", "little_tip")
"""The names of the 21 joints of every joint array, in the FreiHAND / OpenPose order (the files'
`joint_names`)."""
SMPLX_MANO_TO_FREIHAND = tuple(MANO_TO_FREIHAND.index(k) for k in range(NUM_RIG_JOINTS))
"""For each of the 16 joints smplx's MANO returns (the rig joints, MANO order: wrist; index, middle,
little, ring, thumb, three each; no fingertips), its index in the FreiHAND order of JOINT_NAMES."""
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)


@dataclass(frozen=True)
class HandModelData:
    """Arrays that define a MANO-compatible right hand. Units: meters, radians.

    v_template (V,3) rest vertices; faces (F,3) int, counter-clockwise seen from
    outside in a right-handed frame; shapedirs (V,3,10); posedirs (V,3,135) driven by
    the flattened (R - I) of the 15 finger joints; joint_regressor (16,V);
    weights (V,16); parents (16,); pose_components (45,45), one component a row, in
    the finger-pose space of 15 joints x 3 axis-angle (MANO joint order);
    pose_mean (45,); fingertip_ids (5,) vertex indices of the thumb, index, middle,
    ring and little fingertips; name and asset_hash identify the model.
    """

    name: str
    asset_hash: str
    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    joint_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    pose_components: np.ndarray
    pose_mean: np.ndarray
    fingertip_ids: np.ndarray

    def validate(self) -> None:
        """Raise Mask2HandError if the arrays do not have MANO's layout."""
        v = self.v_template.shape[0]
        expected = {
            "v_template": (v, 3),
            "shapedirs": (v, 3, NUM_BETAS),
            "posedirs": (v, 3, 9 * NUM_FINGER_JOINTS),
            "joint_regressor": (NUM_RIG_JOINTS, v),
            "weights": (v, NUM_RIG_JOINTS),
            "parents": (NUM_RIG_JOINTS,),
            "pose_components": (3 * NUM_FINGER_JOINTS, 3 * NUM_FINGER_JOINTS),
            "pose_mean": (3 * NUM_FINGER_JOINTS,),
            "fingertip_ids": (5,),
        }
        for field, shape in expected.items():
            got = tuple(getattr(self, field).shape)
            if got != shape:
                raise Mask2HandError(f"hand model '{self.name}': {field} has shape {got}, expected {shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or self.faces.min() < 0 or self.faces.max() >= v:
            raise Mask2HandError(f"hand model '{self.name}': faces must be (F,3) vertex indices below {v}")
        if self.fingertip_ids.min() < 0 or self.fingertip_ids.max() >= v:
            raise Mask2HandError(f"hand model '{self.name}': fingertip ids must be vertex indices below {v}")
