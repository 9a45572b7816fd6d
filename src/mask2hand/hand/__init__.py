"""The parametric hand layer: one interface, two models (the open hand, official MANO)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mask2hand.errors import Mask2HandError
from mask2hand.hand.data import JOINT_NAMES
from mask2hand.hand.params import HandParams

if TYPE_CHECKING:
    from mask2hand.hand.model import HandModel

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
    from mask2hand.hand.model import HandModel

    return HandModel(data, num_pose_pcs=num_pose_pcs, flat_hand_mean=flat_hand_mean)


_MODEL_NAMES = ("HandModel", "HandModelData", "HandOutput", "MANO_TO_FREIHAND")


def __getattr__(name: str):
    # torch is imported with the hand layer on first use, so that HandParams (and the
    # torch-free prediction path that uses it) does not need torch
    if name in _MODEL_NAMES:
        from mask2hand.hand import model

        return getattr(model, name)
    raise AttributeError(f"module 'mask2hand.hand' has no attribute {name!r}")


__all__ = ["HAND_MODELS", "JOINT_NAMES", "HandModel", "HandModelData", "HandOutput", "HandParams", "MANO_TO_FREIHAND",
           "load_hand_model"]
