"""The axes of a posed right hand, found from its 21 joints (FreiHAND order) alone.

Every hand source gives the same joints, so whatever is built on these axes (the
forearm, the shape variety, the view statistics) works for any source:

    proximal  from the middle finger's MCP (joint 9) through the wrist (joint 0)
    radial    from the little finger's MCP (17) toward the index's (5), made orthogonal
              to `proximal`: toward the thumb side
    dorsal    radial x proximal: out of the back of the hand (minus: the palm normal)

(proximal, dorsal, radial) is a right-handed orthonormal frame. On the open hand's
rest pose they are about +x, +y and +z (hand.prior's rest frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WRIST, INDEX_MCP, MIDDLE_MCP, LITTLE_MCP = 0, 5, 9, 17


@dataclass(frozen=True)
class HandAxes:
    """Unit axes (B,3) of B hands, float64, in the joints' frame (camera space)."""

    proximal: np.ndarray
    dorsal: np.ndarray
    radial: np.ndarray

    def matrix(self) -> np.ndarray:
        """(B,3,3) with columns proximal, dorsal, radial: local (s, y, x) -> camera offsets."""
        return np.stack([self.proximal, self.dorsal, self.radial], axis=-1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def hand_axes(joints: np.ndarray) -> HandAxes:
    """Axes of hands with joints (B,21,3) (meters; any frame)."""
    j = np.asarray(joints, dtype=np.float64)
    proximal = _unit(j[:, WRIST] - j[:, MIDDLE_MCP])
    across = j[:, INDEX_MCP] - j[:, LITTLE_MCP]
    radial = _unit(across - np.sum(across * proximal, axis=-1, keepdims=True) * proximal)
    return HandAxes(proximal=proximal, dorsal=np.cross(radial, proximal), radial=radial)
