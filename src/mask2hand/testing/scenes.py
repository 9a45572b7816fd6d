"""Synthetic test scenes for the renderer: a hand-like closed mesh in random poses, and cameras.

Used by the renderer's tests and benchmark where a real hand mesh is not needed: a palm
ellipsoid plus five finger capsules, each a watertight component (the components
overlap; the mesh is closed but not a single surface). Scenes are built in numpy and
returned as torch tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Finger capsules: (base x, base y) on the palm in meters, length, radius, spread angle.
_FINGERS = (
    (-0.035, -0.010, 0.045, 0.010, -0.9),  # thumb
    (-0.022, -0.045, 0.070, 0.008, -0.12),
    (-0.005, -0.048, 0.078, 0.008, 0.0),
    (0.012, -0.045, 0.072, 0.008, 0.1),
    (0.028, -0.040, 0.058, 0.007, 0.25),
)


@dataclass(frozen=True)
class RenderScene:
    """A batch of meshes with cameras. vertices (B,V,3) meters, faces (F,3) long, K (B,3,3)."""

    vertices: torch.Tensor
    faces: torch.Tensor
    K: torch.Tensor
    image_size: tuple[int, int]


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    x, y, z = axis
    skew = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * skew @ skew


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def capsule_mesh(length: float, radius: float, segments: int = 12, rings: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A closed, consistently oriented capsule along z from 0 to length + 2 radius.

    A latitude-longitude sphere whose two hemispheres are pulled `length` apart
    (length 0: a sphere). Vertices (V,3), faces (F,3), outward counter-clockwise.
    """
    # Latitudes from the north pole (+z) to the south pole; the equator ring is doubled
    # so that the cylinder part has its own quads.
    theta = np.concatenate([np.linspace(0, np.pi / 2, rings + 1)[1:], np.linspace(np.pi / 2, np.pi, rings + 1)[:-1]])
    shift = np.where(np.arange(len(theta)) < rings, length, 0.0)
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring_xyz = np.stack([np.sin(theta)[:, None] * np.cos(phi), np.sin(theta)[:, None] * np.sin(phi),
                         np.repeat(np.cos(theta)[:, None], segments, 1)], -1) * radius
    ring_xyz[..., 2] += shift[:, None]
    north = np.array([[0.0, 0.0, radius + length]])
    south = np.array([[0.0, 0.0, -radius]])
    vertices = np.concatenate([north, ring_xyz.reshape(-1, 3), south]) + np.array([0.0, 0.0, radius])
    n_rings = len(theta)
    ring = lambda r, k: 1 + r * segments + (k % segments)  # noqa: E731
    faces = []
    for k in range(segments):
        faces.append([0, ring(0, k), ring(0, k + 1)])
        for r in range(n_rings - 1):
            faces.append([ring(r, k), ring(r + 1, k), ring(r + 1, k + 1)])
            faces.append([ring(r, k), ring(r + 1, k + 1), ring(r, k + 1)])
        faces.append([len(vertices) - 1, ring(n_rings - 1, k + 1), ring(n_rings - 1, k)])
    return vertices, np.asarray(faces, dtype=np.int64)


def synthetic_hand_mesh(rng: np.random.Generator, capsule_count: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A hand-like closed mesh in a random finger pose: vertices (V,3) meters centered at 0, faces (F,3).

    A palm ellipsoid and five finger capsules (`capsule_count` segments around; about
    1,300 vertices with the default); the face list is the same for every call with the
    same `capsule_count`.
    """
    palm_v, palm_f = capsule_mesh(0.0, 1.0, segments=2 * capsule_count, rings=capsule_count)
    palm_v = (palm_v - np.array([0.0, 0.0, 1.0])) * np.array([0.045, 0.05, 0.015])
    parts_v, parts_f, offset = [palm_v], [palm_f], len(palm_v)
    for base_x, base_y, length, radius, spread in _FINGERS:
        v, f = capsule_mesh(length, radius, segments=capsule_count, rings=max(2, capsule_count // 2))
        v = v @ _rotation(np.array([1.0, 0, 0]), np.pi / 2).T  # z -> -y: the finger points along -y from its base
        flex = rng.uniform(-0.3, 1.4)
        v = v @ _rotation(np.array([1.0, 0, 0]), flex).T
        v = v @ _rotation(np.array([0, 0, 1.0]), spread + rng.uniform(-0.15, 0.15)).T
        v = v + np.array([base_x, base_y, 0.0])
        parts_v.append(v)
        parts_f.append(f + offset)
        offset += len(v)
    vertices = np.concatenate(parts_v)
    return vertices - vertices.mean(0), np.concatenate(parts_f)


def place_in_view(vertices: np.ndarray, rng: np.random.Generator, image_size: tuple[int, int],
                  focal: float | None = None, fill: float = 1 / 3) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a mesh randomly about its center and move it in front of a camera so that the
    square around its projection covers about `fill` of the image area (its longest
    side spans sqrt(fill) of the image side), slightly off-center.

    vertices (V,3) meters. Returns camera-space vertices (V,3) and K (3,3) (focal length
    `focal` pixels, default twice the image size; principal point at the image center).
    """
    height, width = image_size
    focal = focal if focal is not None else 2.0 * max(height, width)
    v = (vertices - vertices.mean(0)) @ random_rotation(rng).T
    extent = np.ptp(v[:, :2], axis=0).max()
    target_pixels = np.sqrt(fill) * min(height, width)
    depth = focal * extent / target_pixels
    shift = rng.uniform(-0.1, 0.1, size=2) * np.array([width, height]) * depth / focal
    v = v + np.array([shift[0], shift[1], depth])
    K = np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])
    return v, K


def scene_from_meshes(vertices: np.ndarray | torch.Tensor, faces: np.ndarray | torch.Tensor,
                      image_size: tuple[int, int], seed: int = 0, dtype: torch.dtype = torch.float32,
                      fill: float = 1 / 3) -> RenderScene:
    """Place each mesh (B,V,3) of a batch in view with `place_in_view` (random orientation)."""
    rng = np.random.default_rng(seed)
    vertices = vertices.detach().cpu().numpy() if torch.is_tensor(vertices) else np.asarray(vertices)
    placed = [place_in_view(v.astype(np.float64), rng, image_size, fill=fill) for v in vertices]
    faces = torch.as_tensor(np.asarray(faces.cpu() if torch.is_tensor(faces) else faces), dtype=torch.long)
    return RenderScene(torch.tensor(np.stack([p[0] for p in placed]), dtype=dtype), faces,
                       torch.tensor(np.stack([p[1] for p in placed]), dtype=dtype), tuple(image_size))


def synthetic_scene(batch: int, image_size: tuple[int, int], seed: int = 0,
                    dtype: torch.dtype = torch.float32, capsule_count: int = 12) -> RenderScene:
    """A batch of synthetic hands in random poses and orientations, each filling about a third of the image."""
    rng = np.random.default_rng(seed)
    meshes = [synthetic_hand_mesh(rng, capsule_count) for _ in range(batch)]
    return scene_from_meshes(np.stack([m[0] for m in meshes]), meshes[0][1], image_size, seed=seed + 1, dtype=dtype)


def synthetic_sequence(hand, num_frames: int = 24, image_size: tuple[int, int] = (96, 96), focal: float = 220.0,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A hand moving smoothly through poses, for tests and benchmarks: parameters eased
    (cosine) from an open hand, fingers up, to a random half-closed pose turned and moved
    a little, rendered with the exact rasterizer. Returns (masks (T,H,W) bool, joints
    (T,21,3) meters, K (3,3)); principal point at the image center."""
    import torch

    from mask2hand.image.camera import Camera
    from mask2hand.render import rasterize_silhouette

    rng = np.random.default_rng(seed)
    K = Camera.centered(image_size, focal).K
    s = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, num_frames))[:, None]  # 0 -> 1, zero speed at both ends
    start_orient, end_orient = np.array([0.0, 0.0, np.pi / 2]), np.array([0.35, -0.4, np.pi / 2 + 0.3])
    start_transl, end_transl = np.array([0.0, 0.09, 0.6]), np.array([0.02, 0.07, 0.62])
    end_pose = np.abs(rng.normal(0.0, 0.35, 45)) * np.tile([0.2, 0.2, 1.0], 15)  # mostly flexion (about z)
    to_t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    with torch.inference_mode():
        out = hand(to_t((1 - s) * start_orient + s * end_orient), to_t((1 - s) * start_transl + s * end_transl),
                   hand_pose=to_t(s * end_pose), betas=torch.zeros(num_frames, 10, dtype=torch.float64))
    masks = rasterize_silhouette(out.vertices, hand.faces, np.repeat(K[None], num_frames, 0), image_size=image_size)
    return masks, out.joints.numpy(), K
