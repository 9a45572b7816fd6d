"""Pinhole cameras of images: the `Camera` type and the projection it is built on.

Conventions (the README's): camera space in meters, +x right, +y down, +z forward (OpenCV);
image coordinates continuous, the top-left corner at (0, 0) and pixel (row i, column j)
centered at (j + 0.5, i + 0.5). A point (x, y, z) is seen at (u, v) = (K [x, y, z])[:2] / z
with K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]] in pixels.

A `Camera` is one image's K with the image's size. What happens to an image happens to its
camera through one rule: an image resampled by a pixel map u' = A u (scaling, cropping,
padding: A affine) has the camera A K (`mapped`), so a 3-D point projects to corresponding
pixels in both; a mirrored image has the camera of the scene with camera x negated
(`mirrored`). `project_points` and `unproject_points` take numpy arrays or torch tensors
(differentiable), for batched intrinsics too; the renderers and losses use them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mask2hand.errors import CameraError
from mask2hand.utils.checks import check_K

FIELD_OF_VIEW_DEGREES = (1.0, 170.0)
"""The fields of view (across each image side) a plausible camera has: outside them a K is almost
surely in other units or for another image (f = 1e30 px would put the hand light-years away)."""


def project_points(points, K):
    """Pixel coordinates (...,N,2) (u right, v down) of camera-space points (...,N,3) through
    intrinsics K (...,3,3): (K p)[:2] / z. numpy or torch (differentiable). Points at or behind
    the camera (z <= 0) give meaningless coordinates: the renderers drop them."""
    uvw = points @ K.swapaxes(-1, -2)
    return uvw[..., :2] / uvw[..., 2:3]


def unproject_points(uv, depth, K):
    """Camera-space points (...,N,3) at depth z (...,N) (meters) seen at pixels uv (...,N,2)
    through K (...,3,3): the inverse of `project_points` at that depth, in closed form for a
    pinhole K (which also exports to ONNX, unlike a general solve). numpy or torch."""
    fx, skew, cx = K[..., 0, 0, None], K[..., 0, 1, None], K[..., 0, 2, None]
    fy, cy = K[..., 1, 1, None], K[..., 1, 2, None]
    y = (uv[..., 1] - cy) / fy
    x = (uv[..., 0] - cx - skew * y) / fx
    columns = [(x * depth)[..., None], (y * depth)[..., None], depth[..., None]]
    if isinstance(uv, np.ndarray):
        return np.concatenate(columns, axis=-1)
    import torch  # a tensor was given: torch is imported already

    return torch.cat(columns, dim=-1)


def check_focal(focal: float) -> float:
    """A focal length in pixels as a float; CameraError unless it is finite and positive."""
    focal = float(focal)
    if not np.isfinite(focal) or focal <= 0:
        raise CameraError(f"the focal length must be a positive number of pixels, got {focal:g}")
    return focal


@dataclass(frozen=True)
class Camera:
    """The pinhole camera of one image: K (3,3) float64 pixel intrinsics (checked: finite,
    positive focal lengths, a plausible skew; a copy of the K given) and image_size (H, W) in
    pixels. Raises CameraError for a K that is no pinhole matrix."""

    K: np.ndarray
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        K = np.array(check_K(self.K), dtype=np.float64)
        if K.shape != (3, 3):
            raise CameraError(f"a Camera has one 3x3 K, got shape {K.shape}")
        height, width = (int(s) for s in self.image_size)
        if height < 1 or width < 1:
            raise CameraError(f"an image has at least one pixel a side, got {self.image_size}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "image_size", (height, width))

    @classmethod
    def centered(cls, image_size: tuple[int, int], focal: float) -> "Camera":
        """The camera of an (H, W) image with focal length `focal` (pixels, `check_focal`) and
        the principal point at the image center."""
        focal = check_focal(focal)
        height, width = image_size
        return cls(np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]]),
                   image_size)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixels (...,2) float64 of camera-space points (...,3)."""
        return project_points(np.asarray(points, dtype=np.float64), self.K)

    def unproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Camera-space points (...,3) at depth z (...) seen at pixels uv (...,2)."""
        return unproject_points(np.asarray(uv, dtype=np.float64), np.asarray(depth, dtype=np.float64), self.K)

    def mapped(self, pixel_map: np.ndarray, image_size: tuple[int, int]) -> "Camera":
        """The camera of this image resampled by the affine pixel map u' = pixel_map u (3,3)
        (scaling, cropping, padding) into an image of image_size (H, W): pixel_map K."""
        return Camera(np.asarray(pixel_map, dtype=np.float64) @ self.K, image_size)

    def mirrored(self) -> "Camera":
        """The camera of this image mirrored left to right (u -> W - u), with camera x negated:
        P K F, P = [[-1,0,W],[0,1,0],[0,0,1]], F = diag(-1,1,1) (cx -> W - cx, skew negated).
        A point (x, y, z) seen at u here is seen at W - u as (-x, y, z)."""
        P = np.array([[-1.0, 0.0, float(self.image_size[1])], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        return Camera(P @ self.K @ np.diag([-1.0, 1.0, 1.0]), self.image_size)

    def check_plausible(self) -> "Camera":
        """This camera if it can belong to its image: a field of view across each side within
        FIELD_OF_VIEW_DEGREES and the principal point within one image size of the image.
        Raises CameraError naming what is off otherwise."""
        height, width = self.image_size
        low, high = FIELD_OF_VIEW_DEGREES
        for axis, side, f in (("horizontal", width, self.K[0, 0]), ("vertical", height, self.K[1, 1])):
            fov = float(np.degrees(2.0 * np.arctan2(side / 2.0, f)))
            if not low <= fov <= high:
                raise CameraError(f"K gives a {axis} field of view of {fov:.3g} degrees for this {width}x{height} "
                                  f"image (plausible: {low:g} to {high:g}); give the focal length in pixels of "
                                  "this image")
        cx, cy = self.K[0, 2], self.K[1, 2]
        if not (-width <= cx <= 2 * width and -height <= cy <= 2 * height):
            raise CameraError(f"K's principal point ({cx:.4g}, {cy:.4g}) px is far outside this {width}x{height} "
                              "image; give K in pixels of this image")
        return self
