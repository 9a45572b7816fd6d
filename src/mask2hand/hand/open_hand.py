"""The open hand model shipped with mask2hand (built by tools/build_open_hand.py)."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np

from mask2hand.errors import Mask2HandError
from mask2hand.hand.data import HandModelData

ASSET_NAME = "open_hand.npz"


def load_open_hand_data() -> HandModelData:
    """The shipped open hand's arrays (right hand, meters)."""
    asset = resources.files("mask2hand.hand") / "assets" / ASSET_NAME
    try:
        raw = asset.read_bytes()
    except FileNotFoundError:
        raise Mask2HandError(f"the open hand asset {ASSET_NAME} is missing from the installation; "
                             "reinstall mask2hand or rebuild it with tools/build_open_hand.py") from None
    import io

    with np.load(io.BytesIO(raw)) as z:
        arrays = {k: z[k] for k in z.files}
    return HandModelData(
        name="open",
        asset_hash=hashlib.sha256(raw).hexdigest(),
        v_template=arrays["v_template"],
        faces=arrays["faces"],
        shapedirs=arrays["shapedirs"],
        posedirs=arrays["posedirs"],
        joint_regressor=arrays["joint_regressor"],
        weights=arrays["weights"],
        parents=arrays["parents"],
        pose_components=arrays["pose_components"],
        pose_mean=arrays["pose_mean"],
        fingertip_ids=arrays["fingertip_ids"],
    )
