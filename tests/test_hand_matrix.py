"""The hand layer's public entry points on every device x dtype (device_dtype.py), for both models
(the shipped open hand, without pose correctives, and the MANO-format fixture, with them): each keeps
the dtype and device of its inputs, agrees with its float64 cpu answer within the tolerance of the
dtype (so float32 agrees with float64, and cuda with cpu), passes finite gradients to every input,
and passes gradcheck in float64."""

from __future__ import annotations

import pytest
import torch

from device_dtype import assert_close, assert_finite_gradients, assert_kept, on
from mask2hand.hand import HandModel, HandOutput, load_hand_model
from mask2hand.hand.lbs import axis_angle_to_matrix, matrix_to_axis_angle
from mask2hand.hand.numpy_layer import NumpyHand

BATCH = 3
NUM_PCS = 12
OUTPUTS = ("vertices", "joints", "rest_root", "full_pose")


@pytest.fixture(scope="module", params=["open", "mano"])
def hand(request, mano_path) -> HandModel:
    """The layer as loaded (float32 buffers, on the cpu): each call casts them to its inputs' dtype."""
    return load_hand_model(request.param, path=mano_path if request.param == "mano" else None, num_pose_pcs=NUM_PCS)


def inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of hand parameters, float64 on the cpu: turned, half a meter in front of the camera,
    fingers bent up to about 0.6 rad, a shape up to two standard deviations from the mean."""
    gen = torch.Generator().manual_seed(seed)
    return {"global_orient": torch.randn(BATCH, 3, generator=gen, dtype=torch.float64),
            "transl": 0.05 * torch.randn(BATCH, 3, generator=gen, dtype=torch.float64)
            + torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64),
            "hand_pose": 0.3 * torch.randn(BATCH, 45, generator=gen, dtype=torch.float64),
            "pose_pcs": torch.randn(BATCH, NUM_PCS, generator=gen, dtype=torch.float64),
            "betas": torch.randn(BATCH, 10, generator=gen, dtype=torch.float64)}


def weights(output: HandOutput) -> list[torch.Tensor]:
    """Fixed weights for each point output: a loss whose gradient depends on every coordinate."""
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(getattr(output, name).shape, generator=gen, dtype=torch.float64) for name in OUTPUTS[:3]]


def weighted_sum(output: HandOutput, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return sum((getattr(output, name) * on(device, dtype, w)[0]).sum() for name, w in zip(OUTPUTS, weights(output)))


def check_output(output: HandOutput, reference: HandOutput, device: torch.device, dtype: torch.dtype) -> None:
    for name in OUTPUTS:
        assert_kept(getattr(output, name), device, dtype)
        assert_close(getattr(output, name), getattr(reference, name), msg=name)


def test_the_float64_reference_is_the_numpy_layers(hand):
    """The answer every cell is compared with, float64 on the cpu, is the independent NumPy layer's
    (float64 throughout) to the float64 tolerance: no step of the torch layer drops to float32."""
    params = inputs()
    reference = hand(params["global_orient"], params["transl"], hand_pose=params["hand_pose"], betas=params["betas"])
    vertices, joints = NumpyHand.from_layer(hand).forward(*(params[k].numpy() for k in ("global_orient", "transl",
                                                                                          "hand_pose", "betas")))
    assert_close(reference.vertices, torch.from_numpy(vertices))
    assert_close(reference.joints, torch.from_numpy(joints))


@pytest.mark.parametrize("pose_kind", ["hand_pose", "pose_pcs"])
def test_forward(hand, device, dtype, pose_kind):
    params = {k: v for k, v in inputs().items() if k in ("global_orient", "transl", "betas", pose_kind)}
    reference = hand(**params)
    layer = hand.to(device)
    moved = dict(zip(params, on(device, dtype, *params.values())))
    for value in moved.values():
        value.requires_grad_(True)
    output = layer(**moved)
    check_output(output, reference, device, dtype)
    weighted_sum(output, device, dtype).backward()
    assert_finite_gradients(*moved.values())


def test_place(hand, device, dtype):
    params = inputs(seed=2)
    root = params["transl"]
    rotation = axis_angle_to_matrix(params["global_orient"])
    reference = hand.place(rotation, root, hand_pose=params["hand_pose"], betas=params["betas"])
    layer = hand.to(device)
    rotation, root, pose, betas = on(device, dtype, rotation, root, params["hand_pose"], params["betas"])
    for value in (rotation, root, pose, betas):
        value.requires_grad_(True)
    output = layer.place(rotation, root, hand_pose=pose, betas=betas)
    check_output(output, reference, device, dtype)
    weighted_sum(output, device, dtype).backward()
    assert_finite_gradients(rotation, root, pose, betas)


def test_joints_from_vertices_and_pose_from_pcs(hand, device, dtype):
    params = inputs(seed=3)
    vertices = hand(params["global_orient"], params["transl"], hand_pose=params["hand_pose"]).vertices
    layer = hand.to(device)
    moved_vertices, pcs = on(device, dtype, vertices, params["pose_pcs"])
    joints = layer.joints_from_vertices(moved_vertices)
    assert_kept(joints, device, dtype)
    assert_close(joints, hand.joints_from_vertices(vertices))
    pose = layer.pose_from_pcs(pcs)
    assert_kept(pose, device, dtype)
    assert_close(pose, hand.pose_from_pcs(params["pose_pcs"]))


def test_rotation_conversions(device, dtype):
    # angles from 0 to nearly pi, where the inverse is hardest to take
    axis_angle = inputs(seed=4)["hand_pose"].reshape(-1, 3)
    axis_angle = axis_angle / axis_angle.norm(dim=-1, keepdim=True) * torch.linspace(0.0, 3.1, len(axis_angle),
                                                                                       dtype=torch.float64)[:, None]
    moved = on(device, dtype, axis_angle)[0].requires_grad_(True)
    matrix = axis_angle_to_matrix(moved)
    assert_kept(matrix, device, dtype)
    assert_close(matrix, axis_angle_to_matrix(axis_angle))
    back = matrix_to_axis_angle(matrix)
    assert_kept(back, device, dtype)
    # near pi the axis-angle of a float32 matrix moves by about sqrt(float32 eps): the matrices are compared
    assert_close(axis_angle_to_matrix(back), axis_angle_to_matrix(axis_angle))
    (back * on(device, dtype, axis_angle)[0]).sum().backward()
    assert_finite_gradients(moved)


@pytest.mark.parametrize("pose_kind", ["hand_pose", "pose_pcs"])
def test_gradcheck_float64(hand, device, pose_kind):
    """Analytic gradients of the joints and of a few vertices against finite differences, one hand."""
    layer = hand.to(device)
    params = {k: v[:1] for k, v in inputs(seed=5).items() if k in ("global_orient", "transl", "betas", pose_kind)}
    names = list(params)
    values = [v.requires_grad_(True) for v in on(device, torch.float64, *params.values())]
    some = torch.linspace(0, hand.num_vertices - 1, 12).long().to(device)

    def points(*args: torch.Tensor) -> torch.Tensor:
        out = layer(**dict(zip(names, args)))
        return torch.cat([out.joints, out.vertices[:, some]], dim=1)

    assert torch.autograd.gradcheck(points, values)
