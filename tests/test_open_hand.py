"""The shipped open hand: asset layout, mesh topology, rest-pose anatomy, rig, shape range,
pose prior and its PCA, skinning quality inside the joint limits, and the gallery."""

from importlib import resources

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from mask2hand.hand import load_hand_model
from mask2hand.hand.data import MANO_PARENTS
from mask2hand.hand.open_hand import load_open_hand_data
from mask2hand.hand.prior import (ARCHETYPES, JOINT_FRAMES, JOINT_LIMITS, local_to_pose, pose_to_local,
                                  sample_pose_prior, within_limits)


@pytest.fixture(scope="module")
def data():
    return load_open_hand_data()


@pytest.fixture(scope="module")
def model():
    return load_hand_model("open").double()


def run(model, pose, betas=None, global_orient=None):
    n = pose.shape[0]
    pose = torch.as_tensor(pose, dtype=torch.float64)
    go = torch.zeros(n, 3, dtype=torch.float64) if global_orient is None else global_orient
    with torch.no_grad():
        return model(go, torch.zeros(n, 3, dtype=torch.float64), hand_pose=pose, betas=betas)


def world_rotations(full_pose: np.ndarray) -> np.ndarray:
    """(N,16,3,3) world rotation of every rig joint for axis-angle poses (N,48), MANO tree."""
    local = Rotation.from_rotvec(full_pose.reshape(-1, 3)).as_matrix().reshape(len(full_pose), 16, 3, 3)
    world = local.copy()
    for j in range(1, 16):
        world[:, j] = world[:, MANO_PARENTS[j]] @ local[:, j]
    return world


def signed_volumes(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[..., faces, :]
    return (np.cross(tri[..., 0, :], tri[..., 1, :]) * tri[..., 2, :]).sum(axis=(-1, -2)) / 6.0


# ----------------------------------------------------------------------------- asset and mesh


def test_asset_is_small_and_has_manos_layout(data):
    asset = resources.files("mask2hand.hand") / "assets" / "open_hand.npz"
    assert len(asset.read_bytes()) <= 3_000_000
    with np.load(asset) as z:
        assert sorted(z.files) == sorted(["v_template", "faces", "shapedirs", "posedirs", "joint_regressor", "weights",
                                          "parents", "pose_components", "pose_mean", "fingertip_ids"])
    data.validate()
    assert 700 <= data.v_template.shape[0] <= 3000
    assert tuple(data.parents) == MANO_PARENTS


def test_mesh_is_one_watertight_manifold_outward_surface(data):
    mesh = trimesh.Trimesh(data.v_template, data.faces, process=False)
    assert mesh.is_watertight
    assert mesh.is_winding_consistent
    edges = np.sort(mesh.edges, axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # every edge shared by exactly two faces
    assert len(mesh.split(only_watertight=False)) == 1
    assert mesh.euler_number == 2  # a sphere-like closed surface, no handles
    assert mesh.volume > 0  # counter-clockwise seen from outside: outward normals
    assert 2e-4 < mesh.volume < 6e-4  # m^3: a hand (and a short wrist stub)
    assert len(np.unique(np.sort(data.faces, axis=1), axis=0)) == len(data.faces)
    areas = mesh.area_faces
    assert areas.min() > 1e-9  # no degenerate triangles


def test_rest_frame_matches_mano_axes(model):
    """Fingers along -x, back of the hand +y (palm -y), thumb toward +z, wrist at the origin."""
    j = run(model, np.zeros((1, 45))).joints[0].numpy()
    np.testing.assert_allclose(j[0], 0.0, atol=1e-3)
    assert (j[[8, 12, 16, 20], 0] < -0.11).all()
    assert j[4, 2] > 0.05 and j[20, 2] < -0.04  # thumb tip +z, little tip -z
    # a positive flexion curls the index toward the palm (-y)
    pose = np.zeros((1, 15, 3))
    pose[0, 0:3, 0] = 1.0
    jf = run(model, local_to_pose(pose)).joints[0].numpy()
    assert jf[8, 1] < j[8, 1] - 0.04


def test_hand_length_and_shape_range(model):
    betas = torch.zeros(3, 10, dtype=torch.float64)
    betas[1, 0], betas[2, 0] = -2.0, 2.0
    j = run(model, np.zeros((3, 45)), betas=betas).joints
    length = (j[:, 12] - j[:, 0]).norm(dim=-1).numpy() * 100
    assert 17.5 <= length[0] <= 18.5
    assert 15.5 <= length[1] <= 16.8
    assert 19.2 <= length[2] <= 20.5


def test_shape_components_change_proportions(model):
    """beta1 widens the palm; beta2 lengthens fingers relative to the palm; the others keep
    the hand length within a few millimeters."""
    n = 10
    betas = torch.eye(n, dtype=torch.float64)
    out = run(model, np.zeros((n + 1, 45)), betas=torch.cat([torch.zeros(1, n, dtype=torch.float64), betas]))
    j = out.joints.numpy()
    breadth = np.linalg.norm(j[:, 5] - j[:, 17], axis=1)  # index MCP to little MCP
    assert breadth[2] > breadth[0] * 1.02
    finger = np.linalg.norm(j[:, 12] - j[:, 9], axis=1)
    palm = np.linalg.norm(j[:, 9] - j[:, 0], axis=1)
    assert finger[3] / palm[3] > finger[0] / palm[0] * 1.03
    length = np.linalg.norm(j[:, 12] - j[:, 0], axis=1)
    assert np.abs(length[2:] - length[0]).max() < 0.006
    # every component moves the surface
    disp = np.linalg.norm(out.vertices.numpy()[1:] - out.vertices.numpy()[:1], axis=2).max(axis=1)
    assert (disp > 0.0005).all()


# ----------------------------------------------------------------------------- rig


def test_weights_and_regressor_are_convex_combinations(data):
    w, r = data.weights, data.joint_regressor
    assert w.min() >= 0 and r.min() >= 0
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(r.sum(axis=1), 1.0, atol=1e-5)
    assert ((r > 0).sum(axis=1) <= 80).all()  # sparse: a ring of skin around each joint


def winding_numbers(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Generalized winding number (P,) of a closed mesh at points (P,3): 1 inside, 0 outside."""
    tri = vertices[faces][None] - points[:, None, None, :]  # P,F,3,3
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    num = (a * np.cross(b, c)).sum(-1)
    den = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
    return 2 * np.arctan2(num, den).sum(-1) / (4 * np.pi)


def test_joints_lie_inside_the_skin(data):
    joints = data.joint_regressor @ data.v_template
    wn = winding_numbers(data.v_template.astype(np.float64), data.faces, joints.astype(np.float64))
    np.testing.assert_allclose(wn, 1.0, atol=1e-3)
    outside = np.array([[0.0, 0.1, 0.0], [-0.12, 0.0, 0.04]])  # above the hand; between index and thumb
    np.testing.assert_allclose(winding_numbers(data.v_template.astype(np.float64), data.faces, outside), 0.0,
                               atol=1e-3)


def test_freihand_order_and_fingertips(model, data):
    out = run(model, np.zeros((1, 45)))
    j, v = out.joints[0].numpy(), out.vertices[0].numpy()
    np.testing.assert_allclose(j[[4, 8, 12, 16, 20]], v[data.fingertip_ids], atol=1e-9)
    # each chain runs base to tip away from the wrist
    for base in (1, 5, 9, 13, 17):
        dist = np.linalg.norm(j[base:base + 4] - j[0], axis=1)
        assert (np.diff(dist) > 0).all()
    # the tip vertex is the finger's farthest point from its last joint
    distal_bone = {4: 15, 8: 3, 12: 6, 16: 12, 20: 9}  # FreiHAND tip -> MANO rig joint of its phalanx
    for tip, dip in ((4, 3), (8, 7), (12, 11), (16, 15), (20, 19)):
        near = data.weights[:, distal_bone[tip]] > 0.5
        axis = (j[tip] - j[dip]) / np.linalg.norm(j[tip] - j[dip])
        assert ((v[near] - j[dip]) @ axis).max() <= (j[tip] - j[dip]) @ axis + 2e-3
    assert np.argmax(np.linalg.norm(j - j[0], axis=1)) == 12  # the middle tip is farthest


def test_joints_from_vertices_match_forward_at_rest(model):
    out = run(model, np.zeros((1, 45)))
    np.testing.assert_allclose(model.joints_from_vertices(out.vertices).numpy(), out.joints.numpy(), atol=1e-6)


def test_skinning_keeps_volume_and_orientation_inside_the_limits(model, data):
    """No collapse or inside-out skin: for prior poses and for every joint at its limits."""
    poses = [sample_pose_prior(48, np.random.default_rng(7))]
    corners = np.zeros((30, 15, 3))
    for j in range(15):  # each joint alone at its low and high flexion limit, others mid abduction
        corners[2 * j, j] = JOINT_LIMITS[j, :, 0]
        corners[2 * j + 1, j] = JOINT_LIMITS[j, :, 1]
    poses.append(local_to_pose(corners))
    poses.append(local_to_pose(np.broadcast_to(JOINT_LIMITS[..., 1], (1, 15, 3))))  # everything at max
    pose = np.concatenate(poses)
    out = run(model, pose)
    faces = data.faces
    rest = run(model, np.zeros((1, 45))).vertices.numpy()[0]
    ratio = signed_volumes(out.vertices.numpy(), faces) / signed_volumes(rest, faces)
    assert ratio.min() > 0.85 and ratio.max() < 1.1
    # face normals against the rigid motion of each face's dominant bone
    n = len(pose)
    world = world_rotations(np.concatenate([np.zeros((n, 3)), pose], axis=1))
    dominant = data.weights[faces].mean(axis=1).argmax(axis=1)

    def normals(v):
        t = v[..., faces, :]
        nn = np.cross(t[..., 1, :] - t[..., 0, :], t[..., 2, :] - t[..., 0, :])
        return nn / np.linalg.norm(nn, axis=-1, keepdims=True)

    expected = np.einsum("nfab,fb->nfa", world[:, dominant], normals(rest))
    dots = (normals(out.vertices.numpy()) * expected).sum(-1)
    assert (dots < 0).mean(axis=1).max() < 0.02  # at most 2% of faces turned over (inner folds)
    assert (dots < -0.5).mean(axis=1).max() < 0.01


# ----------------------------------------------------------------------------- prior and PCA


def test_prior_is_seeded_and_within_limits():
    a = sample_pose_prior(2000, 3)
    assert a.shape == (2000, 45) and a.dtype == np.float64
    np.testing.assert_array_equal(a, sample_pose_prior(2000, np.random.default_rng(3)))
    assert within_limits(a).all()
    t = sample_pose_prior(5, torch.Generator().manual_seed(1))
    assert isinstance(t, torch.Tensor) and t.shape == (5, 45) and t.dtype == torch.float32
    assert not np.allclose(a[:1000], sample_pose_prior(1000, 4))


def test_prior_covers_open_and_closed_hands():
    local = pose_to_local(sample_pose_prior(4000, 0))
    curl = local[:, :12, 0].mean(axis=1)  # mean flexion of the long fingers
    assert (curl < 0.15).mean() > 0.1  # open hands
    assert (curl > 1.0).mean() > 0.1  # fists and grasps
    assert local[:, [0, 9], 1].std() > 0.08  # spread varies


def test_frames_limits_and_archetypes_are_consistent():
    eye = np.einsum("jab,jac->jbc", JOINT_FRAMES, JOINT_FRAMES)
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(JOINT_FRAMES), 1.0, atol=1e-12)
    assert (JOINT_LIMITS[..., 0] < 0).all() and (JOINT_LIMITS[..., 1] > 0).all()  # the flat hand is allowed
    for name, local in ARCHETYPES.items():
        assert within_limits(local_to_pose(local)), name


def test_pose_pca_is_the_prior_pca(data):
    comps, mean = data.pose_components.astype(np.float64), data.pose_mean.astype(np.float64)
    samples = sample_pose_prior(20000, 11)
    np.testing.assert_allclose(mean, samples.mean(axis=0), atol=0.02)
    # rows are orthogonal, ordered by decreasing standard deviation
    gram = comps @ comps.T
    std = np.sqrt(np.diag(gram))
    assert np.abs(gram - np.diag(np.diag(gram))).max() < 1e-4
    assert (np.diff(std) <= 1e-6).all()
    # coefficients of fresh samples have unit variance along each component
    coeffs = (samples - mean) @ np.linalg.pinv(comps)
    np.testing.assert_allclose(coeffs[:, :10].std(axis=0), 1.0, atol=0.05)
    np.testing.assert_allclose(coeffs @ comps + mean, samples, atol=1e-4)
    # the first six components explain most of the prior's variance
    assert (std[:6] ** 2).sum() / (std ** 2).sum() > 0.75


def test_pca_round_trip_open_hand():
    layer = load_hand_model("open", num_pose_pcs=45, flat_hand_mean=False).double()
    pcs = torch.rand(8, 45, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4 - 2
    pose = layer.finger_pose(pose_pcs=pcs)
    coefficients = (pose - layer.pose_mean.double()) @ torch.linalg.pinv(layer.pose_components.double())
    torch.testing.assert_close(coefficients, pcs, atol=1e-6, rtol=0)


def test_pca_coefficients_in_the_papers_range_stay_near_the_limits():
    """U[-2,2)^6 coefficients with the mean pose added stay near the limits: each joint
    exceeds them by more than 0.4 rad in under 5% of hands (see docs/OPEN_HAND.md for the
    flat-mean protocol of the paper)."""
    data = load_open_hand_data()
    coeffs = np.random.default_rng(0).uniform(-2, 2, size=(2000, 6))
    pose = coeffs @ data.pose_components[:6] + data.pose_mean
    local = pose_to_local(pose)
    over = np.maximum(local - JOINT_LIMITS[..., 1], JOINT_LIMITS[..., 0] - local)
    assert np.quantile(over, 0.95, axis=0).max() < 0.4
    assert np.median(over.max(axis=(1, 2))) < 0.2


# ----------------------------------------------------------------------------- gallery


@pytest.mark.slow
def test_hand_gallery_writes_png_and_obj(tmp_path):
    from mask2hand.export.gallery import write_hand_gallery

    paths = write_hand_gallery(tmp_path)
    png, obj = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    mesh = trimesh.load(obj, process=False)
    assert len(mesh.vertices) == load_open_hand_data().v_template.shape[0]
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_hand_gallery_reports_an_unusable_output_folder(tmp_path):
    from mask2hand import Mask2HandError
    from mask2hand.export.gallery import write_hand_gallery

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(Mask2HandError, match="output folder"):
        write_hand_gallery(blocker / "gallery")
