"""Drawing hands: 2-D and 3-D skeletons coloured per finger, shaded meshes, the prediction figure.

Everything draws on matplotlib axes given by the caller, or builds a
`matplotlib.figure.Figure` directly (no pyplot: no GUI backend, no global state), so
it works in scripts, servers and tests alike. Image-space drawing uses the continuous
pixel coordinates of the README's Conventions: an (H,W) image is shown with extent (0, W, H, 0), so
pixel (i, j) covers [j, j+1) x [i, i+1) and a projected point (u, v) lands exactly
where it belongs.

Skeleton colours and the 21-joint bone list defined here are shared with the hand
gallery (mask2hand.export.gallery).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mask2hand.inference.result import Prediction, project
from mask2hand.utils.optional import require

# 21-joint skeleton in FreiHAND order: (parent, child) pairs and one colour per finger
FREIHAND_BONES = tuple((0 if k % 4 == 1 else k - 1, k) for k in range(1, 21))
FINGER_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e")  # thumb, index, middle, ring, little
SKIN = np.array([0.93, 0.76, 0.65])
WRIST_COLOR = "#444444"
CONTOUR_COLOR = "#ffbf00"
LIGHT_DIRECTION = np.array([-0.3, -0.5, -1.0])
"""Camera-space direction toward the light (up-left, from the camera side)."""


def joint_colors() -> list[str]:
    """One colour per joint (21,), FreiHAND order: the wrist grey, each finger its colour."""
    return [WRIST_COLOR] + [FINGER_COLORS[(k - 1) // 4] for k in range(1, 21)]


def bone_colors() -> list[str]:
    """One colour per bone of FREIHAND_BONES (20,): the colour of the finger it belongs to."""
    return [FINGER_COLORS[(child - 1) // 4] for _, child in FREIHAND_BONES]


def face_shading(vertices: np.ndarray, faces: np.ndarray, light: np.ndarray = LIGHT_DIRECTION,
                 ambient: float = 0.3) -> np.ndarray:
    """Lambert intensity (F,) in [ambient, 1] of each face of a mesh (V,3) lit from `light`.

    Two-sided (|n . l|): a face seen from behind is lit like its front, so a mesh whose
    winding is flipped (mirrored hands) still looks right.
    """
    tri = np.asarray(vertices, dtype=np.float64)[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-15
    light = np.asarray(light, dtype=np.float64)
    light = light / np.linalg.norm(light)
    return ambient + (1.0 - ambient) * np.abs(normals @ light)


def draw_mesh_image(ax, vertices: np.ndarray, vertices_2d: np.ndarray, faces: np.ndarray,
                    color: np.ndarray = SKIN) -> None:
    """Draw a camera-space mesh as the camera sees it: faces at their projections (V,2) pixels,
    painted far to near (painter's algorithm on the face's mean depth), Lambert-shaded."""
    from matplotlib.collections import PolyCollection

    faces = np.asarray(faces)
    vertices = np.asarray(vertices, dtype=np.float64)
    depth = vertices[faces, 2].mean(axis=1)
    visible = (vertices[faces, 2] > 0).all(axis=1)
    order = np.argsort(-depth)
    order = order[visible[order]]
    shade = face_shading(vertices, faces)[order]
    colours = np.clip(shade[:, None] * np.asarray(color)[None, :], 0.0, 1.0)
    polys = np.asarray(vertices_2d, dtype=np.float64)[faces[order]]
    ax.add_collection(PolyCollection(polys, facecolors=colours, edgecolors=colours, linewidths=0.2))


def draw_skeleton_2d(ax, joints_2d: np.ndarray, linewidth: float = 2.0, markersize: float = 12.0) -> None:
    """21 joints (21,2) in pixels drawn as a skeleton coloured per finger."""
    from matplotlib.collections import LineCollection

    joints_2d = np.asarray(joints_2d, dtype=np.float64)
    segments = [joints_2d[[a, b]] for a, b in FREIHAND_BONES]
    ax.add_collection(LineCollection(segments, colors=bone_colors(), linewidths=linewidth, zorder=3))
    ax.scatter(joints_2d[:, 0], joints_2d[:, 1], s=markersize, c=joint_colors(), zorder=4, edgecolors="white",
               linewidths=0.4)


def draw_skeleton_3d(ax3d, joints: np.ndarray, linewidth: float = 2.0) -> None:
    """21 camera-space joints (21,3) on a matplotlib 3-D axes, upright as in the image.

    Plotted axes: x (right), z (depth, away from the viewer) and -y (up), so the image's
    "up" is up; equal scale on all three axes.
    """
    joints = np.asarray(joints, dtype=np.float64)
    p = np.stack([joints[:, 0], joints[:, 2], -joints[:, 1]], axis=1)
    for (a, b), colour in zip(FREIHAND_BONES, bone_colors()):
        ax3d.plot(p[[a, b], 0], p[[a, b], 1], p[[a, b], 2], color=colour, linewidth=linewidth)
    ax3d.scatter(p[:, 0], p[:, 1], p[:, 2], c=joint_colors(), s=10, depthshade=False)
    center = (p.max(axis=0) + p.min(axis=0)) / 2
    half = max(float(np.ptp(p, axis=0).max()) / 2 * 1.1, 1e-3)
    ax3d.set_xlim(center[0] - half, center[0] + half)
    ax3d.set_ylim(center[1] - half, center[1] + half)
    ax3d.set_zlim(center[2] - half, center[2] + half)
    ax3d.set_box_aspect((1, 1, 1))
    ax3d.view_init(elev=15, azim=-70)
    for axis in (ax3d.xaxis, ax3d.yaxis, ax3d.zaxis):
        axis.set_ticklabels([])
        axis.set_tick_params(length=0)
    ax3d.set_xlabel("x", fontsize=6, labelpad=-14)
    ax3d.set_ylabel("z", fontsize=6, labelpad=-14)
    ax3d.set_zlabel("-y", fontsize=6, labelpad=-14)


DISPLAY_SIDE = 800
"""Most image pixels a side that a panel draws: the part of a larger input in view is shown
subsampled (a panel of a few hundred screen pixels shows no more), so a figure's memory does
not grow with the input's size."""


@dataclass(frozen=True)
class MaskView:
    """The part of an (H,W) mask a panel shows: image (h,w), every `step`-th pixel of the
    rows and columns from (v0, u0); pixel (i, j) of it covers [u0 + j step, u0 + (j+1) step)
    x [v0 + i step, v0 + (i+1) step) in the mask's continuous pixel coordinates."""

    image: np.ndarray
    u0: int = 0
    v0: int = 0
    step: int = 1

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) for imshow, v down."""
        rows, cols = self.image.shape
        return (self.u0, self.u0 + cols * self.step, self.v0 + rows * self.step, self.v0)


def mask_view(mask: np.ndarray, box: tuple[float, float, float], max_side: int = DISPLAY_SIDE) -> MaskView:
    """The part of `mask` (H,W) inside a view box (center u, center v, half side), subsampled to
    at most `max_side` pixels a side."""
    height, width = mask.shape
    cu, cv, half = box
    u0, u1 = max(int(np.floor(cu - half)), 0), min(int(np.ceil(cu + half)), width)
    v0, v1 = max(int(np.floor(cv - half)), 0), min(int(np.ceil(cv + half)), height)
    if u1 <= u0 or v1 <= v0:  # the view lies off the image: show all of it
        u0, u1, v0, v1 = 0, width, 0, height
    step = max(1, -(-max(u1 - u0, v1 - v0) // max_side))
    return MaskView(np.asarray(mask)[v0:v1:step, u0:u1:step], u0, v0, step)


def show_mask(ax, view: MaskView, cmap: str = "gray", alpha: float = 1.0, vmax: float = 1.0) -> None:
    """A mask view in continuous pixel coordinates (v down)."""
    ax.imshow(np.asarray(view.image, dtype=np.float32), cmap=cmap, vmin=0.0, vmax=vmax, alpha=alpha,
              extent=view.extent, interpolation="nearest")


def draw_contour(ax, view: MaskView, color: str = CONTOUR_COLOR, linewidth: float = 1.2) -> None:
    """The outline of a mask view, through the (sampled) pixel centers' half level."""
    rows, cols = view.image.shape
    padded = np.pad(np.asarray(view.image, dtype=np.float32), 1)  # closes contours at the view's border
    xs = view.u0 + (np.arange(-1, cols + 1) + 0.5) * view.step
    ys = view.v0 + (np.arange(-1, rows + 1) + 0.5) * view.step
    ax.contour(xs, ys, padded, levels=[0.5], colors=[color], linewidths=linewidth)


def crop_box(masks: list[np.ndarray], points: list[np.ndarray], margin: float = 0.12) -> tuple[float, float, float]:
    """A square view (center u, center v, half side) in pixels around the foreground of
    `masks` and the (N,2) `points`, with a relative margin: so small hands in big images fill
    the panels."""
    lo = np.array([np.inf, np.inf])
    hi = -lo
    for mask in masks:
        # the occupied rows and columns, not every pixel's index: cheap on a large image
        rows, cols = np.flatnonzero(np.any(mask, axis=1)), np.flatnonzero(np.any(mask, axis=0))
        if len(rows):
            lo = np.minimum(lo, [cols.min(), rows.min()])
            hi = np.maximum(hi, [cols.max() + 1, rows.max() + 1])
    for pts in points:
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        pts = pts[np.isfinite(pts).all(axis=1)]
        if len(pts):
            lo = np.minimum(lo, pts.min(axis=0))
            hi = np.maximum(hi, pts.max(axis=0))
    if not np.isfinite(lo).all():
        shape = masks[0].shape if masks else (1, 1)
        lo, hi = np.zeros(2), np.array([shape[1], shape[0]], dtype=np.float64)
    center = (lo + hi) / 2
    half = max(float((hi - lo).max()) / 2 * (1 + 2 * margin), 4.0)
    return float(center[0]), float(center[1]), half


def _frame(ax, box: tuple[float, float, float], title: str, background: str = "black") -> None:
    cu, cv, half = box
    ax.set_facecolor(background)  # the view may reach past the image: show it as background
    ax.set_xlim(cu - half, cu + half)
    ax.set_ylim(cv + half, cv - half)  # image v grows downward
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def prediction_figure(prediction: Prediction, title: str | None = None, panel_size: float = 2.3):
    """The paper's Fig. 1 / B1 row for a prediction, as a matplotlib Figure (five panels, one crop for
    the 2-D ones): the input mask; the predicted silhouette with the input's contour over it; the 2-D
    skeleton on the mask; the shaded mesh seen by the camera; the 3-D skeleton (camera space).

    title defaults to the input's file name and the IoU. Needs matplotlib (pip install
    'mask2hand[figures]'); Mask2HandError without it.
    """
    require("matplotlib", "drawing the figure")
    from matplotlib.figure import Figure

    mask, rendered_mask, joints_2d = prediction.mask, prediction.rendered_mask, prediction.joints_2d
    vertices, faces, joints, iou = prediction.vertices, prediction.faces, prediction.joints, prediction.iou
    vertices_2d = project(vertices[None], prediction.K[None])[0]
    if title is None:
        title = f"{Path(prediction.source).name}   IoU {iou:.3f}"
    fig = Figure(figsize=(5 * panel_size, panel_size * (1.2 if title else 1.1)), dpi=110)
    box = crop_box([mask, rendered_mask], [joints_2d])
    axes = [fig.add_subplot(1, 5, k + 1) for k in range(4)]
    ax3d = fig.add_subplot(1, 5, 5, projection="3d")

    mask_in_view = mask_view(mask, box)
    show_mask(axes[0], mask_in_view)
    _frame(axes[0], box, "input mask")

    show_mask(axes[1], mask_view(rendered_mask, box))
    draw_contour(axes[1], mask_in_view)
    _frame(axes[1], box, f"predicted silhouette (IoU {iou:.3f})")

    show_mask(axes[2], mask_in_view, vmax=2.5)  # dimmed so the coloured bones stand out
    draw_skeleton_2d(axes[2], joints_2d)
    _frame(axes[2], box, "2D skeleton")

    draw_mesh_image(axes[3], vertices, vertices_2d, faces)
    _frame(axes[3], box, "mesh", background="white")

    draw_skeleton_3d(ax3d, joints)
    ax3d.set_title("3D skeleton", fontsize=8)

    if title:
        fig.suptitle(title, fontsize=8, y=0.995, va="top")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.80 if title else 0.88, wspace=0.06)
    return fig
