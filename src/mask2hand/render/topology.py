"""Mesh edges and the silhouette (contour) edges of projected meshes.

For a directed mesh edge u -> v and a face containing it with third vertex c, the face's
"side" is the sign of the 2-D cross product (v - u) x (c - u) of the projected points:
which side of the edge's line the projected face lies on (0 for a zero-area face). The
edge's side sum g = sum of its faces' sides tells how the projected faces sit around it:

- g = 0: as many faces on each side (two faces on opposite sides, e.g. two front-facing
  neighbours): the edge is interior to the union of its faces;
- g != 0: more faces on one side (a contour edge between a front- and a back-facing face
  gives +-2, an open boundary edge such as MANO's wrist +-1): the edge may lie on the
  silhouette boundary.

This needs no consistent face orientation. The boundary of the projected silhouette is
contained in the edges with g != 0, and the coverage count of the triangles (how many
projected faces contain a point) changes only across them, by g; the exact rasterizer and
the fast soft renderer both build on that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mask2hand.render.exact import edge_side_sums, edge_table, silhouette_edge_list


@dataclass(frozen=True)
class MeshTopology:
    """Edges of a triangle mesh (tensors on the device of the faces they were built from).

    edges (E,2) vertex indices u < v; edge_faces (E,k) the faces containing each edge,
    padded with F (an index past the last face); edge_dirs (E,k) +1 where the face runs
    along the edge from u to v, -1 where it runs from v to u (padding: 0); faces (F,3).
    """

    edges: torch.Tensor
    edge_faces: torch.Tensor
    edge_dirs: torch.Tensor
    faces: torch.Tensor

    def to(self, device: torch.device) -> "MeshTopology":
        return MeshTopology(self.edges.to(device), self.edge_faces.to(device), self.edge_dirs.to(device),
                            self.faces.to(device))


def mesh_topology(faces: torch.Tensor | np.ndarray) -> MeshTopology:
    """The edge structure of a face list (F,3), on the faces' device: the renderer's cached
    EdgeTable (mask2hand.render.exact.edge_table, which checks the faces) as tensors."""
    device = faces.device if torch.is_tensor(faces) else torch.device("cpu")
    faces_np = np.ascontiguousarray(faces.detach().cpu().numpy() if torch.is_tensor(faces) else np.asarray(faces))
    table = edge_table(faces_np)
    return MeshTopology(torch.from_numpy(table.edges).to(device), torch.from_numpy(table.edge_faces).to(device),
                        torch.from_numpy(table.edge_dirs).to(device),
                        torch.from_numpy(faces_np.astype(np.int64)).to(device))


@dataclass(frozen=True)
class SilhouetteEdges:
    """The edges with a non-zero side sum, over a batch (no gradient).

    batch (M,) sample index; edge (M,) index into MeshTopology.edges; weight (M,) int32,
    the coverage count change when crossing the edge's line from left to right (+x) in
    image space: positive where the faces lie to the edge's right.
    """

    batch: torch.Tensor
    edge: torch.Tensor
    weight: torch.Tensor


def silhouette_edges(uv: torch.Tensor, face_valid: torch.Tensor, topology: MeshTopology) -> SilhouetteEdges:
    """Edges that can bound the silhouette, from projected vertices uv (B,V,2) and the
    faces to render face_valid (B,F) bool. Not differentiable."""
    with torch.no_grad():
        side_sums = edge_side_sums(uv, face_valid, topology.faces, topology.edge_faces, topology.edge_dirs)
        return SilhouetteEdges(*silhouette_edge_list(uv, side_sums, topology.edges))
