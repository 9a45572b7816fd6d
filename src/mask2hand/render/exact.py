"""The exact silhouette rasterizer, written once for numpy arrays and torch tensors.

A pixel is hand iff its center lies in a projected triangle. `rasterize_silhouette` is its
one checked entry point (numpy or torch inputs, numpy masks out; not differentiable), and
`rasterize_by_size` / `silhouette_iou` build on it. Importing this module does not import
torch: the torch-free prediction path (the ONNX runtime) renders with numpy, while the soft
renderer's fragments (`fragments`) and the ONNX graph (`mask2hand.export.onnx`) call the
same functions with tensors.

Scanline counting over silhouette edges: along a pixel-center row y = i + 0.5, the number
of projected triangles containing the point (x, y) changes only where the row crosses an
edge, by the edge's side sum g (see `mask2hand.render.topology`). Edges whose faces lie on
both sides (g = 0, every edge inside the silhouette of a closed mesh) change nothing and
are skipped, so only the few hundred edges with g != 0 are scan-converted: each adds its
weight into a per-row difference array at the first pixel center at or right of its
crossing (or subtracts it at the first center strictly right of the crossing, for a right
boundary); the running sum along the row is the coverage count. An edge owns the rows
whose center y lies in [min(yu, yv), max(yu, yv)), which gives every triangle exactly one
left and one right boundary on each of its rows.

Pixel centers exactly on an edge count as inside, except where two faces on opposite
sides of an edge are merged, or on the row through a triangle's lowest vertex: those
centers are at distance 0 from an edge, where either answer is exact enough. Zero-area
faces cover nothing. Exact (float64 crossings) otherwise, for any triangle soup.

OpenCV's polygon filling was measured and rejected: with sub-pixel `shift` and the
-0.5 px offset, cv2.fillConvexPoly still marks about 20% extra pixels whose centers lie
well outside the triangle (it includes every pixel an edge passes through).

Two ways to enumerate the (edge, row) pairs of the scan conversion:

- sparse (eager numpy or torch): each silhouette edge expands to exactly the rows it
  owns (a repeat), the least work;
- dense (`dense_rows=True`, for tracing to ONNX): every silhouette edge against as many
  rows as the longest one owns, then NonZero picks the owned pairs. No data-dependent
  Python control flow, only NonZero, Gather, Where, ScatterElements(add), CumSum and
  elementwise operators, so it traces to one ONNX graph.

Both give the same coverage counts, bit for bit, for the same float64 inputs.

The mask metrics (`mask_iou`, `mask_overlap`) live here too, for the same reason: one
definition for numpy and torch masks.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from mask2hand.errors import Mask2HandError
from mask2hand.image.camera import project_points
from mask2hand.utils.checks import check_shape

if TYPE_CHECKING:  # annotations only: importing this module must not import torch
    import torch

NEAR_Z = 1e-3
"""Near plane depth in meters: faces with any vertex at z <= NEAR_Z are not rendered."""


# ---------------------------------------------------------------------- array backends

class _NumpyOps:
    """The few operations spelled differently in numpy and torch (the rest is written with
    operators and functions both have, through `xp`)."""

    xp = np

    @staticmethod
    def nonzero(a):
        return np.nonzero(a)

    @staticmethod
    def arange(n: int, like):
        return np.arange(n, dtype=np.int64)

    @staticmethod
    def zeros(n: int, like):
        return np.zeros(n, dtype=like.dtype)

    @staticmethod
    def take(a, index):
        return np.take(a, index, axis=1)  # several times faster than a[:, index]

    @staticmethod
    def gather(a, index):
        return np.take(a, index, axis=0)

    @staticmethod
    def scatter_add(base, index, values):
        return base + np.bincount(index, weights=values, minlength=base.size).astype(base.dtype)

    @staticmethod
    def cumsum(a, axis: int):
        return np.cumsum(a, axis, dtype=a.dtype)

    @staticmethod
    def repeat(values, counts):
        return np.repeat(values, counts)

    @staticmethod
    def to_int(a):
        return a.astype(np.int64)

    @staticmethod
    def to_int32(a):
        return a.astype(np.int32)

    @staticmethod
    def sign_int(a):
        return np.sign(a).astype(np.int8)

    @staticmethod
    def sum_int32(a, axis: int):
        return a.sum(axis, dtype=np.int32)

    @staticmethod
    def cast(a, like):
        return a.astype(like.dtype, copy=False)

    @staticmethod
    def as_bool(a):
        return a if a.dtype == bool else a > 0.5

    @staticmethod
    def count(a):
        return a.reshape(len(a), -1).sum(1, dtype=np.float64)


class _TorchOps:
    """_NumpyOps for torch tensors (eager, or traced for ONNX)."""

    def __init__(self):
        import torch

        self.xp = torch

    def nonzero(self, a):
        index = self.xp.nonzero(a)  # (M,2); as_tuple=False traces to ONNX NonZero
        return index[:, 0], index[:, 1]

    def arange(self, n, like):
        return self.xp.arange(n, device=like.device)

    def zeros(self, n, like):
        return self.xp.zeros(n, dtype=like.dtype, device=like.device)

    @staticmethod
    def take(a, index):
        # index_select is several times faster than advanced indexing, and exports to Gather
        return a.index_select(1, index.reshape(-1)).view(*a.shape[:1], *index.shape, *a.shape[2:])

    @staticmethod
    def gather(a, index):
        return a.index_select(0, index)

    @staticmethod
    def scatter_add(base, index, values):
        return base.scatter_add_(0, index, values)  # in place: base is always a fresh buffer

    def cumsum(self, a, axis: int):
        return self.xp.cumsum(a, axis, dtype=a.dtype)

    def repeat(self, values, counts):
        return self.xp.repeat_interleave(values, counts)

    @staticmethod
    def to_int(a):
        return a.long()

    def to_int32(self, a):
        return a.to(self.xp.int32)

    def sign_int(self, a):
        # int8 is the fastest in eager mode; ONNX Runtime has no int8 Mul/ReduceSum kernels
        return self.xp.sign(a).to(self.xp.int32 if self.xp.onnx.is_in_onnx_export() else self.xp.int8)

    def sum_int32(self, a, axis: int):
        return a.sum(axis, dtype=self.xp.int32)

    @staticmethod
    def cast(a, like):
        return a.to(like.dtype)

    def as_bool(self, a):
        return a if a.dtype == self.xp.bool else a > 0.5

    def count(self, a):
        return a.flatten(1).sum(1, dtype=self.xp.float64)


_TORCH_OPS: list[_TorchOps] = []


def _ops(array: Any):
    if isinstance(array, np.ndarray):
        return _NumpyOps
    if not _TORCH_OPS:  # made on first use: torch is imported only by torch callers
        _TORCH_OPS.append(_TorchOps())
    return _TORCH_OPS[0]


# ---------------------------------------------------------------------- projection

def project_for_rendering(vertices, faces, K, near: float = NEAR_Z):
    """Projected vertices uv (B,V,2) and the faces that may be rendered (B,F) bool.

    Vertices at or behind the near plane are projected with a stand-in point (1, 1, 1)
    so that no inf/NaN appears; every face using such a vertex is invalid.
    """
    ops = _ops(vertices)
    front = vertices[..., 2] > near
    safe = ops.xp.where(front[..., None], vertices, ops.xp.ones_like(vertices))
    corners = ops.take(front, faces)  # (B,F,3)
    face_valid = corners[..., 0] & corners[..., 1] & corners[..., 2]
    return project_points(safe, K), face_valid


# ---------------------------------------------------------------------- mesh edges

@dataclass(frozen=True)
class EdgeTable:
    """Edges of a triangle mesh as numpy arrays: edges (E,2) int64 vertex indices u < v;
    edge_faces (E,k) int64, the faces containing each edge padded with F (one past the
    last face); edge_dirs (E,k) int8, +1 where the face runs along the edge from u to v,
    -1 where from v to u, 0 for padding."""

    edges: np.ndarray
    edge_faces: np.ndarray
    edge_dirs: np.ndarray


def build_edge_table(faces: np.ndarray) -> EdgeTable:
    """The EdgeTable of faces (F,3) int64."""
    num_faces = faces.shape[0]
    # Corner k of face f owns the edge from vertex k to vertex k+1; its third vertex is k+2.
    a = faces.reshape(-1)
    b = faces[:, [1, 2, 0]].reshape(-1)
    face_of = np.repeat(np.arange(num_faces), 3)
    keys = np.stack([np.minimum(a, b), np.maximum(a, b)], 1)
    edges, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=len(edges))
    k = int(counts.max()) if len(counts) else 1
    slot = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
    edge_faces = np.full((len(edges), k), num_faces, dtype=np.int64)
    edge_dirs = np.zeros((len(edges), k), dtype=np.int8)
    edge_faces[inverse[order], slot] = face_of[order]
    edge_dirs[inverse[order], slot] = np.where(a < b, 1, -1)[order]
    return EdgeTable(edges.astype(np.int64).reshape(-1, 2), edge_faces, edge_dirs)


_TABLES: "OrderedDict[tuple, EdgeTable]" = OrderedDict()


def edge_table(faces) -> EdgeTable:
    """The (cached) EdgeTable of an integer face array (F,3)."""
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise Mask2HandError(f"faces must be an integer array of shape (F,3), got {faces.dtype} {faces.shape}")
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    key = (faces.shape, hash(faces.tobytes()))
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = build_edge_table(faces)
        while len(_TABLES) > 8:
            _TABLES.popitem(last=False)
    return table


# ---------------------------------------------------------------------- silhouette edges

def edge_side_sums(uv, face_valid, faces, edge_faces, edge_dirs):
    """Side sum g (B,E) int32 of every edge (see mask2hand.render.topology).

    uv (B,V,2) pixels; face_valid (B,F) bool; faces (F,3); edge_faces, edge_dirs (E,k)
    from the EdgeTable (arrays of uv's kind). A face's side is the sign of its projected
    area (0 for a zero-area or invalid face).
    """
    ops = _ops(uv)
    corners = ops.take(uv, faces)  # (B,F,3,2)
    e1, e2 = corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0]
    side = ops.sign_int(e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]) * face_valid
    side = ops.xp.concatenate([side, side[:, :1] * 0], 1)  # column F: the padding's side, 0
    return ops.sum_int32(ops.take(side, edge_faces) * edge_dirs, -1)


def silhouette_edge_list(uv, side_sums, edges):
    """The edges with g != 0: (batch (M,), edge (M,), weight (M,)).

    weight (int32) is the coverage change when crossing the edge's line towards +x,
    -sign(dy) g: a face to the right of an edge going down (or to the left of one going
    up) has the edge as its left boundary.
    """
    ops = _ops(uv)
    batch, edge = ops.nonzero(side_sums)
    num_vertices, num_edges = uv.shape[1], side_sums.shape[1]
    y = uv[..., 1].reshape(-1)
    base = batch * num_vertices
    ends = ops.gather(edges, edge)
    down = ops.xp.sign(ops.gather(y, base + ends[:, 1]) - ops.gather(y, base + ends[:, 0]))
    weight = -down * ops.gather(side_sums.reshape(-1), batch * num_edges + edge)
    return batch, edge, ops.to_int32(weight)


# ---------------------------------------------------------------------- scan conversion

def coverage_counts(uv, edges, batch, edge, weight, image_size: tuple[int, int], dense_rows: bool = False,
                    origin: tuple[int, int] = (0, 0)):
    """How many projected faces contain each pixel center: (B,H,W+1) int32, the last column
    being scratch space (ignore it).

    uv (B,V,2) pixels (float64 for exact results); edges (E,2); batch, edge, weight (M,):
    the silhouette edges (`silhouette_edge_list`). dense_rows: see the module docstring.
    origin: (row, column) in uv's pixels of the counted region's top-left pixel; the region is
    image_size (H, W) from there, and its counts are those of the same pixels of a larger image.
    """
    ops = _ops(uv)
    xp = ops.xp
    height, width = image_size
    top, left = origin
    num_images, num_vertices = uv.shape[0], uv.shape[1]
    flat = uv.reshape(-1, 2)
    ends = ops.gather(edges, edge)  # (M,2)
    base = batch * num_vertices
    pu, pv = ops.gather(flat, base + ends[:, 0]), ops.gather(flat, base + ends[:, 1])
    y_lo, y_hi = xp.minimum(pu[:, 1], pv[:, 1]), xp.maximum(pu[:, 1], pv[:, 1])
    # An edge owns the rows whose center lies in [y_lo, y_hi), clipped to the image.
    row_first = xp.clip(xp.ceil(y_lo - 0.5), top, top + height)
    row_end = xp.clip(xp.ceil(y_hi - 0.5), top, top + height)
    dy = pv[:, 1] - pu[:, 1]
    slope = (pv[:, 0] - pu[:, 0]) / xp.where(dy == 0, xp.ones_like(dy), dy)  # dy = 0: owns no row
    if dense_rows:  # every edge against as many rows as the longest edge owns, then the owned pairs
        span = xp.clip(row_end - row_first, 0, None)
        longest = xp.concatenate([span, ops.cast(ops.zeros(1, like=weight), span)]).max()  # 0 without edges
        # 0 .. longest - 1 with a data-dependent length (NonZero: tracing has no dynamic arange)
        _, steps = ops.nonzero(ops.cast(ops.arange(height, like=uv), uv)[None, :] < longest)
        steps = ops.cast(steps, uv)
        owner, step = ops.nonzero(steps[None, :] < span[:, None])
        rows = ops.gather(row_first, owner) + ops.gather(steps, step)
    else:  # each edge repeated for the rows it owns
        counts = ops.to_int(xp.clip(row_end - row_first, 0, None))
        owner = ops.repeat(ops.arange(len(counts), like=counts), counts)
        starts = ops.cast(xp.cumsum(counts, 0) - counts, uv)
        rows = ops.cast(ops.arange(len(owner), like=owner), uv) - ops.gather(starts - row_first, owner)

    def take(values):
        return ops.gather(values, owner)

    # The crossing of each edge's line with the row's center line y = row + 0.5.
    x = take(pu[:, 0]) + (rows + 0.5 - take(pu[:, 1])) * take(slope)
    pair_weight = take(weight)
    # Left boundaries (weight > 0) start at the first center >= x (centers on the edge are
    # inside); right boundaries stop after the last center <= x.
    col = xp.clip(xp.where(pair_weight > 0, xp.ceil(x - 0.5), xp.floor(x - 0.5) + 1), left, left + width) - left
    index = ops.to_int((take(ops.cast(batch, uv)) * height + rows - top) * (width + 1) + col)
    diff = ops.scatter_add(ops.zeros(num_images * height * (width + 1), like=weight), index.reshape(-1),
                           pair_weight.reshape(-1))
    return ops.cumsum(diff.reshape(num_images, height, width + 1), 2)


def silhouette(vertices, K, faces, edges, edge_faces, edge_dirs, image_size: tuple[int, int],
               dense_rows: bool = False):
    """Exact silhouettes (B,H,W) bool of meshes (B,V,3) through K (B,3,3); the mesh arrays are
    the faces (F,3) and their EdgeTable's arrays, of the same kind as vertices (numpy or torch).
    No checks: see `rasterize_silhouette` for the checked entry point."""
    uv, face_valid = project_for_rendering(vertices, faces, K)
    side_sums = edge_side_sums(uv, face_valid, faces, edge_faces, edge_dirs)
    batch, edge, weight = silhouette_edge_list(uv, side_sums, edges)
    return coverage_counts(uv, edges, batch, edge, weight, image_size, dense_rows)[..., :image_size[1]] > 0


# ---------------------------------------------------------------------- numpy entry points

BAND_PIXELS = 4_000_000
"""Most pixels (hands x rows x columns) the numpy rasterizer counts at once: images are scanned in
bands of rows, so its working memory is about 9 bytes per pixel of a band (36 MB) besides the
silhouettes it returns, whatever the images' size."""


@dataclass(frozen=True)
class _ProjectedEdges:
    """Meshes projected for scan conversion: uv (B,V,2) pixels, their edges (E,2), and the
    silhouette edges batch, edge, weight (M,) (`silhouette_edge_list`)."""

    uv: np.ndarray
    edges: np.ndarray
    batch: np.ndarray
    edge: np.ndarray
    weight: np.ndarray

    def covered(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        """(B,height,width) bool: the pixels [top, top+height) x [left, left+width) of the silhouettes."""
        counts = coverage_counts(self.uv, self.edges, self.batch, self.edge, self.weight, (height, width),
                                 origin=(top, left))
        return counts[..., :width] > 0


def _checked_edges(vertices, faces, K) -> _ProjectedEdges:
    """The checked inputs of `rasterize_silhouette` and `silhouette_iou` (numpy arrays or torch
    tensors, taken as float64 numpy), projected."""
    vertices = np.asarray(_numpy(vertices), dtype=np.float64)
    K = np.asarray(_numpy(K), dtype=np.float64)
    faces = _numpy(faces)
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise Mask2HandError(f"vertices must have shape (B,V,3), got {vertices.shape}")
    if K.shape != (vertices.shape[0], 3, 3):
        raise Mask2HandError(f"K must have shape (B,3,3) with B={vertices.shape[0]}, got {K.shape}")
    for name, value in (("vertices", vertices), ("K", K)):
        if not np.isfinite(value).all():
            raise Mask2HandError(f"{name} contains NaN or inf values; check the hand parameters / camera that "
                                 "produced them")
    table = edge_table(faces)  # checks the faces' shape and type
    faces = np.asarray(faces, dtype=np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= vertices.shape[1]):
        raise Mask2HandError(f"faces index vertices outside 0..{vertices.shape[1] - 1}")
    uv, face_valid = project_for_rendering(vertices, faces, K)
    side_sums = edge_side_sums(uv, face_valid, faces, table.edge_faces, table.edge_dirs)
    batch, edge, weight = silhouette_edge_list(uv, side_sums, table.edges)
    return _ProjectedEdges(uv, table.edges, batch, edge, weight)


def _numpy(array):
    """A torch tensor as a numpy array (detached, on the CPU); anything else as it is."""
    return array.detach().cpu().numpy() if hasattr(array, "detach") else array


def rasterize_silhouette(vertices, faces, K, image_size: tuple[int, int]) -> np.ndarray:
    """Exact silhouette masks (B,H,W) bool of meshes seen by pinhole cameras.

    vertices (B,V,3) camera space (meters); faces (F,3) int; K (B,3,3) pixel intrinsics
    (numpy arrays or torch tensors on any device); image_size (H, W). A pixel is hand iff its
    center lies inside a projected triangle; faces with a vertex at or behind the near plane
    are dropped. Not differentiable; computed in float64 numpy, in bands of rows of at most
    BAND_PIXELS pixels. Raises Mask2HandError for malformed or non-finite inputs.
    """
    projected = _checked_edges(vertices, faces, K)
    height, width = (int(s) for s in image_size)
    out = np.zeros((len(projected.uv), height, width), dtype=bool)
    rows = max(1, BAND_PIXELS // max(1, len(projected.uv) * width))
    for top in range(0, height, rows):
        out[:, top:top + rows] = projected.covered(top, 0, min(rows, height - top), width)
    return out


def silhouette_iou(vertices, faces, K, masks: Sequence[np.ndarray]) -> np.ndarray:
    """(B,) float64 IoU of each mesh's exact silhouette (vertices (B,V,3), K (B,3,3)) with its mask
    (H_b,W_b) bool, at the mask's resolution: `mask_iou` of `rasterize_silhouette`'s silhouette,
    counted in bands of at most BAND_PIXELS pixels over the box that holds the mask's hand and the
    mesh's projection, one mesh at a time. Its memory does not grow with B or the masks' size (masks
    given twice, as the same array, are measured once)."""
    projected = _checked_edges(vertices, faces, K)
    if len(masks) != len(projected.uv):
        raise Mask2HandError(f"{len(masks)} masks for {len(projected.uv)} meshes; give one mask per mesh")
    boxes: dict[int, tuple[list[list[int]], int]] = {}
    front = np.asarray(_numpy(vertices))[..., 2] > NEAR_Z
    ious = np.empty(len(masks))
    for b, mask in enumerate(masks):
        if id(mask) not in boxes:
            boxes[id(mask)] = (_box(mask), int(np.count_nonzero(mask)))
        corners, area = boxes[id(mask)]
        uv = projected.uv[b][front[b]]
        if len(uv):  # the faces drawn use only vertices in front of the near plane
            corners = corners + [[int(np.floor(uv[:, 1].min())), int(np.floor(uv[:, 0].min()))],
                                 [int(np.ceil(uv[:, 1].max())) + 1, int(np.ceil(uv[:, 0].max())) + 1]]
        top, left = max(min((c[0] for c in corners), default=0), 0), max(min((c[1] for c in corners), default=0), 0)
        bottom = min(max((c[0] for c in corners), default=0), mask.shape[0])
        right = min(max((c[1] for c in corners), default=0), mask.shape[1])
        mine = projected.batch == b
        one = _ProjectedEdges(projected.uv[b:b + 1], projected.edges, np.zeros_like(projected.batch[mine]),
                              projected.edge[mine], projected.weight[mine])
        rows = max(1, BAND_PIXELS // max(1, right - left))
        inter = drawn = 0
        for start in range(top, bottom if right > left else top, rows):
            band = min(rows, bottom - start)
            covered = one.covered(start, left, band, right - left)[0]
            inter += int(np.count_nonzero(covered & mask[start:start + band, left:right]))
            drawn += int(np.count_nonzero(covered))
        union = drawn + area - inter
        ious[b] = inter / union if union else 1.0  # an empty pair: IoU 1, as mask_iou
    return ious


def _box(mask: np.ndarray) -> list[list[int]]:
    """The corners [[top, left], [bottom, right]] (pixel bounds, bottom and right exclusive) of a
    mask's nonzero pixels; [] when it has none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(mask.any(axis=0))
    return [[int(rows[0]), int(cols[0])], [int(rows[-1]) + 1, int(cols[-1]) + 1]]


def rasterize_by_size(vertices, faces, K, image_sizes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Exact silhouettes of meshes at each one's own image size, numpy only (no torch).

    vertices (B,V,3) camera space (meters); faces (F,3) int; K (B,3,3) pixel intrinsics;
    image_sizes: B sizes (H_b, W_b). Returns B bool arrays (H_b,W_b), from one
    `rasterize_silhouette` call per distinct size.
    """
    vertices, K = np.asarray(_numpy(vertices)), np.asarray(_numpy(K))
    if len(image_sizes) != len(vertices):
        raise Mask2HandError(f"{len(image_sizes)} image sizes for {len(vertices)} meshes; give one size per mesh")
    groups: dict[tuple[int, int], list[int]] = {}
    for b, size in enumerate(image_sizes):
        groups.setdefault((int(size[0]), int(size[1])), []).append(b)
    masks: list[np.ndarray | None] = [None] * len(image_sizes)
    for size, members in groups.items():
        for b, mask in zip(members, rasterize_silhouette(vertices[members], faces, K[members], size)):
            masks[b] = mask
    return masks


# ---------------------------------------------------------------------- mask metrics

def _same_kind(a, b):
    """Both masks as numpy arrays, or both as torch tensors on one device when either is a tensor
    (the first tensor's device)."""
    tensors = [x for x in (a, b) if hasattr(x, "detach")]
    if not tensors:
        return np.asarray(a), np.asarray(b)
    xp, device = _ops(tensors[0]).xp, tensors[0].device
    return tuple(x.to(device) if hasattr(x, "detach") else xp.as_tensor(np.ascontiguousarray(x), device=device)
                 for x in (a, b))


def mask_overlap(pred, target) -> tuple[np.ndarray, np.ndarray, np.ndarray] | tuple[torch.Tensor, ...]:
    """(intersection, pred area, target area), each (B,) float64 pixel counts, of binary masks
    (B,H,W): bool, or values > 0.5 are hand. numpy or torch (torch if either is)."""
    pred, target = _same_kind(pred, target)
    ops = _ops(pred)
    pred, target = ops.as_bool(pred), ops.as_bool(target)
    check_shape(target, ["B", "H", "W"], "target", check_shape(pred, ["B", "H", "W"], "pred"))
    return ops.count(pred & target), ops.count(pred), ops.count(target)


def mask_iou(pred, target) -> np.ndarray | torch.Tensor:
    """Intersection over union (B,) float64 of binary masks (B,H,W) (bool, or values > 0.5 are
    hand; numpy or torch, torch if either is). Two empty masks have IoU 1."""
    intersection, p, t = mask_overlap(pred, target)
    union = p + t - intersection
    return intersection / union.clip(1) + (union == 0)  # an empty pair: 0 / 1 + 1


def mask_dice(pred, target) -> np.ndarray | torch.Tensor:
    """Dice coefficient 2|P&T| / (|P| + |T|) (B,) float64 of binary masks (B,H,W) (bool, or values
    > 0.5 are hand; numpy or torch, torch if either is); two empty masks give 1."""
    intersection, p, t = mask_overlap(pred, target)
    total = p + t
    return 2 * intersection / total.clip(1) + (total == 0)  # an empty pair: 0 / 1 + 1
