"""The Mask2Hand network: forward/backward for every configuration, input resizing with
K scaling, the global-pose parameterisation, rotation conversions, state dicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from scipy.spatial.transform import Rotation

from mask2hand.utils.dataclass_config import dataclass_from_dict
from mask2hand.errors import Mask2HandError
from mask2hand.hand import load_hand_model
from mask2hand.nn import (Mask2HandNet, NetConfig, RefineNet, build_backbone, decode_root_position,
                          encode_root_position, matrix_to_axis_angle, matrix_to_rotation_6d, rotation_6d_to_matrix)
from mask2hand.nn.refine import MAX_OFFSET

OPEN_ASSET = Path(__file__).parents[1] / "src" / "mask2hand" / "hand" / "assets" / "open_hand.npz"
SMALL = dict(input_size=64, backbone_width=0.25)


@pytest.fixture(scope="module")
def mano_hand(tmp_path_factory):
    from mano_fixture import write_mano_fixture

    path = write_mano_fixture(tmp_path_factory.mktemp("mano_nn") / "MANO_RIGHT.pkl", seed=0)
    return path


def _hand_config(name: str, mano_path) -> dict:
    if name == "open":
        if not OPEN_ASSET.exists():
            pytest.skip("open hand asset not built yet")
        return {"hand_model": "open"}
    return {"hand_model": "mano", "hand_model_path": str(mano_path)}


def _masks_and_K(batch: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Elliptic blobs (B,size,size) and a FreiHAND-like K for that size."""
    gen = torch.Generator().manual_seed(seed)
    rows, cols = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    masks = []
    for _ in range(batch):
        cy, cx = (0.35 + 0.3 * torch.rand(2, generator=gen)) * size
        ry, rx = (0.15 + 0.2 * torch.rand(2, generator=gen)) * size
        masks.append((((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1).float())
    f = 2.2 * size
    K = torch.tensor([[f, 0.0, size / 2], [0.0, f * 1.05, size / 2], [0.0, 0.0, 1.0]]).expand(batch, 3, 3).clone()
    return torch.stack(masks), K


@pytest.mark.parametrize("hand_name,num_pcs,pose_space,rotation", [
    ("mano", 6, "pca", "axis_angle"),
    ("mano", 45, "pca", "6d"),
    ("mano", 45, "axis_angle", "axis_angle"),
    ("open", 6, "pca", "6d"),
    ("open", 45, "pca", "axis_angle"),
])
def test_forward_backward(hand_name, num_pcs, pose_space, rotation, mano_hand):
    torch.manual_seed(0)
    config = NetConfig(**_hand_config(hand_name, mano_hand), num_pose_pcs=num_pcs, pose_space=pose_space,
                       rotation=rotation, **SMALL)
    net = Mask2HandNet(config)
    masks, K = _masks_and_K(3, 96)
    out = net(masks, K)
    V = net.hand.num_vertices
    assert out.vertices.shape == out.refined_vertices.shape == (3, V, 3)
    assert out.joints.shape == out.refined_joints.shape == (3, 21, 3)
    assert out.silhouette.shape == out.input_mask.shape == (3, 64, 64)
    assert out.input_K.shape == (3, 3, 3)
    assert out.params.global_orient.shape == out.params.transl.shape == (3, 3)
    assert out.params.betas.shape == (3, 10)
    if pose_space == "pca":
        assert out.params.pose_pcs.shape == (3, num_pcs) and out.params.pose is None
    else:
        assert out.params.pose.shape == (3, 45) and out.params.pose_pcs is None
    assert torch.isfinite(out.refined_vertices).all() and (out.vertices[..., 2] > 0).all()
    # a fresh RefineNet barely moves the mesh
    assert (out.refined_vertices - out.vertices).abs().max() < 0.1 * MAX_OFFSET

    target = torch.zeros_like(out.joints)
    loss = ((out.joints - target) ** 2).mean() + ((out.refined_joints - target) ** 2).mean()
    loss.backward()
    encoder = net.encoder
    for module in (encoder.backbone.conv1, encoder.fc[0], encoder.pose_head[0], encoder.rotation_head[0],
                   encoder.translation_head[0], encoder.shape_head[0], net.refine_net.head[-1]):
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0


def test_paper_configuration(mano_hand):
    net = Mask2HandNet(NetConfig.paper(6, hand_model="mano", hand_model_path=str(mano_hand), input_size=64))
    counts = net.parameter_counts()
    reference = torchvision.models.resnet18(weights=None)
    resnet_params = sum(p.numel() for n, p in reference.named_parameters() if not n.startswith("fc.")) - 2 * 64 * 49
    heads = (516 * 512 + 512) + (512 * 256 + 256 + 256 * 6 + 6) + (512 * 256 + 256 + 256 * 128 + 128 + 128 * 3 + 3) \
        + (512 * 256 + 256 + 256 * 128 + 128 + 128 * 3 + 3) + (512 * 256 + 256 + 256 * 10 + 10)
    assert counts["encoder"] == resnet_params + heads
    assert counts["refine"] > 29_000_000  # 12,544 x 2,334 fully connected head
    masks, K = _masks_and_K(2, 64)
    out = net(masks, K)
    out.refined_joints.sum().backward()
    assert net.encoder.backbone.conv1.weight.grad.abs().sum() > 0


def test_resnet18_matches_torchvision_layout():
    ours = build_backbone("resnet18", 1.0).state_dict()
    reference = torchvision.models.resnet18(weights=None).state_dict()
    theirs = {k: v for k, v in reference.items() if not k.startswith("fc.")}
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        expected = (64, 1, 7, 7) if key == "conv1.weight" else tuple(value.shape)
        assert tuple(ours[key].shape) == expected, key


def test_compact_refine_head_is_small():
    compact = sum(p.numel() for p in RefineNet(778, "compact").parameters())
    paper = sum(p.numel() for p in RefineNet(778, "paper").parameters())
    assert paper > 29_000_000 and compact < 0.05 * paper


def test_resized_input_with_scaled_K_gives_same_output(mano_hand):
    torch.manual_seed(1)
    net = Mask2HandNet(NetConfig(**_hand_config("mano", mano_hand), num_pose_pcs=6, **SMALL)).eval()
    masks, K = _masks_and_K(2, 64, seed=3)
    big = masks.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    K2 = K.clone()
    K2[:, :2] *= 2
    with torch.no_grad():
        a, b = net(masks, K), net(big.unsqueeze(1), K2)
    for name in ("vertices", "joints", "refined_vertices", "refined_joints", "silhouette", "input_mask", "input_K"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-6, rtol=1e-5)


def test_non_square_input_is_padded_to_a_square_keeping_its_aspect(mano_hand):
    net = Mask2HandNet(NetConfig(**_hand_config("mano", mano_hand), num_pose_pcs=6, **SMALL)).eval()
    masks = torch.zeros(1, 96, 128, dtype=torch.float64)
    masks[:, 30:70, 40:90] = 1
    K = torch.tensor([[200.0, 0.0, 64.0], [0.0, 210.0, 48.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        out = net(masks, K)
    # padded to 128 x 128 (16 rows above and below), then halved: one scale for both axes
    expected = torch.tensor([[100.0, 0.0, 32.0], [0.0, 105.0, 32.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(out.input_K[0], expected)
    assert out.vertices.dtype == torch.float32
    assert out.input_mask.shape == (1, 64, 64)


def test_refine_off(mano_hand):
    net = Mask2HandNet(NetConfig(**_hand_config("mano", mano_hand), num_pose_pcs=6, refine=False,
                                 predict_shape=False, **SMALL))
    assert net.refine_net is None and net.encoder.shape_head is None
    masks, K = _masks_and_K(2, 64)
    out = net(masks, K)
    assert out.refined_vertices is None and out.refined_joints is None
    assert out.final_vertices is out.vertices and out.final_joints is out.joints
    assert torch.equal(out.params.betas, torch.zeros(2, 10))
    assert out.silhouette.shape == (2, 64, 64)


@pytest.mark.parametrize("rotation", ["axis_angle", "6d"])
def test_params_reproduce_the_mesh_through_the_hand_layer(rotation, mano_hand):
    """The rotate-about-the-wrist construction equals the hand layer with global_orient and transl."""
    torch.manual_seed(2)
    net = Mask2HandNet(NetConfig(**_hand_config("mano", mano_hand), num_pose_pcs=45, rotation=rotation,
                                 refine=False, **SMALL)).eval()
    with torch.no_grad():  # large rotations and poses
        net.encoder.rotation_head[-1].bias.normal_(0, 1.5)
        net.encoder.pose_head[-1].bias.normal_(0, 0.5)
        net.encoder.shape_head[-1].bias.normal_(0, 1.0)
        masks, K = _masks_and_K(3, 64)
        out = net(masks, K)
        p = out.params
        again = net.hand(p.global_orient, p.transl, pose_pcs=p.pose_pcs, betas=p.betas)
    assert p.global_orient.norm(dim=1).max() > 0.5
    torch.testing.assert_close(again.vertices, out.vertices, atol=2e-5, rtol=0)
    torch.testing.assert_close(again.joints, out.joints, atol=2e-5, rtol=0)


def test_rotation_conversions_match_scipy():
    rng = np.random.default_rng(0)
    rotvecs = Rotation.random(200, random_state=1).as_rotvec()
    # include the hard cases: zero, tiny, and angles at and near pi
    axes = rng.normal(size=(4, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    special = np.concatenate([np.zeros((1, 3)), 1e-7 * axes[:1], np.pi * axes[1:2], (np.pi - 1e-4) * axes[2:4]])
    rotvecs = np.concatenate([rotvecs, special])
    matrices = torch.as_tensor(Rotation.from_rotvec(rotvecs).as_matrix())
    ours = matrix_to_axis_angle(matrices)
    back = torch.as_tensor(Rotation.from_rotvec(ours.numpy()).as_matrix())
    torch.testing.assert_close(back, matrices, atol=1e-9, rtol=0)
    assert (ours.norm(dim=1) <= np.pi + 1e-9).all()
    torch.testing.assert_close(rotation_6d_to_matrix(matrix_to_rotation_6d(matrices)), matrices, atol=1e-12, rtol=0)
    # any 6-vector gives a proper rotation
    d6 = torch.randn(50, 6, dtype=torch.float64)
    R = rotation_6d_to_matrix(d6)
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(50, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(50, dtype=torch.float64))


def test_matrix_to_axis_angle_gradient_is_finite_near_identity():
    aa = torch.tensor([[1e-8, 0.0, 0.0], [0.3, -0.2, 0.1]], dtype=torch.float64, requires_grad=True)
    from mask2hand.hand.lbs import axis_angle_to_matrix

    out = matrix_to_axis_angle(axis_angle_to_matrix(aa))
    torch.testing.assert_close(out, aa.detach(), atol=1e-10, rtol=0)
    out.sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_translation_code_round_trip():
    gen = torch.Generator().manual_seed(0)
    size = 96
    K = torch.tensor([[230.0, 0.5, 50.0], [0.0, 240.0, 45.0], [0.0, 0.0, 1.0]]).expand(4, 3, 3)
    code = torch.randn(4, 3, generator=gen) * 0.3
    root = decode_root_position(code, K, size)
    assert (root[:, 2] > 0).all()
    pixel = torch.einsum("bij,bj->bi", K, root)
    torch.testing.assert_close(pixel[:, :2] / pixel[:, 2:], size * (0.5 + code[:, :2]), atol=1e-3, rtol=0)
    torch.testing.assert_close(encode_root_position(root, K, size), code, atol=1e-5, rtol=0)


def test_state_dict_holds_no_hand_model(mano_hand):
    config = NetConfig(**_hand_config("mano", mano_hand), num_pose_pcs=6, **SMALL)
    net = Mask2HandNet(config)
    state = net.state_dict()
    assert not any(key.startswith("hand.") for key in state)
    other = Mask2HandNet(config)
    other.load_state_dict(state)
    assert net.hand_identity == other.hand_identity and net.hand_identity["name"] == "mano"


def test_config_from_dict_and_errors(mano_hand):
    config = dataclass_from_dict(NetConfig, {"num_pose_pcs": 6, "input_size": 96, "rotation": "axis_angle",
                                             "sigma": 1})
    assert config.sigma == 1.0 and config.input_size == 96
    with pytest.raises(Mask2HandError, match="axis_angle"):
        NetConfig(pose_space="axis_angle", num_pose_pcs=6).validate()
    with pytest.raises(Mask2HandError):
        dataclass_from_dict(NetConfig, {"backbone": "vgg"})
    hand = load_hand_model("mano", path=mano_hand, num_pose_pcs=6)
    with pytest.raises(Mask2HandError, match="pose PCs"):
        Mask2HandNet(NetConfig(hand_model="mano", num_pose_pcs=45, **SMALL), hand=hand)
    net = Mask2HandNet(NetConfig(hand_model="mano", num_pose_pcs=6, **SMALL), hand=hand)
    with pytest.raises(Mask2HandError, match="mask must be"):
        net(torch.zeros(2, 3, 64, 64), torch.eye(3))
    with pytest.raises(Mask2HandError, match="K must be"):
        net(torch.zeros(2, 64, 64), torch.eye(3).expand(3, 3, 3))


def test_exact_silhouette_for_inference(mano_hand):
    torch.manual_seed(4)
    net = Mask2HandNet(NetConfig(**_hand_config("mano", mano_hand), num_pose_pcs=6, **SMALL)).eval()
    masks, K = _masks_and_K(2, 64)
    with torch.no_grad():
        soft, exact = net(masks, K), net(masks, K, exact_silhouette=True)
    assert set(exact.silhouette.unique().tolist()) <= {0.0, 1.0}
    assert exact.silhouette.sum() > 0
    # the default soft silhouette thresholded at 0.5 is the exact mask
    agree = ((soft.silhouette > 0.5) == exact.silhouette.bool()).float().mean()
    assert agree > 0.999
    torch.testing.assert_close(exact.vertices, soft.vertices)


def test_channels_last_gives_the_same_output(mano_hand):
    config = NetConfig(**_hand_config("mano", mano_hand), num_pose_pcs=6, **SMALL)
    plain = Mask2HandNet(config).eval()
    fast = Mask2HandNet(NetConfig(**{**config.__dict__, "channels_last": not config.channels_last})).eval()
    fast.load_state_dict(plain.state_dict())
    masks, K = _masks_and_K(2, 64)
    with torch.no_grad():
        a, b = plain(masks, K), fast(masks, K)
    torch.testing.assert_close(b.refined_vertices, a.refined_vertices, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_small"])
def test_folded_batch_norms_give_the_same_output(backbone, mano_hand):
    torch.manual_seed(5)
    net = Mask2HandNet(NetConfig(**_hand_config("mano", mano_hand), num_pose_pcs=6, backbone=backbone, **SMALL))
    masks, K = _masks_and_K(4, 64)
    net.train()
    with torch.no_grad():  # non-trivial running statistics
        for _ in range(3):
            net(masks, K)
    net.eval()
    with torch.no_grad():
        before = net(masks, K)
        norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
        net.fold_batch_norms()
        after = net(masks, K)
    assert norms > 0 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    torch.testing.assert_close(after.refined_vertices, before.refined_vertices, atol=1e-5, rtol=1e-4)
    with pytest.raises(Mask2HandError, match="folded"):
        net.train()


def test_predicted_betas_stay_within_three_sigma():
    """An unbounded shape head once collapsed the hand to 5 cm (beta0 = -16) during training."""
    from mask2hand.nn.encoder import BETA_LIMIT, bounded_betas

    raw = torch.tensor([[-1e4, -16.0, -1.0, 0.0, 0.5, 1.0, 16.0, 1e4, 2.0, -2.0]])
    betas = bounded_betas(raw)
    assert betas.abs().max() <= BETA_LIMIT
    assert torch.allclose(betas[0, 3:6], raw[0, 3:6], atol=0.05)  # near zero nearly the identity
    assert (betas[0, :3].diff() > 0).all() and (betas[0, 5:8].diff() > 0).all()  # monotone
