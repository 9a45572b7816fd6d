"""The hand layer on the MANO-format fixture: loading without chumpy, skinning against an
independent numpy reference, PCA, rotations and clear errors (dtypes, devices and gradients of
every entry point: test_hand_matrix.py)."""

import pickle

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mano_fixture import fake_mano_arrays
from mask2hand import Mask2HandError
from mask2hand.hand import MANO_TO_FREIHAND, HandParams, load_hand_model
from mask2hand.hand.lbs import axis_angle_to_matrix, matrix_to_axis_angle
from mask2hand.hand.mano import MANO_FINGERTIP_SETS

PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]


def reference_mano(arrays, global_orient, transl, finger_pose, betas, tips):
    """Straightforward numpy MANO for one hand: 4x4 world transforms along the tree."""
    v_shaped = arrays["v_template"] + arrays["shapedirs"] @ betas
    rest_joints = arrays["J_regressor"] @ v_shaped
    full = np.concatenate([global_orient, finger_pose]).reshape(16, 3)
    rots = Rotation.from_rotvec(full).as_matrix()
    feature = np.concatenate([(r - np.eye(3)).ravel() for r in rots[1:]])
    v_posed = v_shaped + arrays["posedirs"] @ feature
    world = []
    for j in range(16):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = rest_joints[j] - (rest_joints[PARENTS[j]] if j else 0)
        world.append(local if j == 0 else world[PARENTS[j]] @ local)
    joints = np.array([w[:3, 3] for w in world])
    verts = np.zeros_like(v_posed)
    for j in range(16):
        shifted = v_posed - rest_joints[j]
        moved = shifted @ world[j][:3, :3].T + world[j][:3, 3]
        verts += arrays["weights"][:, j : j + 1] * moved
    joints21 = np.concatenate([joints, verts[list(tips)]])[list(MANO_TO_FREIHAND)]
    return verts + transl, joints21 + transl


@pytest.mark.parametrize("flat", [True, False])
def test_mano_fixture_matches_numpy_reference(mano_path, flat):
    arrays = fake_mano_arrays(0)
    model = load_hand_model("mano", path=mano_path, num_pose_pcs=12, flat_hand_mean=flat).double()
    gen = torch.Generator().manual_seed(3)
    go, tr = torch.randn(4, 3, generator=gen, dtype=torch.float64), torch.randn(4, 3, generator=gen, dtype=torch.float64)
    pcs, betas = torch.randn(4, 12, generator=gen, dtype=torch.float64), torch.randn(4, 10, generator=gen, dtype=torch.float64)
    out = model(go, tr, pose_pcs=pcs, betas=betas)
    for b in range(4):
        finger = pcs[b].numpy() @ arrays["hands_components"][:12] + (0 if flat else arrays["hands_mean"])
        verts, joints = reference_mano(arrays, go[b].numpy(), tr[b].numpy(), finger, betas[b].numpy(),
                                       MANO_FINGERTIP_SETS["freihand"])
        np.testing.assert_allclose(out.vertices[b].numpy(), verts, atol=1e-7)  # model buffers are float32
        np.testing.assert_allclose(out.joints[b].numpy(), joints, atol=1e-7)  # model buffers are float32


def test_root_rotation_is_about_the_root_joint(mano_path):
    model = load_hand_model("mano", path=mano_path).double()
    zeros = torch.zeros(1, 3, dtype=torch.float64)
    rest = model(zeros, zeros)
    turned = model(torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64), zeros)
    torch.testing.assert_close(turned.joints[:, 0], rest.joints[:, 0])
    assert (turned.vertices - rest.vertices).abs().max() > 1e-3


def test_output_reports_rest_root_and_full_pose(mano_path):
    model = load_hand_model("mano", path=mano_path, num_pose_pcs=6, flat_hand_mean=False).double()
    gen = torch.Generator().manual_seed(2)
    go, tr, pcs, betas = (torch.randn(3, n, generator=gen, dtype=torch.float64) for n in (3, 3, 6, 10))
    out = model(go, tr, pose_pcs=pcs, betas=betas)
    rest = model(torch.zeros_like(go), torch.zeros_like(tr), pose_pcs=pcs, betas=betas)
    torch.testing.assert_close(out.rest_root, rest.joints[:, 0])
    torch.testing.assert_close(out.joints[:, 0], out.rest_root + tr)
    assert out.full_pose.shape == (3, 16, 3)
    torch.testing.assert_close(out.full_pose[:, 0], go)
    torch.testing.assert_close(out.full_pose[:, 1:].reshape(3, 45), model.finger_pose(pose_pcs=pcs))
    # the reported full pose reproduces the hand (the mean taken out of the fingers again)
    again = model(out.full_pose[:, 0], tr, hand_pose=out.full_pose[:, 1:] - model.pose_mean.double().view(15, 3),
                  betas=betas)
    torch.testing.assert_close(again.vertices, out.vertices)


def test_place_is_forward_with_the_equivalent_parameters(mano_path):
    """place(R, root) = forward(axis-angle of R, root - rest root), for angles up to pi."""
    model = load_hand_model("mano", path=mano_path, num_pose_pcs=6).double()
    rotvecs = Rotation.random(4, random_state=3).as_rotvec()
    rotvecs[0] *= np.pi / np.linalg.norm(rotvecs[0])  # a half turn
    rotation = torch.as_tensor(Rotation.from_rotvec(rotvecs).as_matrix())
    gen = torch.Generator().manual_seed(4)
    root, pcs, betas = (torch.randn(4, n, generator=gen, dtype=torch.float64) for n in (3, 6, 10))
    root = 0.1 * root + torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)
    placed = model.place(rotation, root, pose_pcs=pcs, betas=betas)
    torch.testing.assert_close(placed.joints[:, 0], root)
    equivalent = model(placed.full_pose[:, 0], root - placed.rest_root, pose_pcs=pcs, betas=betas)
    torch.testing.assert_close(placed.vertices, equivalent.vertices)
    torch.testing.assert_close(placed.joints, equivalent.joints)
    torch.testing.assert_close(axis_angle_to_matrix(placed.full_pose[:, 0]), rotation)
    with pytest.raises(Mask2HandError, match="rotation"):
        model.place(rotation[:, :2], root)
    with pytest.raises(Mask2HandError, match="root"):
        model.place(rotation, root[:2])


def test_pose_from_pcs_is_the_pose_input_of_the_pcs(mano_path):
    model = load_hand_model("mano", path=mano_path, num_pose_pcs=6, flat_hand_mean=False).double()
    pcs = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    pose = model.pose_from_pcs(pcs)
    assert pose.shape == (3, 45)
    zeros = torch.zeros(3, 3, dtype=torch.float64)
    torch.testing.assert_close(model(zeros, zeros, hand_pose=pose).vertices, model(zeros, zeros, pose_pcs=pcs).vertices)
    with pytest.raises(Mask2HandError, match="pose_pcs"):
        model.pose_from_pcs(torch.zeros(3, 7, dtype=torch.float64))


def test_in_convention_gives_each_layer_the_same_hand(mano_path):
    """Parameters in either pose convention (pose or pose_pcs, torch or numpy) pose the same hand
    on the flat and the mean-relative layer once converted, and convert back unchanged."""
    flat = load_hand_model("mano", path=mano_path, num_pose_pcs=12, flat_hand_mean=True).double()
    relative = load_hand_model("mano", path=mano_path, num_pose_pcs=12, flat_hand_mean=False).double()
    gen = torch.Generator().manual_seed(3)
    orient, transl = torch.randn(2, 3, generator=gen, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)
    betas = torch.randn(2, 10, generator=gen, dtype=torch.float64)
    pcs = torch.randn(2, 12, generator=gen, dtype=torch.float64)
    expected = relative(orient, transl, pose_pcs=pcs, betas=betas).vertices
    given = HandParams(global_orient=orient, transl=transl, betas=betas, pose_pcs=pcs, flat_hand_mean=False)
    assert relative.model_pose_mean.abs().max() > 0.05  # the conventions differ
    as_flat = relative.in_convention(given, flat_hand_mean=True)
    assert as_flat.flat_hand_mean and as_flat.pose_pcs is None
    for layer in (flat, relative):
        torch.testing.assert_close(layer(**given.layer_inputs(layer)).vertices, expected)
        torch.testing.assert_close(layer(**as_flat.layer_inputs(layer)).vertices, expected)
    back = flat.in_convention(as_flat, flat_hand_mean=False)
    torch.testing.assert_close(back.pose, relative.pose_from_pcs(pcs))
    as_numpy = as_flat.map(lambda v: v.numpy())
    np.testing.assert_allclose(relative.in_convention(as_numpy).pose, back.pose.numpy(), atol=1e-6)
    with pytest.raises(Mask2HandError, match="both pose conventions"):
        HandParams.stack([given, as_flat], torch.stack)


def test_matrix_to_axis_angle_inverts_rodrigues_at_every_angle():
    rng = np.random.default_rng(0)
    axes = rng.normal(size=(3, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    special = np.concatenate([np.zeros((1, 3)), 1e-7 * axes[:1], np.pi * axes[1:2], (np.pi - 1e-4) * axes[2:3]])
    rotvecs = np.concatenate([Rotation.random(100, random_state=2).as_rotvec(), special])
    matrices = torch.as_tensor(Rotation.from_rotvec(rotvecs).as_matrix())
    ours = matrix_to_axis_angle(matrices)
    assert (ours.norm(dim=1) <= np.pi + 1e-9).all()
    torch.testing.assert_close(axis_angle_to_matrix(ours), matrices, atol=1e-9, rtol=0)
    small = torch.tensor([[1e-8, 0.0, 0.0], [0.3, -0.2, 0.1]], dtype=torch.float64, requires_grad=True)
    back = matrix_to_axis_angle(axis_angle_to_matrix(small))
    torch.testing.assert_close(back, small.detach(), atol=1e-10, rtol=0)
    back.sum().backward()
    assert torch.isfinite(small.grad).all()


def test_freihand_joint_order(mano_path):
    """Joint 4 is the thumb tip vertex, 8 index tip, ..., 20 little tip; 1 is the thumb's first rig joint."""
    model = load_hand_model("mano", path=mano_path).double()
    gen = torch.Generator().manual_seed(0)
    out = model(torch.randn(2, 3, generator=gen, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64),
                hand_pose=torch.randn(2, 45, generator=gen, dtype=torch.float64) * 0.3)
    for joint, vertex in zip((4, 8, 12, 16, 20), MANO_FINGERTIP_SETS["freihand"]):
        torch.testing.assert_close(out.joints[:, joint], out.vertices[:, vertex])
    regressed = model.joint_regressor.double() @ model.v_template.double()
    rest = model(torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64))
    torch.testing.assert_close(rest.joints[0, 1], regressed[13])  # thumb base is MANO joint 13
    torch.testing.assert_close(rest.joints[0, 17], regressed[7])  # little base is MANO joint 7


def test_fingertip_sets_are_selectable(mano_path):
    for name, ids in MANO_FINGERTIP_SETS.items():
        model = load_hand_model("mano", path=mano_path, fingertips=name)
        assert model.fingertip_ids.tolist() == list(ids)
    with pytest.raises(Mask2HandError, match="fingertip"):
        load_hand_model("mano", path=mano_path, fingertips="nonsense")


def test_joints_from_vertices_of_rest_mesh_match_regressor(mano_path):
    model = load_hand_model("mano", path=mano_path).double()
    zeros = torch.zeros(1, 3, dtype=torch.float64)
    out = model(zeros, zeros)
    # at rest no joint moves, so chain joints equal regressed joints exactly
    torch.testing.assert_close(model.joints_from_vertices(out.vertices), out.joints)


def test_pca_round_trip(mano_path):
    model = load_hand_model("mano", path=mano_path, num_pose_pcs=6).double()
    pcs = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    pose = model.finger_pose(pose_pcs=pcs)
    coefficients = (pose - model.pose_mean.double()) @ torch.linalg.pinv(model.pose_components.double())
    torch.testing.assert_close(coefficients, pcs)
    # pose given as axis-angle and as PCA coefficients gives the same hand
    zeros = torch.zeros(5, 3, dtype=torch.float64)
    torch.testing.assert_close(model(zeros, zeros, hand_pose=pose - model.pose_mean.double()).vertices,
                               model(zeros, zeros, pose_pcs=pcs).vertices)


def test_rodrigues_matches_scipy_and_is_smooth_at_zero():
    vecs = torch.randn(100, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    vecs[0] = 0
    vecs[1] = 1e-9
    expected = Rotation.from_rotvec(vecs.numpy()).as_matrix()
    np.testing.assert_allclose(axis_angle_to_matrix(vecs).numpy(), expected, atol=1e-12)
    zero = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(axis_angle_to_matrix, (zero,))


def test_missing_mano_file_explains_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("MANO_RIGHT_PATH", raising=False)
    with pytest.raises(Mask2HandError, match="MANO website"):
        load_hand_model("mano")
    with pytest.raises(Mask2HandError, match="not found"):
        load_hand_model("mano", path=tmp_path / "nope.pkl")


def test_mano_path_from_environment(mano_path, monkeypatch):
    monkeypatch.setenv("MANO_RIGHT_PATH", str(mano_path))
    assert load_hand_model("mano").num_vertices == 778


@pytest.mark.parametrize("content", [b"not a pickle at all", pickle.dumps({"v_template": np.zeros((3, 3))}),
                                     pickle.dumps([1, 2, 3])])
def test_corrupt_mano_files_give_clear_error(tmp_path, content):
    bad = tmp_path / "MANO_RIGHT.pkl"
    bad.write_bytes(content)
    with pytest.raises(Mask2HandError, match="MANO"):
        load_hand_model("mano", path=bad)


def test_truncated_mano_file(mano_path, tmp_path):
    bad = tmp_path / "MANO_RIGHT.pkl"
    bad.write_bytes(mano_path.read_bytes()[:5000])
    with pytest.raises(Mask2HandError, match="not a readable MANO"):
        load_hand_model("mano", path=bad)


def test_loading_never_imports_chumpy(mano_path):
    import sys

    load_hand_model("mano", path=mano_path)
    assert "chumpy" not in sys.modules


def test_bad_arguments_raise_clear_errors(mano_path):
    model = load_hand_model("mano", path=mano_path, num_pose_pcs=6)
    z = torch.zeros(1, 3)
    with pytest.raises(Mask2HandError, match="pose_pcs"):
        model(z, z, pose_pcs=torch.zeros(1, 7))
    with pytest.raises(Mask2HandError, match="not both"):
        model(z, z, hand_pose=torch.zeros(1, 45), pose_pcs=torch.zeros(1, 6))
    with pytest.raises(Mask2HandError, match="global_orient"):
        model(torch.zeros(3), z)
    with pytest.raises(Mask2HandError, match="num_pose_pcs"):
        load_hand_model("mano", path=mano_path, num_pose_pcs=46)
    with pytest.raises(Mask2HandError, match="unknown hand model"):
        load_hand_model("smpl")


def test_the_missing_mano_message_names_options_the_commands_have(monkeypatch):
    """Each command the message names for --mano has that option, and train and ablate take
    network.hand_model_path through --set."""
    import re

    from mask2hand.cli import build_parser

    monkeypatch.delenv("MANO_RIGHT_PATH", raising=False)
    with pytest.raises(Mask2HandError) as caught:
        load_hand_model("mano")
    message = str(caught.value)
    named = re.search(r"--mano PATH \(([^)]*)\)", message).group(1).split(", ")
    subcommands = build_parser()._subparsers._group_actions[0].choices
    for command in named:
        assert "--mano" in subcommands[command]._option_string_actions, command
    for command in re.search(r"hand_model_path=PATH \(([^)]*)\)", message).group(1).split(", "):
        assert "--mano" not in subcommands[command]._option_string_actions
        assert "--set" in subcommands[command]._option_string_actions, command


def test_the_former_pose_keyword_still_works_with_a_deprecation_warning():
    model = load_hand_model("open").double()
    z = torch.zeros(2, 3, dtype=torch.float64)
    pose = torch.randn(2, 45, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 0.3
    expected = model(z, z, hand_pose=pose).vertices
    with pytest.warns(DeprecationWarning, match="hand_pose"):
        torch.testing.assert_close(model(z, z, pose=pose).vertices, expected)
    rotation = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    with pytest.warns(DeprecationWarning, match="hand_pose"):
        old = model.place(rotation, z, pose=pose).vertices
    torch.testing.assert_close(old, model.place(rotation, z, hand_pose=pose).vertices)
    with pytest.raises(Mask2HandError, match="once"):
        model(z, z, hand_pose=pose, pose=pose)
