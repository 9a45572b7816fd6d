"""A picture of the open hand model: rest pose, shape and pose variety (`mask2hand hand-gallery`).

Meshes are drawn with a painter's algorithm (faces sorted back to front, Lambert
shading) on 2-D matplotlib axes: fast, dependency-free and good enough to judge
whether the hands look human.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mask2hand.export.files import mesh_bytes, write_files
from mask2hand.utils.files import atomic_path
from mask2hand.export.figures import FINGER_COLORS, FREIHAND_BONES, SKIN

# View rotations: rows are the screen's right, up and toward-the-viewer axes in the
# hand's rest frame (fingers -x, back of the hand +y, thumb +z).
VIEWS = {
    "back": np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
    "palm": np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
    "thumb side": np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
}


def view_matrix(yaw_deg: float = 0.0, pitch_deg: float = 0.0, base: str = "palm") -> np.ndarray:
    """A base view turned by yaw (about the screen's up axis) then pitch (about its right axis)."""
    y, p = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rp = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return rp @ ry @ VIEWS[base]


def draw_mesh(ax, vertices: np.ndarray, faces: np.ndarray, view: np.ndarray, joints: np.ndarray | None = None,
              title: str | None = None, color: np.ndarray = SKIN, center: np.ndarray | None = None,
              half_extent: float | None = None) -> None:
    """Draw one shaded mesh (V,3) with optional 21 joints (21,3) on a 2-D axes, orthographic.

    view (3,3): rows = screen right, up, toward the viewer (see VIEWS).
    """
    from matplotlib.collections import LineCollection, PolyCollection

    v = np.asarray(vertices, dtype=np.float64) @ view.T
    tri = v[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-15
    light = np.array([-0.35, 0.45, 0.82])
    light /= np.linalg.norm(light)
    lambert = np.clip(normals @ light, 0.0, 1.0)
    # back faces are hidden by front faces in a closed mesh; shade them dark anyway
    shade = 0.28 + 0.72 * lambert
    colors = np.clip(shade[:, None] * color[None, :], 0, 1)
    order = np.argsort(tri[:, :, 2].mean(axis=1))  # far (small z) first
    polys = tri[order][:, :, :2]
    ax.add_collection(PolyCollection(polys, facecolors=colors[order], edgecolors=colors[order], linewidths=0.15))
    if joints is not None:
        j = np.asarray(joints, dtype=np.float64) @ view.T
        segs = [j[[a, b], :2] for a, b in FREIHAND_BONES]
        cols = [FINGER_COLORS[(b - 1) // 4] for _, b in FREIHAND_BONES]
        ax.add_collection(LineCollection(segs, colors=cols, linewidths=0.9, alpha=0.75))
        ax.scatter(j[:, 0], j[:, 1], s=3, c=["k"] + [FINGER_COLORS[(k - 1) // 4] for k in range(1, 21)], zorder=3)
    c = v[:, :2].mean(axis=0) if center is None else (np.asarray(center) @ view.T)[:2]
    r = half_extent if half_extent is not None else 0.55 * np.ptp(v[:, :2], axis=0).max()
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] - r, c[1] + r)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=6.5, linespacing=1.0)


def write_hand_gallery(out_dir: str | os.PathLike, seed: int = 0) -> list[Path]:
    """Write `hand_gallery.png` and `open_hand_rest.obj` into out_dir; return their paths.

    The PNG shows the open hand's rest pose from 3 views, +-2 sigma of the first 3
    shape components, 16 hands from pose-PCA coefficients U[-2,2)^6 (the model's
    mean pose added) and 16 hands from the pose prior, each with its 21 joints.
    """
    import torch
    from matplotlib.figure import Figure  # no pyplot: no global backend state is touched

    from mask2hand.errors import Mask2HandError
    from mask2hand.hand import load_hand_model
    from mask2hand.hand.prior import sample_pose_prior

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Mask2HandError(f"cannot create the output folder {out}: {exc.strerror}; choose another --out") from None
    flat = load_hand_model("open", num_pose_pcs=6, flat_hand_mean=True)
    model = load_hand_model("open", num_pose_pcs=6, flat_hand_mean=False)
    faces = model.faces.numpy()
    gen = torch.Generator().manual_seed(seed)

    def run(n: int, layer=flat, **kw):
        with torch.no_grad():
            o = layer(torch.zeros(n, 3), torch.zeros(n, 3), **kw)
        return o.vertices.numpy(), o.joints.numpy()

    cols = 8
    fig = Figure(figsize=(cols * 2.0, 6 * 2.2), dpi=110)
    grid = fig.add_gridspec(6, cols, hspace=0.22, wspace=0.02)
    rest_v, rest_j = run(1, hand_pose=torch.zeros(1, 45))
    for i, name in enumerate(VIEWS):
        ax = fig.add_subplot(grid[0, i])
        draw_mesh(ax, rest_v[0], faces, VIEWS[name], rest_j[0], title=f"rest: {name}")
    hl = np.linalg.norm(rest_j[0, 12] - rest_j[0, 0]) * 100
    ax = fig.add_subplot(grid[0, 3:])
    ax.axis("off")
    ax.text(0.02, 0.5, f"open hand: {model.num_vertices} vertices, {len(faces)} faces\n"
            f"hand length (wrist to middle tip) at betas=0: {hl:.1f} cm\n"
            "row 2: betas k = -2, +2 (k = 0, 1, 2), back view\n"
            "rows 3-4: pose PCA coefficients U[-2,2)^6 (shown above each) + mean pose\n"
            "rows 5-6: samples of the pose prior", fontsize=9, va="center")
    for k in range(3):
        for s_i, sgn in enumerate((-2.0, 2.0)):
            betas = torch.zeros(1, 10)
            betas[0, k] = sgn
            v, j = run(1, hand_pose=torch.zeros(1, 45), betas=betas)
            ax = fig.add_subplot(grid[1, 2 * k + s_i])
            draw_mesh(ax, v[0], faces, VIEWS["back"], j[0], title=f"beta{k} = {sgn:+.0f}",
                      center=np.array([-0.09, 0.0, 0.005]), half_extent=0.115)
    pcs = torch.rand(16, 6, generator=gen) * 4.0 - 2.0
    v_pca, j_pca = run(16, layer=model, pose_pcs=pcs)
    prior = torch.as_tensor(sample_pose_prior(16, np.random.default_rng(seed)), dtype=torch.float32)
    v_pri, j_pri = run(16, hand_pose=prior)
    view = view_matrix(yaw_deg=-35, pitch_deg=20, base="palm")
    for n in range(16):
        ax = fig.add_subplot(grid[2 + n // cols, n % cols])
        draw_mesh(ax, v_pca[n], faces, view, j_pca[n], center=np.array([-0.08, -0.02, 0.01]), half_extent=0.105,
                  title=" ".join(f"{c:+.1f}" for c in pcs[n, :3].tolist()) + "\n"
                  + " ".join(f"{c:+.1f}" for c in pcs[n, 3:].tolist()))
        ax = fig.add_subplot(grid[4 + n // cols, n % cols])
        draw_mesh(ax, v_pri[n], faces, view, j_pri[n], center=np.array([-0.08, -0.02, 0.01]), half_extent=0.105,
                  title=f"prior #{n}")
    png = out / "hand_gallery.png"
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    obj = out / "open_hand_rest.obj"
    write_files({obj: lambda: mesh_bytes(rest_v[0], faces, "obj")})
    return [png, obj]
