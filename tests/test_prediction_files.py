"""A prediction's files (mask2hand.export.prediction, mask2hand.export.files): what is written, in which
frame, the OBJ's normals, the GLB's mesh and joints, joint names, the figure, all or nothing."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import trimesh

from mask2hand import cli
from mask2hand.errors import Mask2HandError
from mask2hand.export import prediction as prediction_module
from mask2hand.export.figures import prediction_figure
from mask2hand.export.files import glb_bytes, mesh_bytes, points_in_frame, vertex_normals
from mask2hand.export.prediction import prediction_json, write_prediction
from mask2hand.hand import JOINT_NAMES, load_hand_model
from mask2hand.hand.data import MANO_TO_FREIHAND
from mask2hand.hand.prior import FINGER_JOINT_NAMES
from mask2hand.inference.api import Mask2Hand
from tiny_model import blob_mask, save_mask_png, write_tiny_weights


@pytest.fixture(scope="module")
def hand_mesh() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The open hand, slightly posed, 40 cm in front of the camera: vertices (V,3), faces, joints (21,3)."""
    import torch

    hand = load_hand_model("open").double()
    pose = torch.zeros(1, 45, dtype=torch.float64)
    pose[0, 2::3] = 0.3  # every finger joint bent a little
    f64 = torch.float64
    out = hand(torch.tensor([[0.3, -0.2, 0.1]], dtype=f64), torch.tensor([[0.0, 0.0, 0.4]], dtype=f64), pose,
               betas=torch.zeros(1, 10, dtype=f64))
    return out.vertices[0].numpy(), hand.faces.numpy(), out.joints[0].numpy()


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """The volume the faces enclose, positive when they wind counter-clockwise seen from outside."""
    corners = vertices[faces] - vertices.mean(axis=0)
    return float(np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6)


def winding_numbers(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(P,) how many times a closed mesh wound counter-clockwise from outside encloses each point:
    1 inside, 0 outside (the sum of the faces' signed solid angles over 4 pi)."""
    a, b, c = (vertices[faces[:, k]][None] - points[:, None] for k in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    numerator = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
    denominator = (la * lb * lc + np.einsum("pfi,pfi->pf", a, b) * lc + np.einsum("pfi,pfi->pf", a, c) * lb
                   + np.einsum("pfi,pfi->pf", b, c) * la)
    return 2 * np.arctan2(numerator, denominator).sum(axis=1) / (4 * np.pi)


def read_obj(data: bytes) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(v (V,3), vn (V,3), the face lines) of an OBJ file's bytes."""
    lines = data.decode().splitlines()
    v = np.array([[float(x) for x in line.split()[1:]] for line in lines if line.startswith("v ")])
    vn = np.array([[float(x) for x in line.split()[1:]] for line in lines if line.startswith("vn ")])
    return v, vn, [line for line in lines if line.startswith("f ")]


# ---------------------------------------------------------------------- joint names

def test_one_list_of_joint_names_in_the_freihand_order():
    assert len(JOINT_NAMES) == len(set(JOINT_NAMES)) == 21 and JOINT_NAMES[0] == "wrist"
    assert [JOINT_NAMES[k] for k in (4, 8, 12, 16, 20)] == [f"{f}_tip" for f in ("thumb", "index", "middle", "ring",
                                                                                  "little")]
    assert all(JOINT_NAMES[k].startswith(finger) for finger, first in zip(("thumb", "index", "middle", "ring",
                                                                           "little"), range(1, 21, 4))
               for k in range(first, first + 4))
    # the pose prior's 15 finger joints are those names in MANO's chain order
    assert FINGER_JOINT_NAMES == tuple(JOINT_NAMES[MANO_TO_FREIHAND.index(k)] for k in range(1, 16))
    assert FINGER_JOINT_NAMES[:3] == ("index_mcp", "index_pip", "index_dip") and FINGER_JOINT_NAMES[-1] == "thumb_ip"


# ---------------------------------------------------------------------- meshes

def test_obj_normals_are_unit_outward_and_referenced_by_the_faces(hand_mesh):
    vertices, faces, _ = hand_mesh
    v, vn, face_lines = read_obj(mesh_bytes(vertices, faces, "obj"))
    assert np.allclose(v, vertices, atol=1e-8) and vn.shape == vertices.shape
    assert np.allclose(np.linalg.norm(vn, axis=1), 1.0, atol=1e-5)
    # each face corner names its vertex and that vertex's normal
    corners = np.array([[[int(i) for i in corner.split("//")] for corner in line.split()[1:]] for line in face_lines])
    assert np.array_equal(corners[..., 0], faces + 1) and np.array_equal(corners[..., 1], faces + 1)
    # outward: away from the centroid on average, and half a millimetre along each normal is outside the
    # (closed) hand, half a millimetre against it inside
    outward = vertices - vertices.mean(axis=0)
    cosines = np.einsum("ij,ij->i", vn, outward / np.linalg.norm(outward, axis=1, keepdims=True))
    assert cosines.mean() > 0.2 and (cosines > 0).mean() > 0.65
    assert signed_volume(vertices, faces) > 0
    assert (np.abs(winding_numbers(vertices + 5e-4 * vn, vertices, faces)) < 0.5).mean() > 0.98
    assert (np.abs(winding_numbers(vertices - 5e-4 * vn, vertices, faces) - 1) < 0.5).mean() > 0.98
    # trimesh reads the same normals and faces back
    mesh = trimesh.load(io.BytesIO(mesh_bytes(vertices, faces, "obj")), file_type="obj", process=False)
    assert np.array_equal(mesh.faces, faces) and np.allclose(mesh.vertex_normals, vn, atol=1e-5)


def test_vertex_normals_of_a_tetrahedron_point_away_from_it():
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])  # counter-clockwise seen from outside
    normals = vertex_normals(vertices, faces)
    assert np.allclose(normals[0], -np.ones(3) / np.sqrt(3))  # the corner at the origin, between three equal faces
    assert (np.einsum("ij,ij->i", normals, vertices - vertices.mean(axis=0)) > 0).all()
    assert np.array_equal(vertex_normals(np.zeros((1, 3)), np.zeros((0, 3), int)), np.zeros((1, 3)))


@pytest.mark.parametrize("frame", ["opencv", "opengl"])
def test_the_glb_holds_the_mesh_its_normals_and_the_named_joints(hand_mesh, frame):
    vertices, faces, joints = (points_in_frame(hand_mesh[0], frame), hand_mesh[1], points_in_frame(hand_mesh[2], frame))
    data = glb_bytes(vertices, faces, joints, JOINT_NAMES, extras={"frame": frame})
    assert data[:4] == b"glTF" and int.from_bytes(data[4:8], "little") == 2
    scene = trimesh.load(io.BytesIO(data), file_type="glb", process=False)
    assert scene.metadata["frame"] == frame and list(scene.geometry) == ["hand"]
    mesh = scene.geometry["hand"]
    assert len(mesh.vertices) == len(vertices) and np.array_equal(mesh.faces, faces)
    assert np.allclose(mesh.vertices, vertices, atol=1e-6)
    assert np.allclose(mesh.vertex_normals, vertex_normals(vertices, faces), atol=1e-5)
    assert signed_volume(np.asarray(mesh.vertices), np.asarray(mesh.faces)) > 0  # outward in either frame
    placed = {name: scene.graph.get(name)[0][:3, 3] for name in JOINT_NAMES}
    assert np.allclose(np.stack([placed[name] for name in JOINT_NAMES]), joints, atol=1e-6)
    assert set(scene.graph.nodes_geometry) == {"hand"}  # the joints are nodes without geometry


def test_the_opengl_frame_is_the_camera_turned_half_a_turn_about_x(hand_mesh):
    vertices, faces, _ = hand_mesh
    opengl = points_in_frame(vertices, "opengl")
    assert np.array_equal(opengl, vertices * [1, -1, -1]) and (opengl[:, 2] < 0).all()  # in front: z toward us
    assert signed_volume(opengl, faces) == pytest.approx(signed_volume(vertices, faces))  # winding stays outward
    assert np.array_equal(points_in_frame(vertices, "opencv"), vertices)
    with pytest.raises(Mask2HandError, match="frame must be one of opencv, opengl"):
        points_in_frame(vertices, "blender")


# ---------------------------------------------------------------------- a prediction's files

def test_write_prediction_writes_every_file(model, tmp_path):
    from PIL import Image

    result = model.predict(save_mask_png(tmp_path / "in.png", blob_mask()))
    paths = write_prediction(result, tmp_path / "out")
    assert set(paths) == {"obj", "ply", "glb", "json", "png"} and all(p.is_file() for p in paths.values())
    assert paths["obj"].name == "in.obj"
    for kind in ("obj", "ply", "glb"):
        mesh = trimesh.load(paths[kind], process=False, force="mesh")
        assert mesh.vertices.shape == result.vertices.shape and np.array_equal(mesh.faces, result.faces)
        assert np.allclose(mesh.vertices, result.vertices, atol=1e-5)
    data = json.loads(paths["json"].read_text())
    assert data["frame"] == "opencv" and data["joint_names"] == list(JOINT_NAMES)
    assert np.allclose(data["joints"], result.joints, atol=1e-6)
    assert np.allclose(data["joints_2d"], result.joints_2d, atol=1e-4)
    assert np.allclose(data["K"], result.K) and data["iou"] == pytest.approx(result.iou)
    assert data["hand"]["name"] == "open" and len(data["params"]["hand_pose"]) == 45 and data["notes"]
    assert "pose" not in data["params"]
    with Image.open(paths["png"]) as image:
        assert image.size[0] > 3 * image.size[1]  # a row of five panels
    only = write_prediction(result, tmp_path / "nofig", stem="x", figure=False)
    assert set(only) == {"obj", "ply", "glb", "json"} and not (tmp_path / "nofig" / "x.png").exists()


def test_the_opengl_files_are_the_opencv_ones_turned(model, tmp_path):
    result = model.predict(blob_mask())
    cv_paths = write_prediction(result, tmp_path / "cv", figure=False)
    gl_paths = write_prediction(result, tmp_path / "gl", figure=False, frame="opengl")
    cv, gl = json.loads(cv_paths["json"].read_text()), json.loads(gl_paths["json"].read_text())
    assert (cv["frame"], gl["frame"]) == ("opencv", "opengl") and "y up" in gl["units"]["joints"]
    assert np.allclose(np.asarray(gl["joints"]), np.asarray(cv["joints"]) * [1, -1, -1], atol=1e-9)
    assert gl["params"] == cv["params"] and gl["joints_2d"] == cv["joints_2d"]  # the camera's, in either frame
    cv_v, cv_n, cv_f = read_obj(cv_paths["obj"].read_bytes())
    gl_v, gl_n, gl_f = read_obj(gl_paths["obj"].read_bytes())
    assert np.allclose(gl_v, cv_v * [1, -1, -1], atol=1e-8) and np.allclose(gl_n, cv_n * [1, -1, -1], atol=2e-6)
    assert gl_f == cv_f
    scene = trimesh.load(gl_paths["glb"], process=False)
    assert scene.metadata["frame"] == "opengl"
    assert np.allclose(scene.graph.get("wrist")[0][:3, 3], np.asarray(gl["joints"][0]), atol=1e-6)
    with pytest.raises(Mask2HandError, match="frame must be one of"):
        write_prediction(result, tmp_path / "bad", frame="y-up")
    assert not (tmp_path / "bad").exists()


def test_write_prediction_is_all_or_nothing(model, tmp_path, monkeypatch):
    result = model.predict(blob_mask())

    def broken(*args, **kwargs):
        raise RuntimeError("figure failed")

    monkeypatch.setattr("mask2hand.export.figures.prediction_figure", broken)
    with pytest.raises(RuntimeError):
        write_prediction(result, tmp_path / "out", stem="h")
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


def test_without_matplotlib_the_rest_is_written_and_said_once(model, tmp_path, monkeypatch):
    real_available = prediction_module.available
    monkeypatch.setattr(prediction_module, "available", lambda m: m != "matplotlib" and real_available(m))
    monkeypatch.setattr(prediction_module, "_SAID", set())
    prediction = model.predict(blob_mask())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = write_prediction(prediction, tmp_path / "a", stem="h")
        second = write_prediction(prediction, tmp_path / "b", stem="h")
    assert set(first) == set(second) == {"obj", "ply", "glb", "json"}
    assert all(p.is_file() for p in [*first.values(), *second.values()])
    assert not (tmp_path / "a" / "h.png").exists()
    said = [str(w.message) for w in caught]
    assert len(said) == 1 and "pip install 'mask2hand[figures]'" in said[0]
    monkeypatch.setattr("mask2hand.export.figures.require", _refuse)
    with pytest.raises(Mask2HandError, match="matplotlib"):
        write_prediction(prediction, tmp_path / "c", stem="h", figure=True)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def _refuse(module: str, purpose: str) -> None:
    raise Mask2HandError(f"{purpose} needs {module}, which is not installed")


def test_figure_has_the_five_panels(model):
    fig = prediction_figure(model.predict(blob_mask()))
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 5
    assert titles[0] == "input mask" and titles[1].startswith("predicted silhouette") and titles[4] == "3D skeleton"


def test_hypotheses_are_written_in_the_frame_with_their_params_named_as_the_answers(model, tmp_path):
    result = model.predict(blob_mask(), hypotheses=1)
    data = prediction_json(result, frame="opengl")
    (hypothesis,) = data["hypotheses"]
    assert np.allclose(hypothesis["joints"], result.hypotheses[0].joints * [1, -1, -1])
    assert set(hypothesis["params"]) == set(data["params"])
    paths = write_prediction(result, tmp_path, figure=False, frame="opengl")
    v, _, _ = read_obj(paths["hyp1"].read_bytes())
    assert np.allclose(v, result.hypotheses[0].vertices * [1, -1, -1], atol=1e-8)


# ---------------------------------------------------------------------- the command

def test_predict_frame_option(weights, tmp_path, capsys):
    save_mask_png(tmp_path / "hand.png", blob_mask())
    runs = {}
    for frame in ("opencv", "opengl"):
        out = tmp_path / frame
        assert cli.main(["predict", str(tmp_path / "hand.png"), "--out", str(out), "--checkpoint", str(weights),
                         "--no-figure", "--frame", frame]) == 0
        runs[frame] = out
        summary = json.loads((out / "summary.json").read_text())
        assert set(summary["inputs"][0]["outputs"]) == {"obj", "ply", "glb", "json"} and summary["frame"] == frame
    cv, gl = (json.loads((runs[f] / "hand.json").read_text()) for f in ("opencv", "opengl"))
    assert gl["frame"] == "opengl" and np.allclose(np.asarray(gl["joints"]), np.asarray(cv["joints"]) * [1, -1, -1])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", str(tmp_path / "hand.png"), "--frame", "blender"])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after argparse's usage
    assert "--frame" in last and "opencv" in last and "opengl" in last


def test_an_examples_obj_and_glb_open_in_trimesh_with_outward_normals(tmp_path):
    """tools/check_example_files.py: the shipped model's files of examples/open_palm.png, in both frames."""
    tool = Path(__file__).resolve().parents[1] / "tools" / "check_example_files.py"
    proc = subprocess.run([sys.executable, str(tool), "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = proc.stdout.strip().splitlines()
    assert len(rows) == 4 and all(row.endswith("ok=True") for row in rows)
    assert sum("joint_nodes=21" in row for row in rows) == 2
