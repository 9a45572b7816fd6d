"""The exact silhouette rasterizer: a pixel is hand iff its center lies in a projected triangle.

Not differentiable; this module is the torch entry point of the scan conversion in
`mask2hand.render.exact` (shared with the numpy and ONNX paths). Scanline counting over
silhouette edges: along a pixel-center row y = i + 0.5, the number of projected triangles
containing the point (x, y) changes only where the row crosses an edge, by the edge's side
sum g (see `topology`). Edges whose
faces lie on both sides (g = 0, every edge inside the silhouette of a closed mesh) change
nothing and are skipped, so only the few hundred edges with g != 0 are scan-converted:
each adds its weight into a per-row difference array at the first pixel center at or
right of its crossing (or subtracts it at the first center strictly right of the
crossing, for a right boundary); the running sum along the row is the coverage count.
An edge owns the rows whose center y lies in [min(yu, yv), max(yu, yv)), which gives
every triangle exactly one left and one right boundary on each of its rows.

Pixel centers exactly on an edge count as inside, except where two faces on opposite
sides of an edge are merged, or on the row through a triangle's lowest vertex: those
centers are at distance 0 from an edge, where either answer is exact enough. Zero-area
faces cover nothing. Exact (float64 crossings) otherwise, for any triangle soup.

OpenCV's polygon filling was measured and rejected: with sub-pixel `shift` and the
-0.5 px offset, cv2.fillConvexPoly still marks about 20% extra pixels whose centers lie
well outside the triangle (it includes every pixel an edge passes through).
"""

from __future__ import annotations

import numpy as np
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.render import exact
from mask2hand.render.camera import check_finite, project_for_rendering
from mask2hand.render.topology import MeshTopology, SilhouetteEdges, mesh_topology, silhouette_edges


def scanline_fill(uv: torch.Tensor, topology: MeshTopology, contour: SilhouetteEdges,
                  image_size: tuple[int, int]) -> torch.Tensor:
    """Exact coverage (B,H,W) bool from the silhouette edges of projected meshes uv (B,V,2)."""
    return coverage_counts(uv, topology, contour, image_size)[..., :image_size[1]] > 0


def coverage_counts(uv: torch.Tensor, topology: MeshTopology, contour: SilhouetteEdges,
                    image_size: tuple[int, int]) -> torch.Tensor:
    """How many projected faces contain each pixel center: int32 (B,H,W+1), the last column
    being scratch space (ignore it)."""
    with torch.no_grad():
        return exact.coverage_counts(uv.double(), topology.edges, contour.batch, contour.edge, contour.weight,
                                     image_size)


def rasterize_projected(uv: torch.Tensor, faces: torch.Tensor, face_valid: torch.Tensor,
                        image_size: tuple[int, int]) -> torch.Tensor:
    """Exact coverage (B,H,W) bool of the projected faces (F,3) that are valid (B,F), uv (B,V,2) pixels."""
    topology = mesh_topology(faces)
    contour = silhouette_edges(uv.detach(), face_valid, topology)
    return scanline_fill(uv.detach(), topology, contour, image_size)


def _as_faces_tensor(faces, num_vertices: int) -> torch.Tensor:
    faces_t = faces.detach().cpu() if torch.is_tensor(faces) else torch.from_numpy(np.asarray(faces))
    if faces_t.ndim != 2 or faces_t.shape[1] != 3 or faces_t.is_floating_point() or faces_t.dtype == torch.bool:
        raise Mask2HandError(f"faces must be an integer array of shape (F,3), got {faces_t.dtype} {tuple(faces_t.shape)}")
    faces_t = faces_t.long()
    if faces_t.numel() and (faces_t.min() < 0 or faces_t.max() >= num_vertices):
        raise Mask2HandError(f"faces index vertices outside 0..{num_vertices - 1}")
    return faces_t


def rasterize_silhouette(vertices, faces, K, image_size: tuple[int, int]) -> np.ndarray:
    """Exact silhouette masks (B,H,W) bool of meshes seen by pinhole cameras.

    vertices (B,V,3) camera space (meters), torch or numpy; faces (F,3); K (B,3,3) pixel
    intrinsics; image_size (H, W). A pixel is hand iff its center lies inside a projected
    triangle. Faces with a vertex at or behind the near plane are dropped. Not
    differentiable (inputs are detached); runs on the CPU in float64.
    """
    vertices = torch.as_tensor(vertices.detach() if torch.is_tensor(vertices) else vertices).cpu().double()
    K = torch.as_tensor(K.detach() if torch.is_tensor(K) else K).cpu().double()
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise Mask2HandError(f"vertices must have shape (B,V,3), got {tuple(vertices.shape)}")
    faces_t = _as_faces_tensor(faces, vertices.shape[1])
    check_finite("vertices", vertices)
    check_finite("K", K)
    height, width = (int(s) for s in image_size)
    uv, face_valid = project_for_rendering(vertices, faces_t, K)
    return rasterize_projected(uv, faces_t, face_valid, (height, width)).numpy()
