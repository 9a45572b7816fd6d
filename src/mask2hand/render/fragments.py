"""The fragment stage of the soft renderers: which faces/edges matter near which pixel.

Two modes (see `mask2hand.render.soft` for the formulation):

- `rasterize_face_fragments` ("faces"): every (pixel, face) pair with the pixel inside
  the face or within the cutoff distance of it, with its signed squared distance.
- `rasterize_contour_fragments` ("contour"): at most one fragment per pixel, the
  pixel's nearest silhouette-boundary edge, signed by the exact mask. Steps, all without
  gradient except the last: silhouette edges and exact coverage (`topology`, `raster`);
  drop edges with no outside pixel within the cutoff; enumerate the pixels within the
  cutoff of each remaining edge as row runs of a capsule (segment grown by the cutoff
  radius); per pixel, the nearest edge by a scatter-min of packed (distance, slot) keys,
  first over outside pixels (all edges), then over inside pixels (only edges that are the
  nearest edge of some outside pixel, i.e. lie on the silhouette boundary); finally the
  differentiable squared distance of each chosen (pixel, edge) pair.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import torch

from mask2hand.render.geometry import expand_counts, point_segment_dist2, triangle_signed_dist2
from mask2hand.render import exact
from mask2hand.render.topology import mesh_topology, silhouette_edges


@dataclass(frozen=True)
class Fragments:
    """What the blending stage needs, for a batch of B images of H x W pixels; P fragments.

    pixel (P,) int64: flat pixel index b*H*W + i*W + j of each fragment (no padding).
    dist (P,) float, the vertices' dtype: its signed squared distance in pixel^2 (negative
        inside), differentiable w.r.t. the vertices.
    base (B,H,W) float, the vertices' dtype: the value of pixels without fragments (0 or 1,
        no gradient); a scratch copy of the fragments' own that blending writes into.
    one_per_pixel: no pixel index repeats (lets blending skip the per-pixel product).
    """

    pixel: torch.Tensor
    dist: torch.Tensor
    base: torch.Tensor
    one_per_pixel: bool

    def detach(self) -> "Fragments":
        """The same fragments with `dist` cut from the graph (base gets a copy of its own)."""
        return Fragments(pixel=self.pixel, dist=self.dist.detach(), base=self.base.detach().clone(),
                         one_per_pixel=self.one_per_pixel)


def _interval_of_linear(alpha: torch.Tensor, beta: torch.Tensor, lo: torch.Tensor | float,
                        hi: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """The x-interval where lo <= alpha * x + beta <= hi (empty: x_lo > x_hi)."""
    inf = torch.full_like(beta, math.inf)
    safe = torch.where(alpha == 0, torch.ones_like(alpha), alpha)
    x1, x2 = (lo - beta) / safe, (hi - beta) / safe
    inside = (lo <= beta) & (beta <= hi)
    x_lo = torch.where(alpha > 0, x1, torch.where(alpha < 0, x2, torch.where(inside, -inf, inf)))
    x_hi = torch.where(alpha > 0, x2, torch.where(alpha < 0, x1, torch.where(inside, inf, -inf)))
    return x_lo, x_hi


def _capsule_row_spans(ax, ay, bx, by, y, radius_sq: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x-interval of the points of row y within sqrt(radius_sq) of segment a-b (empty: lo > hi).

    The capsule is the union of two disks and a rectangle, all convex, so the union of
    their (non-empty) row intervals is one interval.
    """
    inf = torch.full_like(y, math.inf)
    lo, hi = inf, -inf
    for cx, cy in ((ax, ay), (bx, by)):
        h = radius_sq - (y - cy) ** 2
        half = torch.sqrt(h.clamp_min(0))
        lo = torch.where(h >= 0, torch.minimum(lo, cx - half), lo)
        hi = torch.where(h >= 0, torch.maximum(hi, cx + half), hi)
    dx, dy = bx - ax, by - ay
    length_sq = dx * dx + dy * dy
    length = torch.sqrt(length_sq)
    # Rectangle: 0 <= (p - a).d <= |d|^2 and |(p - a).n| <= r with n = (-dy, dx) / |d|.
    l1, h1 = _interval_of_linear(dx, (y - ay) * dy - ax * dx, 0.0, length_sq)
    safe_length = torch.where(length > 0, length, torch.ones_like(length))
    nx, ny = -dy / safe_length, dx / safe_length
    radius = math.sqrt(radius_sq)
    l2, h2 = _interval_of_linear(nx, (y - ay) * ny - ax * nx, -radius, radius)
    r_lo, r_hi = torch.maximum(l1, l2), torch.minimum(h1, h2)
    ok = (r_lo <= r_hi) & (length > 0)
    lo = torch.where(ok, torch.minimum(lo, r_lo), lo)
    hi = torch.where(ok, torch.maximum(hi, r_hi), hi)
    return lo, hi


@dataclass(frozen=True)
class _Spans:
    """Runs of at most `width` consecutive pixels of one row near one segment, padded to `width`.

    seg (Q,) int64 segment index; row (Q,) int64 pixel row; col0 (Q,) int64 first column;
    count (Q,) int64 pixels used, 0 to width.
    """

    seg: torch.Tensor
    row: torch.Tensor
    col0: torch.Tensor
    count: torch.Tensor
    width: int


def _capsule_spans(ax, ay, bx, by, radius_sq: float, image_size: tuple[int, int],
                   keep_if_outside: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> _Spans:
    """The pixels whose center lies within sqrt(radius_sq) of each segment a-b (M,), as row runs.

    Runs longer than the padding width (near-horizontal long segments) are split, so that
    the later per-pixel work is a dense (Q, width) array with little padding and no
    per-pixel gathers. keep_if_outside = (segment batch index (M,), outside (B,H,W+1) bool,
    its running sum along rows): drop the segments with no outside pixel within the radius.
    """
    height, width = image_size
    radius = math.sqrt(radius_sq)
    pad = max(3, round(2 * radius))  # about the median run length: little padding, few splits
    row0 = torch.ceil(torch.minimum(ay, by) - radius - 0.5).clamp(0, height).long()
    row1 = torch.floor(torch.maximum(ay, by) + radius - 0.5).clamp(-1, height - 1).long()
    seg, rank = expand_counts((row1 - row0 + 1).clamp(min=0))
    rows = row0.index_select(0, seg) + rank
    lo, hi = _capsule_row_spans(ax.index_select(0, seg), ay.index_select(0, seg), bx.index_select(0, seg),
                                by.index_select(0, seg), rows.to(ax.dtype) + 0.5, radius_sq)
    col0 = torch.ceil(lo - 0.5).clamp(0, width).long()
    count = (torch.floor(hi - 0.5).clamp(-1, width - 1).long() - col0 + 1).clamp(min=0)
    if keep_if_outside is not None:
        seg_batch, outside, running = keep_if_outside
        # Outside pixels in columns [col0, col0 + count) of each row, from the running sums.
        start = (seg_batch.index_select(0, seg) * height + rows) * (width + 1) + col0
        stop = start + count
        flat_sum, flat_out = running.view(-1), outside.view(-1)
        n_out = (flat_sum.index_select(0, stop) - flat_out.index_select(0, stop).to(torch.int32)
                 - flat_sum.index_select(0, start) + flat_out.index_select(0, start).to(torch.int32))
        near_outside = torch.zeros(len(ax), dtype=torch.int32, device=ax.device).index_add_(0, seg, n_out) > 0
        count = count * near_outside.index_select(0, seg)
    line, piece = expand_counts((count + pad - 1) // pad)
    start = piece * pad
    return _Spans(seg=seg.index_select(0, line), row=rows.index_select(0, line),
                  col0=col0.index_select(0, line) + start, count=(count.index_select(0, line) - start).clamp(max=pad),
                  width=pad)


_NO_PAIR = torch.iinfo(torch.int64).max
_workspace = threading.local()


def _pixel_buffer(numel: int, device: torch.device) -> torch.Tensor:
    """A per-thread reusable int64 buffer of `numel` entries filled with _NO_PAIR.

    Reusing it avoids re-faulting a fresh full-image allocation on every call, which
    costs more than the work done in it on small CPUs.
    """
    buffers = _workspace.__dict__.setdefault("buffers", {})
    buf = buffers.get(device)
    if buf is None or buf.numel() < numel:
        # made outside inference mode, so a buffer first needed under inference_mode()
        # can still be written by later calls that record gradients
        with torch.inference_mode(False):
            buf = torch.empty(numel, dtype=torch.int64, device=device)
        buffers[device] = buf
    with torch.inference_mode(False):
        return buf[:numel].fill_(_NO_PAIR)


def rasterize_contour_fragments(uv: torch.Tensor, face_valid: torch.Tensor, faces: torch.Tensor,
                                image_size: tuple[int, int], radius_sq: float) -> Fragments:
    """Fragments of mode "contour" (see the module docstring): at most one per pixel."""
    height, width = image_size
    batch, num_vertices = uv.shape[:2]
    topology = mesh_topology(faces)
    flat_uv = uv.reshape(-1, 2)
    with torch.no_grad():
        uvd = uv.detach()
        contour = silhouette_edges(uvd, face_valid, topology)
        # Pixel keys below index rows of width + 1 (the coverage counts' layout).
        stride = width + 1
        outside = exact.coverage_counts(uvd.double(), topology.edges, contour.batch, contour.edge, contour.weight,
                                        image_size) == 0  # (B,H,W+1)
        ends = topology.edges.index_select(0, contour.edge)
        # Flat vertex indices of each silhouette edge's end points.
        ia = contour.batch * num_vertices + ends[:, 0]
        ib = contour.batch * num_vertices + ends[:, 1]
        flat = flat_uv.detach()
        pa, pb = flat.index_select(0, ia), flat.index_select(0, ib)
        ax, ay, bx, by = pa[:, 0].contiguous(), pa[:, 1].contiguous(), pb[:, 0].contiguous(), pb[:, 1].contiguous()

        # Silhouette edges with no outside pixel within the cutoff (self-occlusion contours
        # inside the silhouette) can be nobody's nearest boundary edge: skip them.
        running = torch.cumsum(outside, dim=2, dtype=torch.int32)
        spans = _capsule_spans(ax, ay, bx, by, radius_sq, image_size, keep_if_outside=(contour.batch, outside, running))
        del running
        seg = spans.seg
        offsets = torch.arange(spans.width, device=uv.device)
        col = spans.col0.unsqueeze(1) + offsets  # (Q,pad): each run's pixels
        used = offsets < spans.count.unsqueeze(1)
        d2 = point_segment_dist2(col.to(uv.dtype) + 0.5, spans.row.to(uv.dtype).unsqueeze(1) + 0.5,
                                  ax.index_select(0, seg).unsqueeze(1), ay.index_select(0, seg).unsqueeze(1),
                                  bx.index_select(0, seg).unsqueeze(1), by.index_select(0, seg).unsqueeze(1))
        line = (contour.batch.index_select(0, seg) * height + spans.row) * stride
        # Unused slots point at pixels of their own row (or its scratch column): valid indices.
        key = (line.unsqueeze(1) + col.clamp(max=width)).view(-1)
        out = outside.view(-1).index_select(0, key).view_as(d2)
        near = used & (d2 < radius_sq)
        # Per-pixel argmin by a scatter-min of packed int64 keys: the distance's float32
        # bits (monotonic for non-negative floats) above the slot index (a unique winner).
        slot = torch.arange(d2.numel(), device=d2.device).view_as(d2)
        packed = (d2.float().view(torch.int32).to(torch.int64) << 32) | slot
        best = _pixel_buffer(outside.numel(), d2.device)
        packed_out = torch.where(near & out, packed, _NO_PAIR).view(-1)
        best.scatter_reduce_(0, key, packed_out, reduce="amin")
        won_out = (packed_out == best.index_select(0, key)) & (packed_out != _NO_PAIR)
        # Edges nearest to some outside pixel lie on the silhouette boundary.
        hit = won_out.view_as(d2).any(1).to(torch.int32)
        on_boundary = torch.zeros(len(ia), dtype=torch.int32, device=d2.device).index_add_(0, seg, hit) > 0
        packed_in = torch.where(near & ~out & on_boundary.index_select(0, seg).unsqueeze(1), packed, _NO_PAIR).view(-1)
        best.scatter_reduce_(0, key, packed_in, reduce="amin")
        won_in = (packed_in == best.index_select(0, key)) & (packed_in != _NO_PAIR)
        chosen = torch.nonzero(won_out | won_in).squeeze(1)

        run = chosen // spans.width
        sel = seg.index_select(0, run)
        row = spans.row.index_select(0, run)
        pixel_key = key.index_select(0, chosen)
        pixel = pixel_key - pixel_key // stride  # drop the scratch column: index into (B,H,W)
        sign = 2.0 * out.view(-1).index_select(0, chosen).to(uv.dtype) - 1.0
        px = (pixel_key % stride).to(uv.dtype) + 0.5
        py = row.to(uv.dtype) + 0.5
        sel_a, sel_b = ia.index_select(0, sel), ib.index_select(0, sel)
        one, zero = torch.ones((), dtype=uv.dtype, device=uv.device), torch.zeros((), dtype=uv.dtype, device=uv.device)
        base = torch.where(outside[..., :width], zero, one)
    pa, pb = flat_uv.index_select(0, sel_a), flat_uv.index_select(0, sel_b)
    d2 = point_segment_dist2(px, py, pa[:, 0], pa[:, 1], pb[:, 0], pb[:, 1])
    return Fragments(pixel=pixel, dist=sign * d2, base=base, one_per_pixel=True)


def _corners(uv: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """x and y of corners a, b, c of the triangles index (N,3) into flat vertices uv (BV,2)."""
    points = [uv.index_select(0, index[:, k]) for k in range(3)]
    return tuple(t for p in points for t in (p[:, 0], p[:, 1]))


def rasterize_face_fragments(uv: torch.Tensor, face_valid: torch.Tensor, faces: torch.Tensor,
                             image_size: tuple[int, int], radius_sq: float) -> Fragments:
    """Fragments of mode "faces": every (pixel, face) pair inside the face or within the cutoff."""
    height, width = image_size
    num_vertices = uv.shape[1]
    flat_uv = uv.reshape(-1, 2)
    with torch.no_grad():
        b_idx, f_idx = torch.nonzero(face_valid, as_tuple=True)
        corners = faces.index_select(0, f_idx) + (b_idx * num_vertices).unsqueeze(1)  # (N,3) flat vertex ids
        ax, ay, bx, by, cx, cy = _corners(flat_uv.detach(), corners)
        radius = math.sqrt(radius_sq)
        x_lo = torch.minimum(torch.minimum(ax, bx), cx) - radius
        x_hi = torch.maximum(torch.maximum(ax, bx), cx) + radius
        y_lo = torch.minimum(torch.minimum(ay, by), cy) - radius
        y_hi = torch.maximum(torch.maximum(ay, by), cy) + radius
        col0 = torch.ceil(x_lo - 0.5).clamp(0, width).long()
        col1 = torch.floor(x_hi - 0.5).clamp(-1, width - 1).long()
        row0 = torch.ceil(y_lo - 0.5).clamp(0, height).long()
        row1 = torch.floor(y_hi - 0.5).clamp(-1, height - 1).long()
        tri, rank = expand_counts((row1 - row0 + 1).clamp(min=0))
        rows = row0.index_select(0, tri) + rank
        line, rank = expand_counts((col1 - col0 + 1).clamp(min=0).index_select(0, tri))
        owner = tri.index_select(0, line)
        col, row = col0.index_select(0, owner) + rank, rows.index_select(0, line)
        px, py = col.to(uv.dtype) + 0.5, row.to(uv.dtype) + 0.5
        # Select in chunks so that the temporaries of all candidate pairs never live at once.
        keep = []
        for s in _chunks(len(owner), 1 << 20):
            o = owner[s]
            args = [t.index_select(0, o) for t in (ax, ay, bx, by, cx, cy)]
            keep.append(triangle_signed_dist2(px[s], py[s], *args) < radius_sq)
        keep = torch.nonzero(torch.cat(keep)).squeeze(1) if keep else owner
        owner, px, py = owner.index_select(0, keep), px.index_select(0, keep), py.index_select(0, keep)
        key = (b_idx.index_select(0, owner) * height + row.index_select(0, keep)) * width + col.index_select(0, keep)
        pair_corners = corners.index_select(0, owner)
    dist = triangle_signed_dist2(px, py, *_corners(flat_uv, pair_corners))
    base = torch.zeros(uv.shape[0], height, width, dtype=uv.dtype, device=uv.device)
    return Fragments(pixel=key, dist=dist, base=base, one_per_pixel=False)


def _chunks(total: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, total)) for s in range(0, total, size)]
