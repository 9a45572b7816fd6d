"""The NumPy hand layer (mask2hand.hand.numpy_layer): the torch layer's forward to 1e-5 m, on the
open hand and on a MANO-format model with pose correctives, and an exact Jacobian."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mask2hand.hand import load_hand_model
from mask2hand.hand.numpy_layer import NumpyHand
from mask2hand.hand.open_hand import load_open_hand_data


def random_params(batch: int, seed: int = 0) -> list[np.ndarray]:
    """global_orient, transl, pose, betas; the first hand's root and first finger joint at zero
    rotation, where Rodrigues' formula takes its series branch."""
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=(batch, 3)), rng.normal(size=(batch, 3)) * 0.1 + [0, 0, 0.5],
              rng.normal(size=(batch, 45)) * 0.5, rng.normal(size=(batch, 10))]
    params[0][0], params[2][0, :3] = 0.0, 0.0
    return params


@pytest.mark.parametrize("name", ["open", "mano"])
@pytest.mark.parametrize("flat_hand_mean", [True, False])
def test_forward_matches_the_torch_layer(name, flat_hand_mean, mano_path):
    hand = load_hand_model(name, path=mano_path if name == "mano" else None, flat_hand_mean=flat_hand_mean)
    assert (name == "mano") == hand.has_pose_correctives  # both branches of the corrective blend
    params = random_params(4)
    with torch.no_grad():
        out = hand(*(torch.from_numpy(p).float() for p in params[:2]), hand_pose=torch.from_numpy(params[2]).float(),
                   betas=torch.from_numpy(params[3]).float())
    vertices, joints = NumpyHand.from_layer(hand).forward(*params)
    assert np.abs(vertices - out.vertices.numpy()).max() < 1e-5
    assert np.abs(joints - out.joints.numpy()).max() < 1e-5


def test_joints_from_vertices_match_the_torch_layer():
    hand = load_hand_model("open")
    vertices = NumpyHand.from_layer(hand).forward(*random_params(3))[0] + np.random.default_rng(1).normal(
        scale=1e-3, size=(3, hand.num_vertices, 3))  # any mesh of the topology, not only a posed one
    expected = hand.joints_from_vertices(torch.from_numpy(vertices)).numpy()
    assert np.abs(NumpyHand.from_layer(hand).joints_from_vertices(vertices) - expected).max() < 1e-12


def test_from_data_is_from_layer():
    data = load_open_hand_data()
    for flat in (True, False):
        a, b = NumpyHand.from_data(data, flat), NumpyHand.from_layer(load_hand_model("open", flat_hand_mean=flat))
        assert np.allclose(a.forward(*random_params(2))[0], b.forward(*random_params(2))[0], atol=1e-9)


@pytest.mark.parametrize("name", ["open", "mano"])
def test_jacobian_is_the_derivative(name, mano_path):
    """Against central differences of the forward (float64), every parameter of three hands."""
    hand = NumpyHand.from_layer(load_hand_model(name, path=mano_path if name == "mano" else None,
                                                flat_hand_mean=False))
    params = random_params(3, seed=1)
    vertices, joints, d_vertices, d_joints = hand.jacobian(*params)
    assert np.allclose(vertices, hand.forward(*params)[0]) and np.allclose(joints, hand.forward(*params)[1])
    x = np.concatenate(params, axis=1)
    step = 1e-6
    for p in range(x.shape[1]):
        shift = np.zeros_like(x)
        shift[:, p] = step
        (v_plus, j_plus), (v_minus, j_minus) = (hand.forward(*np.split(x + s, [3, 6, 51], axis=1))
                                                for s in (shift, -shift))
        # the Jacobian's layout is coordinate-major: [b, p, xyz, vertex]
        assert np.abs(d_vertices[:, p] - np.swapaxes(v_plus - v_minus, 1, 2) / (2 * step)).max() < 1e-7, p
        assert np.abs(d_joints[:, p] - np.swapaxes(j_plus - j_minus, 1, 2) / (2 * step)).max() < 1e-7, p
