"""`mask2hand mano convert`: the chumpy-free .npz copy of a MANO file, and smplx's MANO on it.

MANO's licensed file is absent: everything runs on conftest's MANO-format fixtures
(MANO_RIGHT.pkl, and MANO_LEFT.pkl, its mirror image). smplx is no dependency of mask2hand; the
tests that open the copy with it skip where it is not installed.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from mano_fixture import AXIS_ANGLE_MIRROR, X_SIGN, fake_mano_arrays, mirrored_mano_arrays
from mask2hand.cli import main as cli_main
from mask2hand.hand import load_hand_model
from mask2hand.hand.data import SMPLX_MANO_TO_FREIHAND
from mask2hand.hand.mano import MANO_KEYS

SIDES = ("right", "left")


def smplx_mano(npz, **options):
    """smplx's MANO (float64) on a converted file; the test skips without smplx."""
    smplx = pytest.importorskip("smplx", reason="smplx is not installed (pip install smplx): the round trip "
                                                "through smplx's MANO needs it")
    return smplx.MANO(model_path=str(npz), ext="npz", dtype=torch.float64, **options)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, mano_path, mano_left_path) -> dict:
    """side -> (the fixture's .pkl, its converted .npz)."""
    folder = tmp_path_factory.mktemp("converted")
    found = {}
    for side, pkl in zip(SIDES, (mano_path, mano_left_path)):
        npz = folder / f"MANO_{side.upper()}.npz"
        assert cli_main(["mano", "convert", str(pkl), str(npz)]) == 0
        found[side] = (pkl, npz)
    return found


@pytest.mark.parametrize("side", SIDES)
def test_the_copy_holds_the_files_arrays_as_plain_dense_arrays(converted, side):
    arrays = fake_mano_arrays(0)
    if side == "left":
        arrays = mirrored_mano_arrays(arrays)
    with np.load(converted[side][1], allow_pickle=False) as copy:  # plain arrays: no pickle inside
        assert set(copy.files) == set(MANO_KEYS)
        for key in MANO_KEYS:
            assert copy[key].dtype == arrays[key].dtype, key
            np.testing.assert_array_equal(copy[key], arrays[key], err_msg=key)  # J_regressor dense


def test_an_existing_copy_is_kept_unless_overwrite_is_given(mano_path, tmp_path, capsys):
    out = tmp_path / "MANO_RIGHT.npz"
    out.write_bytes(b"the user's file")
    assert cli_main(["mano", "convert", str(mano_path), str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--overwrite" in lines[0] and str(out) in lines[0]
    assert out.read_bytes() == b"the user's file"
    assert cli_main(["mano", "convert", str(mano_path), str(out), "--overwrite"]) == 0
    with np.load(out) as copy:
        assert copy["v_template"].shape == (778, 3)


class _Runs:
    """Pickles as a call of os.system, as a hostile file would."""

    def __reduce__(self):
        import os

        return os.system, ("echo ran",)


@pytest.mark.parametrize("content", [b"not a pickle at all", pickle.dumps({"v_template": np.zeros(3)}),
                                     pickle.dumps({"v_template": _Runs()})])
def test_a_bad_mano_file_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, content):
    source, out = tmp_path / "MANO_RIGHT.pkl", tmp_path / "MANO_RIGHT.npz"
    source.write_bytes(content)
    assert cli_main(["mano", "convert", str(source), str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(source) in lines[0] and "ran" not in captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MANO_RIGHT.pkl"]


def test_the_copy_must_be_an_npz_file(mano_path, tmp_path, capsys):
    assert cli_main(["mano", "convert", str(mano_path), str(tmp_path / "MANO_RIGHT.pkl")]) == 2
    assert ".npz" in capsys.readouterr().err and not (tmp_path / "MANO_RIGHT.pkl").exists()


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("flat_hand_mean", [True, False])
@pytest.mark.parametrize("num_pca_comps", [45, 6])
def test_smplx_on_the_copy_reproduces_the_hand_layer(converted, side, flat_hand_mean, num_pca_comps):
    pkl, npz = converted[side]
    use_pca = num_pca_comps < 45
    mano = smplx_mano(npz, use_pca=use_pca, num_pca_comps=num_pca_comps, flat_hand_mean=flat_hand_mean)
    assert mano.is_rhand == (side == "right")  # smplx reads the side from the file name
    layer = load_hand_model("mano", path=pkl, flat_hand_mean=flat_hand_mean, num_pose_pcs=num_pca_comps).double()
    rng = np.random.default_rng(7)
    params = {name: torch.as_tensor(rng.normal(scale=scale, size=(4, size)))
              for name, scale, size in (("global_orient", 1.0, 3), ("transl", 0.2, 3), ("betas", 1.0, 10),
                                        ("hand_pose", 0.5, num_pca_comps))}
    ours = layer(params["global_orient"], params["transl"], betas=params["betas"],
                 **{"pose_pcs" if use_pca else "hand_pose": params["hand_pose"]})
    theirs = mano(**params)
    vertex_m = float((ours.vertices - theirs.vertices).abs().max())
    joint_m = float((ours.joints[:, list(SMPLX_MANO_TO_FREIHAND)] - theirs.joints).abs().max())
    print(f"{side} flat_hand_mean={flat_hand_mean} pca={num_pca_comps}: vertices {vertex_m:.2e} m, "
          f"16 joints {joint_m:.2e} m (max abs difference)")
    assert theirs.joints.shape == (4, 16, 3)
    # the hand layer keeps the model's arrays in float32 (smplx here: float64): 1e-9 m is their rounding
    assert vertex_m < 1e-7 and joint_m < 1e-7
    np.testing.assert_array_equal(mano.faces, np.load(npz)["f"])


def test_the_left_copy_is_the_mirror_image_of_the_right_one(converted):
    # the left fixture as smplx reads it: the right hand's pose mirrored ((x, -y, -z) per joint)
    # and its translation's x negated give the right hand's vertices with x negated
    right, left = (smplx_mano(converted[side][1], use_pca=False, flat_hand_mean=False) for side in SIDES)
    rng = np.random.default_rng(3)
    go, pose = torch.as_tensor(rng.normal(size=(2, 3))), torch.as_tensor(rng.normal(scale=0.5, size=(2, 45)))
    betas, transl = torch.as_tensor(rng.normal(size=(2, 10))), torch.as_tensor(rng.normal(scale=0.2, size=(2, 3)))
    sign = torch.as_tensor(AXIS_ANGLE_MIRROR)
    a = right(global_orient=go, hand_pose=pose, betas=betas, transl=transl).vertices
    b = left(global_orient=go * sign[:3], hand_pose=pose * sign, betas=betas, transl=transl * torch.as_tensor(X_SIGN))
    # smplx adds 1e-8 to each axis-angle vector before its norm, not mirror-symmetric: 1e-9 m
    assert float((a * torch.as_tensor(X_SIGN) - b.vertices).abs().max()) < 1e-7
