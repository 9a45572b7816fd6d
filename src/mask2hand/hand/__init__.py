"""The parametric hand layer: one interface, two models (the open hand, official MANO)."""

from __future__ import annotations

import os

from mask2hand.errors import Mask2HandError
from mask2hand.hand.model import HandModel, HandModelData, HandOutput, MANO_TO_FREIHAND
from mask2hand.hand.params import HandParams

HAND_MODELS = ("open", "mano")


def load_hand_model(name: str = "open", *, path: str | os.PathLike | None = None, num_pose_pcs: int = 45,
                    flat_hand_mean: bool = True, fingertips: str = "freihand") -> HandModel:
    """A hand layer (torch.nn.Module) for the named model.

    name: "open" (shipped, the default) or "mano" (needs MANO_RIGHT.pkl: `path`, or
    the MANO_RIGHT_PATH environment variable). num_pose_pcs: 1..45 pose-PCA
    components accepted by `forward(pose_pcs=...)`. flat_hand_mean: see HandModel.
    fingertips: which MANO vertices are fingertips (MANO only; see
    mask2hand.hand.mano.MANO_FINGERTIP_SETS).
    """
    if name == "open":
        from mask2hand.hand.open_hand import load_open_hand_data

        data = load_open_hand_data()
    elif name == "mano":
        from mask2hand.hand.mano import load_mano_data

        data = load_mano_data(path, fingertips=fingertips)
    else:
        raise Mask2HandError(f"unknown hand model '{name}'; choose one of {HAND_MODELS}")
    return HandModel(data, num_pose_pcs=num_pose_pcs, flat_hand_mean=flat_hand_mean)


__all__ = ["HAND_MODELS", "HandModel", "HandModelData", "HandOutput", "HandParams", "MANO_TO_FREIHAND", "load_hand_model"]
