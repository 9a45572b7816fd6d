"""MANO export: MANO parameters (smplx's convention) fitted to a prediction of the open hand.

The real MANO file is licensed and absent, and conftest's fixture holds random arrays that are no
hand (its bones cannot take a hand's lengths), so accuracy is checked against a stand-in written
here in MANO's file format: the shipped open hand with another topology (a quarter of its
triangles split at their centroids, the vertices shuffled, the fingertips at MANO's vertex ids),
another rest pose, a rest frame turned and its root joint moved off the origin to about where
MANO's is, joints regressed from their 12 nearest vertices (millimetres from the open hand's
joints, as MANO's regressor is), small pose correctives and a random pose PCA and mean.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch
import trimesh

from mano_fixture import AXIS_ANGLE_MIRROR, mirrored_mano_arrays
from mask2hand import Mask2Hand
from mask2hand.errors import Mask2HandError
from mask2hand.export.mano import fit_mano, load_mano_layer, mano_from_prediction, save_mano_files
from mask2hand.hand import load_hand_model
from mask2hand.hand.lbs import axis_angle_to_matrix
from mask2hand.hand.mano import MANO_FINGERTIP_SETS
from mask2hand.hand.data import JOINT_NAMES, MANO_PARENTS, SMPLX_MANO_TO_FREIHAND
from mask2hand.hand.model import HandModel
from mask2hand.hand.open_hand import load_open_hand_data
from mask2hand.inference.mirror import mirror_faces, mirror_points
from mask2hand.version import JSON_SCHEMA_VERSION

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MANO_LIKE_ROOT = np.array([0.095, 0.006, 0.006])  # about where MANO's template has its wrist


def _split_faces(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every fourth triangle (F,3) split into three at its centroid: new faces, and for each new
    vertex the three corners it averages (N,3)."""
    split = np.arange(len(faces)) % 4 == 0
    centre = len(vertices) + np.arange(split.sum())
    a, b, c = faces[split].T
    new_faces = np.concatenate([faces[~split], np.stack([a, b, centre], 1), np.stack([b, c, centre], 1),
                                np.stack([c, a, centre], 1)])
    return new_faces, faces[split]


def open_hand_as_mano(seed: int = 0) -> dict:
    """The stand-in's arrays under the MANO file's names (module docstring)."""
    rng = np.random.default_rng(seed)
    data = load_open_hand_data()
    hand = HandModel(data).double()
    rest_pose = torch.as_tensor(rng.normal(scale=0.25, size=(1, 45)))
    zero = torch.zeros(1, 3, dtype=torch.float64)
    rest = hand(zero, zero, hand_pose=rest_pose).vertices[0].numpy()
    faces, corners = _split_faces(rest, data.faces.astype(np.int64))
    count = len(rest) + len(corners)

    def extend(values: np.ndarray) -> np.ndarray:
        return np.concatenate([values, values[corners].mean(1)])

    order = rng.permutation(count)  # new vertex i is old vertex order[i]
    for new, old in zip(MANO_FINGERTIP_SETS["freihand"], data.fingertip_ids):
        at = int(np.flatnonzero(order == old)[0])
        order[at], order[new] = order[new], order[at]
    vertices = extend(rest)[order]
    joints = data.joint_regressor @ rest
    regressor = np.zeros((16, count))
    for j, joint in enumerate(joints):
        regressor[j, np.argsort(np.linalg.norm(vertices - joint, axis=1))[:12]] = 1 / 12
    turn = axis_angle_to_matrix(torch.tensor([0.3, -0.5, 0.2], dtype=torch.float64)).numpy()
    components, _ = np.linalg.qr(rng.normal(size=(45, 45)))
    return {
        "v_template": vertices @ turn.T + MANO_LIKE_ROOT,
        "f": np.argsort(order)[faces].astype(np.uint32),
        "weights": extend(data.weights)[order],
        "posedirs": rng.normal(scale=5e-5, size=(count, 3, 135)),
        "shapedirs": np.einsum("ij,vjk->vik", turn, extend(data.shapedirs)[order]),
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "kintree_table": np.array([[2**32 - 1, *MANO_PARENTS[1:]], list(range(16))], dtype=np.int64),
        "hands_components": components.T,
        "hands_mean": rng.normal(scale=0.2, size=45),
    }


@pytest.fixture(scope="module")
def hand_like_mano(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mano_export") / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(open_hand_as_mano(), protocol=2))
    return path


@pytest.fixture(scope="module")
def hand_like_mano_left(tmp_path_factory) -> Path:
    """The stand-in's mirror image, as MANO_LEFT.pkl is MANO_RIGHT.pkl's (mano_fixture.mirrored_mano_arrays)."""
    path = tmp_path_factory.mktemp("mano_export_left") / "MANO_LEFT.pkl"
    path.write_bytes(pickle.dumps(mirrored_mano_arrays(open_hand_as_mano()), protocol=2))
    return path


@pytest.fixture(scope="module")
def prediction():
    return Mask2Hand.from_pretrained().predict(str(EXAMPLES / "open_palm.png"))


@pytest.fixture(scope="module")
def exported(prediction, hand_like_mano):
    return mano_from_prediction(prediction, hand_like_mano)


def mano_output(path: Path, params):
    """The MANO layer (flat_hand_mean=True, float32, as a user would load it) posed with the
    exported parameters."""
    layer = load_hand_model("mano", path=path, flat_hand_mean=True)
    tensor = lambda a: torch.as_tensor(a)[None]  # noqa: E731
    return layer(tensor(params.global_orient), tensor(params.transl), hand_pose=tensor(params.hand_pose),
                 betas=tensor(params.betas))


def test_exported_mano_reproduces_the_predicted_joints_and_surface(prediction, exported, hand_like_mano):
    joints = mano_output(hand_like_mano, exported).joints[0].numpy()
    error_mm = np.linalg.norm(joints - prediction.joints, axis=-1).mean() * 1000
    assert error_mm < 2.15  # measured 1.96 mm
    assert exported.joints_residual_mm == pytest.approx(error_mm, abs=0.01)
    assert exported.surface_residual_mm < 1.9  # measured 1.72 mm
    assert exported.fingertips == "freihand" and exported.side == "right" and exported.is_rhand
    shapes = [a.shape for a in (exported.global_orient, exported.hand_pose, exported.betas, exported.transl)]
    assert shapes == [(3,), (45,), (10,), (3,)]


@pytest.mark.slow
def test_the_fit_is_deterministic(prediction, exported, hand_like_mano):
    again = mano_from_prediction(prediction, hand_like_mano)
    for field in ("global_orient", "hand_pose", "betas", "transl"):
        assert np.array_equal(getattr(again, field), getattr(exported, field)), field
    assert again.joints_residual_mm == exported.joints_residual_mm


@pytest.mark.slow
def test_known_mano_parameters_are_recovered_about_the_off_origin_root(hand_like_mano):
    # the target is the stand-in itself, posed: the fit must find its transl, which is only right
    # if global_orient turns about the betas-dependent rest root joint (far from the origin here)
    layer = load_mano_layer(hand_like_mano)
    rng = np.random.default_rng(3)
    truth = {"global_orient": torch.tensor([[2.0, -0.7, 0.9]], dtype=torch.float64),
             "transl": torch.tensor([[0.03, -0.02, 0.45]], dtype=torch.float64),
             "hand_pose": torch.as_tensor(rng.normal(scale=0.3, size=(1, 45))),
             "betas": torch.as_tensor(rng.normal(scale=1.0, size=(1, 10)))}
    target = layer(**truth)
    fitted = fit_mano(layer, target.vertices[0].numpy(), layer.faces.numpy(), target.joints[0].numpy())
    # the betas prior costs a little: measured 0.42 mm (joints) and 0.53 mm (surface)
    assert fitted.joints_residual_mm < 0.46 and fitted.surface_residual_mm < 0.58
    assert np.abs(fitted.transl - truth["transl"][0].numpy()).max() < 2e-3
    assert np.linalg.norm(target.rest_root[0].numpy()) > 0.05  # where smplx's transl convention matters


@pytest.mark.slow
def test_a_left_hand_exports_the_mirrored_right_hand(prediction, exported, hand_like_mano):
    left = dataclasses.replace(prediction, side="left", vertices=mirror_points(prediction.vertices),
                               joints=mirror_points(prediction.joints), faces=mirror_faces(prediction.faces))
    params = mano_from_prediction(left, hand_like_mano)
    assert params.side == "left" and params.is_rhand and "mirrored" in params.to_dict()["frame"]
    for field in ("global_orient", "hand_pose", "betas", "transl"):
        np.testing.assert_allclose(getattr(params, field), getattr(exported, field), atol=1e-3)


@pytest.mark.slow
def test_a_left_hand_with_mano_left_gets_mano_left_parameters_in_the_input_camera(
        prediction, exported, hand_like_mano, hand_like_mano_left):
    # the left hand is the right one mirrored, and MANO_LEFT is MANO_RIGHT mirrored: the left fit is
    # the right fit mirrored (axis-angle (x, -y, -z) per joint, transl's x negated, betas kept)
    left = dataclasses.replace(prediction, side="left", vertices=mirror_points(prediction.vertices),
                               joints=mirror_points(prediction.joints), faces=mirror_faces(prediction.faces))
    params = mano_from_prediction(left, hand_like_mano, mano_left_path=hand_like_mano_left)
    assert params.side == "left" and not params.is_rhand
    assert params.to_dict()["frame"] == "input camera" and "is_rhand=False" in params.to_dict()["convention"]
    np.testing.assert_allclose(params.global_orient, exported.global_orient * AXIS_ANGLE_MIRROR[:3], atol=1e-3)
    np.testing.assert_allclose(params.hand_pose, exported.hand_pose * AXIS_ANGLE_MIRROR, atol=1e-3)
    np.testing.assert_allclose(params.betas, exported.betas, atol=1e-3)
    np.testing.assert_allclose(params.transl, mirror_points(exported.transl), atol=1e-5)
    np.testing.assert_allclose(params.vertices, mirror_points(exported.vertices), atol=1e-5)
    # and MANO_LEFT's layer, as a user loads it, gives the left hand in the input camera
    joints = mano_output(hand_like_mano_left, params).joints[0].numpy()
    assert np.linalg.norm(joints - left.joints, axis=-1).mean() * 1000 == pytest.approx(params.joints_residual_mm,
                                                                                      abs=0.01)


def test_the_json_and_the_mano_mesh_are_written_together(exported, hand_like_mano, tmp_path):
    paths = save_mano_files(exported, tmp_path, "open_palm")
    assert paths == {"mano": tmp_path / "open_palm_mano.json", "mano_mesh": tmp_path / "open_palm_mano.obj"}
    written = json.loads(paths["mano"].read_text())
    assert set(written) == {"schema_version", "convention", "side", "is_rhand", "frame", "global_orient",
                            "hand_pose", "betas", "transl", "fingertips", "fingertip_vertices", "smplx_joints",
                            "joints_residual_mm", "surface_residual_mm", "mano_sha256"}
    assert written["schema_version"] == JSON_SCHEMA_VERSION and written["is_rhand"] is True
    assert [len(written[k]) for k in ("global_orient", "hand_pose", "betas", "transl")] == [3, 45, 10, 3]
    assert written["fingertip_vertices"] == list(MANO_FINGERTIP_SETS["freihand"])
    np.testing.assert_allclose(written["hand_pose"], exported.hand_pose)
    # smplx's 16 joints: the wrist, then index, middle, little, ring, thumb from base to last knuckle
    smplx_joints = written["smplx_joints"]
    assert smplx_joints["names"][:4] == ["wrist", "index_mcp", "index_pip", "index_dip"]
    assert smplx_joints["names"][7] == "little_mcp" and smplx_joints["names"][13:] == ["thumb_cmc", "thumb_mcp",
                                                                                        "thumb_ip"]
    assert [JOINT_NAMES[i] for i in smplx_joints["freihand_index"]] == smplx_joints["names"]
    assert not any(name.endswith("_tip") for name in smplx_joints["names"])
    # the OBJ is MANO's mesh for the parameters as a user's MANO layer poses them
    mesh = trimesh.load(paths["mano_mesh"], process=False)
    layer = load_mano_layer(hand_like_mano)
    np.testing.assert_array_equal(mesh.faces, layer.faces.numpy())
    np.testing.assert_allclose(mesh.vertices, mano_output(hand_like_mano, exported).vertices[0].numpy(), atol=1e-6)
    assert not list(tmp_path.glob("*.tmp*"))


def test_smplx_poses_the_mano_mesh_from_the_json(exported, hand_like_mano, tmp_path):
    smplx = pytest.importorskip("smplx", reason="smplx is not installed (pip install smplx): the check that "
                                                "smplx reproduces the exported mesh needs it")
    from mask2hand.export.mano_npz import convert_mano

    npz = convert_mano(hand_like_mano, tmp_path / "MANO_RIGHT.npz")
    paths = save_mano_files(exported, tmp_path, "open_palm")
    written = json.loads(paths["mano"].read_text())
    mano = smplx.MANO(model_path=str(npz), ext="npz", use_pca=False, flat_hand_mean=True)
    out = mano(**{k: torch.tensor([written[k]], dtype=torch.float32)
                  for k in ("global_orient", "hand_pose", "betas", "transl")})
    mesh = trimesh.load(paths["mano_mesh"], process=False)
    vertex_mm = np.abs(out.vertices[0].detach().numpy() - mesh.vertices).max() * 1000
    layer_joints = mano_output(hand_like_mano, exported).joints[0].numpy()[list(SMPLX_MANO_TO_FREIHAND)]
    joint_mm = np.abs(out.joints[0].detach().numpy() - layer_joints).max() * 1000
    print(f"smplx (float32) on the exported JSON vs the exported OBJ: {vertex_mm:.2e} mm vertices; "
          f"its 16 joints vs the MANO layer's: {joint_mm:.2e} mm (max abs difference)")
    assert vertex_mm < 0.01 and joint_mm < 0.01


@pytest.mark.parametrize("content", [None, b"not a pickle at all", pickle.dumps({"v_template": np.zeros(3)})])
def test_a_missing_or_bad_mano_file_gives_one_clear_error(prediction, tmp_path, content):
    path = tmp_path / "MANO_RIGHT.pkl"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(Mask2HandError) as raised:
        mano_from_prediction(prediction, path)
    message = str(raised.value)
    assert "\n" not in message and str(path) in message


def test_only_the_mano_layer_is_accepted(prediction):
    with pytest.raises(Mask2HandError, match="MANO"):
        fit_mano(load_hand_model("open"), prediction.vertices, prediction.faces, prediction.joints)


@pytest.mark.slow
def test_a_mano_sized_fit_takes_bounded_time(prediction, mano_path):
    # conftest's fixture has MANO's 778 vertices and 1538 faces; its random arrays are no hand, so
    # only the time and a finite answer are checked
    start = time.process_time()
    params = mano_from_prediction(prediction, mano_path, fingertips="smplx")
    assert time.process_time() - start < 30.0
    assert params.fingertips == "smplx"
    assert all(np.isfinite(getattr(params, f)).all() for f in ("global_orient", "hand_pose", "betas", "transl"))


@pytest.mark.slow
def test_predict_writes_mano_parameters_beside_the_other_files(hand_like_mano, tmp_path, capsys):
    import json

    from mask2hand import cli

    code = cli.main(["predict", str(EXAMPLES / "open_palm.png"), "--out", str(tmp_path), "--mano-export", str(hand_like_mano),
                     "--no-figure"])
    assert code == 0, capsys.readouterr().err
    data = json.loads((tmp_path / "open_palm_mano.json").read_text())
    assert len(data["hand_pose"]) == 45 and data["joints_residual_mm"] < 2.15  # measured 1.96 mm
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["inputs"][0]["outputs"]["mano"] == "open_palm_mano.json"
    assert summary["inputs"][0]["outputs"]["mano_mesh"] == "open_palm_mano.obj"
    mesh = trimesh.load(tmp_path / "open_palm_mano.obj", process=False)
    assert len(mesh.vertices) == load_mano_layer(hand_like_mano).num_vertices


@pytest.mark.slow
def test_predict_fits_mano_left_to_a_left_hand(hand_like_mano, hand_like_mano_left, tmp_path, capsys):
    from mask2hand import cli

    code = cli.main(["predict", str(EXAMPLES / "open_palm.png"), "--out", str(tmp_path), "--side", "left",
                     "--mano-export", str(hand_like_mano), "--mano-left", str(hand_like_mano_left), "--no-figure"])
    assert code == 0, capsys.readouterr().err
    data = json.loads((tmp_path / "open_palm_mano.json").read_text())
    assert data["side"] == "left" and data["is_rhand"] is False and data["frame"] == "input camera"
    assert data["joints_residual_mm"] < 3.0


@pytest.mark.parametrize("name", ["MANO_RIGHT.pkl", None])
def test_the_left_model_is_a_file_not_named_right(prediction, hand_like_mano, tmp_path, name):
    left = dataclasses.replace(prediction, side="left")
    path = tmp_path if name is None else tmp_path / name
    with pytest.raises(Mask2HandError, match="MANO_LEFT.pkl"):
        mano_from_prediction(left, hand_like_mano, mano_left_path=path)


def test_mano_left_needs_mano_export(hand_like_mano_left, tmp_path, capsys):
    from mask2hand import cli

    code = cli.main(["predict", str(EXAMPLES / "open_palm.png"), "--out", str(tmp_path),
                     "--mano-left", str(hand_like_mano_left)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--mano-export" in lines[0]
