"""Solve the thumb of the prior's archetypes so that contacts happen on the open hand.

    python tools/open_hand_tune_thumb.py

Prints thumb (flex, abd, twist) triples for CMC, MCP and IP per archetype: pads meet
in pinches, the thumb lies over the curled fingers in a fist, it opposes the fingers
across an object in grasps. The printed values are pasted into
mask2hand.hand.prior.THUMB_SOLVED (run again after a large change of the mesh). The
finger part of each archetype is fixed; only the nine thumb angles are optimized,
inside JOINT_LIMITS, with a weak pull toward a relaxed thumb and a penalty on thumb
skin entering the other fingers.
"""

from __future__ import annotations

import numpy as np
import torch

from mask2hand.hand import load_hand_model
from mask2hand.hand.prior import ARCHETYPES, JOINT_FRAMES, JOINT_LIMITS

# where each archetype's thumb pad goes: list of (landmark, weight) averaged, plus an
# offset along the averaged outward skin normal there (meters)
CONTACTS = {
    "pinch": ([("index_pad", 1.0)], 0.001),
    "ok": ([("index_pad", 1.0)], 0.001),
    "tripod": ([("index_pad", 0.5), ("middle_pad", 0.5)], 0.002),
    "fist": ([("index_middle_back", 0.5), ("middle_middle_back", 0.5)], 0.009),
    "point": ([("middle_middle_back", 0.6), ("ring_middle_back", 0.4)], 0.009),
    "victory": ([("ring_middle_back", 0.6), ("little_middle_back", 0.4)], 0.009),
    "horns": ([("middle_middle_back", 0.5), ("ring_middle_back", 0.5)], 0.009),
    "cylinder_grasp": ([("index_middle_pad", 0.5), ("middle_middle_pad", 0.5)], 0.035),
    "sphere_grasp": ([("index_pad", 0.4), ("middle_pad", 0.4), ("ring_pad", 0.2)], 0.040),
}
RELAXED_THUMB = np.array([[0.3, 0.3, 0.2], [0.25, 0.0, 0.0], [0.3, 0.0, 0.0]])
# pinches also free the flexion (MCP, PIP, DIP) of the pinching fingers: MANO-order
# joints, pulled toward the archetype's values
FREE_FINGERS = {"pinch": (0, 1, 2), "ok": (0, 1, 2), "tripod": (0, 1, 2, 3, 4, 5)}
FINGER_CHAINS = {"index": 0, "middle": 1, "little": 2, "ring": 3, "thumb": 4}


def landmarks(model) -> dict[str, int]:
    """Vertex ids of pads (middle of the distal phalanx, palmar) and of the back of the
    middle phalanges (dorsal) of each finger, and the thumb pad."""
    v = model.v_template.double().numpy()
    j = (model.joint_regressor.double() @ model.v_template.double()).numpy()
    tips = v[model.fingertip_ids.numpy()]  # thumb, index, middle, ring, little
    tip_of = {"thumb": tips[0], "index": tips[1], "middle": tips[2], "ring": tips[3], "little": tips[4]}
    out = {}
    for f, c in FINGER_CHAINS.items():
        base = 1 + 3 * c
        n = JOINT_FRAMES[3 * c + 2][:, 1]
        d_prox, d_dist = j[base + 1], j[base + 2]

        def pick(a, b, sign):
            axis = (b - a) / np.linalg.norm(b - a)
            mid = a + 0.55 * (b - a)
            near = np.abs((v - mid) @ axis) < 0.003
            near &= np.linalg.norm(v - mid, axis=1) < 0.015
            ids = np.where(near)[0]
            return int(ids[np.argmax(sign * (v[ids] @ n))])

        out[f"{f}_pad"] = pick(d_dist, tip_of[f], -1.0)
        out[f"{f}_middle_back"] = pick(d_prox, d_dist, 1.0)
        out[f"{f}_middle_pad"] = pick(d_prox, d_dist, -1.0)
    return out


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    tri = vertices[:, faces]
    fn = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    vn = torch.zeros_like(vertices).index_add_(1, faces.reshape(-1), fn.repeat_interleave(3, dim=1))
    return vn / vn.norm(dim=-1, keepdim=True)


def solve(model, name: str, marks: dict[str, int], steps: int = 250) -> np.ndarray:
    """Local (flex, abd, twist) (15,3) of the archetype with its thumb (and pinching fingers) solved."""
    limits = torch.as_tensor(JOINT_LIMITS)
    lo, hi = limits[..., 0], limits[..., 1]
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    base = torch.as_tensor(ARCHETYPES[name]).clone()
    base[12:] = torch.as_tensor(RELAXED_THUMB)
    free = torch.zeros(15, 3, dtype=torch.bool)
    free[12:] = True
    for j in FREE_FINGERS.get(name, ()):
        free[j, 0] = True
    start = torch.maximum(torch.minimum(base, hi - 1e-3), lo + 1e-3)
    u = torch.atanh((start - mid) / half).clone().requires_grad_(True)
    contact, offset = CONTACTS[name]
    weights = model.weights.double()
    thumb_skin = weights[:, 14:16].sum(1) > 0.5
    other_marks = torch.as_tensor([marks[f"{f}_pad"] for f in ("index", "middle", "ring", "little")]
                                  + [marks[f"{f}_middle_back"] for f in ("index", "middle", "ring", "little")])
    opt = torch.optim.Adam([u], lr=0.06)
    zeros = torch.zeros(1, 3, dtype=torch.float64)
    frames = torch.as_tensor(JOINT_FRAMES)
    ids = torch.as_tensor([marks[k] for k, _ in contact])
    w = torch.as_tensor([wk for _, wk in contact], dtype=torch.float64)
    relaxed = torch.as_tensor(ARCHETYPES[name]).clone()
    relaxed[12:] = torch.as_tensor(RELAXED_THUMB)
    for _ in range(steps):
        local = torch.where(free, mid + half * torch.tanh(u), base)
        pose = torch.einsum("jab,jb->ja", frames, local).reshape(1, 45)
        v = model(zeros, zeros, hand_pose=pose).vertices
        vn = vertex_normals(v, model.faces)
        target = (w[:, None] * (v[0, ids] + offset * vn[0, ids])).sum(0) / w.sum()
        pad = v[0, marks["thumb_pad"]]
        loss = ((pad - target) ** 2).sum() / 1e-4
        loss = loss + 0.02 * (((local - relaxed) ** 2) * free).sum()
        if offset > 0.005:  # the thumb lies on or opposes the fingers: keep its skin off them
            gap = torch.cdist(v[0, thumb_skin], v[0, other_marks]).min()
            loss = loss + torch.relu(0.008 - gap) ** 2 / 1e-5
        opt.zero_grad()
        loss.backward()
        opt.step()
    dist = float(((pad - target) ** 2).sum().sqrt().detach())
    print(f"# {name}: thumb pad {dist * 1000:.1f} mm from its target")
    return torch.where(free, mid + half * torch.tanh(u), base).detach().numpy()


def main() -> None:
    torch.manual_seed(0)
    model = load_hand_model("open").double()
    marks = landmarks(model)
    solved = {name: solve(model, name, marks) for name in CONTACTS}
    print("THUMB_SOLVED = {")
    for name, local in solved.items():
        rows = ", ".join("(" + ", ".join(f"{x:.3f}" for x in r) + ")" for r in local[12:])
        print(f'    "{name}": ({rows}),')
    print("}")
    print("FINGERS_SOLVED = {  # (MANO joint, flexion)")
    for name, joints in FREE_FINGERS.items():
        print(f'    "{name}": (' + ", ".join(f"({j}, {solved[name][j, 0]:.3f})" for j in joints) + "),")
    print("}")


if __name__ == "__main__":
    main()
