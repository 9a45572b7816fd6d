"""The Anny hand as a data source: frame, retarget, joints, shapes, offline use.

Needs the anny package (`pip install 'mask2hand[anny]'`); its model data are built once (about
90 s on 2 cores) into ANNY_CACHE_DIR, by default a folder in the temporary directory that later
runs reuse.
"""

import json
import os
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mask2hand.data import anny_retarget as rig
from mask2hand.errors import Mask2HandError
from mask2hand.hand import lbs, load_hand_model
from mask2hand.hand.data import MANO_PARENTS
from mask2hand.hand.prior import ARCHETYPES, JOINT_FRAMES, JOINT_LIMITS, local_to_pose, pose_to_local, sample_pose_prior

os.environ.setdefault("ANNY_CACHE_DIR", str(Path(tempfile.gettempdir()) / "mask2hand-anny-cache"))

CHAINS = [[0, 1, 2, 3, 4], [0, 5, 6, 7, 8], [0, 9, 10, 11, 12], [0, 13, 14, 15, 16], [0, 17, 18, 19, 20]]
LONG_TIPS = [8, 12, 16, 20]


@pytest.fixture(scope="module")
def built():
    """(AnnyHand, network connections it attempted while building and posing a hand)."""
    pytest.importorskip("anny")
    from mask2hand.data.anny import AnnyHand

    attempts = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(sock, address):
        attempts.append(address)
        raise OSError("network access is disabled in this test")

    socket.socket.connect, socket.socket.connect_ex = refuse, refuse
    try:
        hand = AnnyHand()
        zero = torch.zeros(2, 3)
        hand(zero, zero, torch.zeros(2, 45), torch.as_tensor(hand.sample_shapes(np.random.default_rng(0), 2)))
    finally:
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex
    return hand, attempts


@pytest.fixture(scope="module")
def hand(built):
    return built[0]


@pytest.fixture(scope="module")
def shapes(hand):
    return torch.as_tensor(hand.sample_shapes(np.random.default_rng(1), 8))


def pose_of(name: str, n: int) -> torch.Tensor:
    return torch.as_tensor(local_to_pose(ARCHETYPES[name]), dtype=torch.float32).expand(n, 45)


def run(hand, pose: torch.Tensor, shape: torch.Tensor, global_orient=None, transl=None):
    n = pose.shape[0]
    go = torch.zeros(n, 3) if global_orient is None else global_orient
    return hand(go, torch.zeros(n, 3) if transl is None else transl, pose, shape)


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def test_missing_package_says_how_to_install(monkeypatch):
    from mask2hand.data.anny import AnnyHand

    monkeypatch.setitem(sys.modules, "anny", None)  # makes `import anny` fail
    with pytest.raises(Mask2HandError, match=r"pip install 'mask2hand\[anny\]'"):
        AnnyHand()


def test_no_network_access(built):
    assert built[1] == []


def test_interface(hand, shapes):
    assert hand.name == "anny" and hand.flat_hand_mean and hand.num_shape == 10
    assert hand.num_vertices == 1609 and hand.faces.shape == (3196, 3) and hand.faces.dtype == torch.int64
    assert len(hand.asset_hash) == 64 and hand._hash() == hand.asset_hash
    out = run(hand, pose_of("relaxed", 8), shapes)
    assert out.vertices.shape == (8, 1609, 3) and out.joints.shape == (8, 21, 3)
    assert out.vertices.dtype == torch.float32
    double = hand(torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64),
                  torch.zeros(1, 45, dtype=torch.float64), shapes[:1].double())
    assert double.joints.dtype == torch.float64
    with pytest.raises(Mask2HandError, match="pose"):
        hand(torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 48), shapes[:1])
    with pytest.raises(Mask2HandError, match="shape"):
        hand(torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 45), shapes[:1, :6])
    card = json.loads(json.dumps(hand.shape_card()))
    assert card["shape_names"][:6] == ["gender", "age", "muscle", "weight", "height", "proportions"]
    assert card["asset_hash"] == hand.asset_hash and len(card["fingertip_vertices"]) == 5


def test_faces_point_outward(hand, shapes):
    """Counter-clockwise seen from outside: the (open) mesh encloses a positive volume."""
    v = run(hand, pose_of("flat", 1), shapes[:1]).vertices[0].double()
    tri = v[hand.faces]
    volume = (tri[:, 0] * torch.linalg.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert 100e-6 < volume.item() < 600e-6  # m^3: a hand (cut 4 mm behind the wrist joint)


def test_zero_pose_is_the_rest_hand_in_the_open_hands_directions(hand, shapes):
    """Wrist at the origin; wrist, MCPs and thumb base stay where Anny's rest hand has them, and the
    hand axis and palm plane lie exactly as the open hand's."""
    joints = run(hand, torch.zeros(8, 45), shapes).joints.double().numpy()
    rest = hand.rest(shapes)
    heads = rest.to_canonical(rest.bone_poses[..., :3, 3]).double().numpy()
    bones = hand._model.bone_labels
    for slot, bone in ((0, "wrist.R"), (1, "finger1-1.R"), (5, "finger2-1.R"), (9, "finger3-1.R"),
                       (13, "finger4-1.R"), (17, "finger5-1.R")):
        np.testing.assert_allclose(joints[:, slot], heads[:, bones.index(bone)], atol=1e-5)
    open_joints = load_hand_model("open")(torch.zeros(1, 3), torch.zeros(1, 3), hand_pose=torch.zeros(1, 45)).joints
    open_joints = open_joints.double().numpy()
    assert angle_deg(joints[:, 9], open_joints[:, 9]).max() < 0.01  # hand axis
    landmarks = rig.palm_frame(*(torch.as_tensor(joints[:, k]) for k in (0, 5, 9, 17))).numpy()
    open_landmarks = rig.palm_frame(*(torch.as_tensor(open_joints[:, k]) for k in (0, 5, 9, 17))).numpy()
    assert angle_deg(landmarks, open_landmarks).max() < 0.01  # hand axis, palm normal, thumb side
    assert angle_deg(joints[:, 9], np.array([-1.0, 0.0, 0.0])).max() < 3  # fingers along -x
    assert (joints[:, 1:5, 2] > 0).all()  # thumb toward +z


def test_same_global_orient_turns_both_hands_alike(hand, shapes):
    orient = torch.as_tensor(np.random.default_rng(2).uniform(-np.pi, np.pi, (8, 3)), dtype=torch.float32)
    transl = torch.tensor([[0.05, -0.02, 0.5]]).expand(8, 3)
    anny = run(hand, pose_of("flat", 8), shapes, orient, transl).joints.double().numpy()
    opened = load_hand_model("open")(orient, transl, hand_pose=pose_of("flat", 8)).joints.double().numpy()
    np.testing.assert_allclose(anny[:, 0], transl.numpy(), atol=1e-6)
    assert angle_deg(anny[:, 9] - anny[:, 0], opened[:, 9] - opened[:, 0]).max() < 0.01


def test_retargeted_angles_are_the_priors_and_within_its_limits(hand, shapes):
    """The rotation of every Anny finger joint, relative to its parent bone and to Anny's zero pose
    and read in the joint's anatomical frame, is pose_to_local(pose): inside JOINT_LIMITS."""
    pose = torch.as_tensor(sample_pose_prior(200, 3), dtype=torch.float64)
    axes = hand.rest_bone_directions(hand.rest(shapes[:1])).double().expand(200, 15, 3)
    world = rig.bone_rotations(pose, axes)
    undone = world @ rig.swing_rotation(axes, rig.REST_TWIST.expand_as(axes)).transpose(-1, -2)
    parent = [MANO_PARENTS[j + 1] - 1 for j in range(15)]
    parent_rot = torch.stack([undone[:, p] if p >= 0 else torch.eye(3, dtype=torch.float64).expand(200, 3, 3)
                              for p in parent], dim=1)
    joint_rot = parent_rot.transpose(-1, -2) @ undone
    local = torch.einsum("jab,njb->nja", torch.as_tensor(JOINT_FRAMES).transpose(1, 2),
                         lbs.matrix_to_axis_angle(joint_rot)).numpy()
    np.testing.assert_allclose(local, pose_to_local(pose.numpy()), atol=1e-6)
    assert ((local >= JOINT_LIMITS[..., 0] - 1e-6) & (local <= JOINT_LIMITS[..., 1] + 1e-6)).all()


def test_joints_and_mesh_follow_the_bone_rotations(hand, shapes):
    """Posed bone heads are the chain of Anny's rest heads under bone_rotations (recomputed here), and
    every vertex skinned to one bone alone moves rigidly with it."""
    pose = torch.as_tensor(sample_pose_prior(8, 4), dtype=torch.float32)
    out = run(hand, pose, shapes)
    rest = hand.rest(shapes)
    heads = rest.to_canonical(rest.bone_poses[..., :3, 3]).double()
    axes = hand.rest_bone_directions(rest).double()
    world = torch.eye(3, dtype=torch.float64).repeat(8, 21, 1, 1)
    world[:, hand._finger_bones] = rig.bone_rotations(pose.double(), axes)
    parents = hand._model.bone_parents
    posed = heads.clone()
    for b in range(1, 21):  # parents come first in Anny's bone list
        p = parents[b]
        posed[:, b] = posed[:, p] + (world[:, p] @ (heads[:, b] - heads[:, p])[..., None])[..., 0]
    head_slots = [s for s in range(21) if s not in rig.FREIHAND_TIP_SLOTS]
    np.testing.assert_allclose(out.joints[:, head_slots].double().numpy(), posed[:, hand._heads].numpy(), atol=2e-5)
    weights = hand._model.dense_vertex_bone_weights
    single = (weights.max(1).values > 0.999).nonzero()[:, 0]
    bone = weights[single].argmax(1)
    rest_v = rest.to_canonical(rest.vertices).double()[:, single]
    moved = posed[:, bone] + (world[:, bone] @ (rest_v - heads[:, bone])[..., None])[..., 0]
    assert len(single) > 200
    np.testing.assert_allclose(out.vertices[:, single].double().numpy(), moved.numpy(), atol=2e-5)


def test_flat_hand_is_flat(hand, shapes):
    j = run(hand, pose_of("flat", 8), shapes).joints.double().numpy()
    for chain in CHAINS[1:]:
        bones = np.diff(j[:, chain[1:]], axis=1)  # MCP->PIP, PIP->DIP, DIP->tip
        assert angle_deg(bones[:, 0], bones[:, 1]).max() < 0.01
        assert angle_deg(bones[:, 1], bones[:, 2]).max() < 0.01
        assert np.abs(j[:, chain[2:], 1] - j[:, chain[1:2], 1]).max() < 1e-4  # parallel to the palm


def test_fist_is_a_fist(hand, shapes):
    """Long fingertips come within 0.45 palm lengths of the palm's centre (flat: over 0.7)."""
    for name, low, high in (("fist", 0.0, 0.45), ("flat", 0.7, 1.4)):
        j = run(hand, pose_of(name, 8), shapes).joints.double().numpy()
        centre = j[:, [0, 5, 9, 13, 17]].mean(1, keepdims=True)
        reach = np.linalg.norm(j[:, LONG_TIPS] - centre, axis=2) / np.linalg.norm(j[:, 9], axis=1, keepdims=True)
        assert (reach > low).all() and (reach < high).all(), name


def test_spread_hand_is_spread(hand, shapes):
    gaps = {}
    for name in ("flat", "spread"):
        j = run(hand, pose_of(name, 8), shapes).joints.double().numpy()
        gaps[name] = np.linalg.norm(j[:, LONG_TIPS[:-1]] - j[:, LONG_TIPS[1:]], axis=2)
    assert (gaps["spread"] > gaps["flat"]).all() and (gaps["spread"] - gaps["flat"]).mean() > 0.01


def test_joint_order_and_bone_lengths(hand):
    shapes = torch.as_tensor(hand.sample_shapes(np.random.default_rng(5), 64))
    j = run(hand, pose_of("relaxed", 64), shapes).joints.double().numpy()
    for chain in CHAINS:
        reach = np.linalg.norm(j[:, chain], axis=2)  # from the wrist (the origin)
        assert (np.diff(reach, axis=1) > 0).all()  # each chain goes out from the wrist, the tip last
        lengths = np.linalg.norm(np.diff(j[:, chain[1:]], axis=1), axis=2)
        assert (lengths > 0.01).all() and (lengths < 0.06).all()
    assert (j[:, 3:5, 2] > j[:, 7:9, 2]).all()  # the thumb beyond the index
    assert (j[:, 13:17, 2] > j[:, 17:21, 2]).all()  # ring between middle and little
    palm = np.linalg.norm(j[:, [5, 9, 13, 17]], axis=2)
    assert (palm > 0.07).all() and (palm < 0.13).all()


def test_fingertips_end_the_distal_axes(hand):
    """Each tip vertex lies on its distal phalanx's axis (within 3 mm), beyond the DIP head."""
    rest = hand.rest(hand._reference_shape())
    v = rest.vertices[0].double().numpy()
    bones = hand._model.bone_labels
    for digit, distal in enumerate(rig.DISTAL_BONES):
        pose = rest.bone_poses[0, bones.index(distal)].double().numpy()
        offset = v[hand.fingertip_ids[digit]] - pose[:3, 3]
        along = offset @ pose[:3, 1]
        assert 0.01 < along < 0.04
        assert np.linalg.norm(offset - along * pose[:3, 1]) < 0.003


def test_shapes_are_adult_hands(hand):
    rng = np.random.default_rng(6)
    s = hand.sample_shapes(rng, 300)
    assert s.dtype == np.float32 and s.shape == (300, 10)
    np.testing.assert_array_equal(s, hand.sample_shapes(np.random.default_rng(6), 300))
    assert (s[:, :6] >= 0).all() and (s[:, :6] <= 1).all() and (np.abs(s[:, 6:]) <= 1).all()
    j = run(hand, torch.zeros(300, 45), torch.as_tensor(s)).joints.double().numpy()
    length = np.linalg.norm(j[:, 12], axis=1) * 100  # wrist (origin) to middle tip, cm
    male = s[:, 0] < 0.5
    assert 17.5 < length.mean() < 19.0 and 14 < length.min() and length.max() < 23
    assert length[male].mean() > length[~male].mean() + 1.0
    breadth = np.linalg.norm(j[:, 5] - j[:, 17], axis=1) * 100  # index MCP to little MCP
    assert 5.5 < breadth.mean() < 7.5
