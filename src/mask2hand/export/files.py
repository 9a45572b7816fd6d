"""Writing results: meshes (OBJ, PLY, GLB), JSON, figures; every file atomically.

`write_files({path: writer})` writes a group of files all-or-nothing: each writer
fills a temporary file beside its target, and only when every writer has succeeded
are they renamed into place, so a failure leaves neither half-written files nor a
partial set (short of a failure between renames).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mask2hand.errors import Mask2HandError
from mask2hand.utils.files import atomic_path


FRAMES = {"opencv": "x right, y down, z forward (away from the camera)",
          "opengl": "x right, y up, z toward the viewer (backward)"}
"""The coordinate frames meshes and joints can be written in, and their axes in words. Both are the
input camera's frame, right-handed: opengl is opencv turned half a turn about x, (x, -y, -z)."""


def check_frame(frame: str) -> str:
    """`frame` if it is one of FRAMES; Mask2HandError otherwise."""
    if frame not in FRAMES:
        raise Mask2HandError(f"frame must be one of {', '.join(FRAMES)}, got {frame!r}")
    return frame


def points_in_frame(points: Any, frame: str) -> np.ndarray:
    """Camera-space points (...,3), meters, in the OpenCV frame -> the same points in `frame`
    (float64). A rotation, so a mesh's winding stays outward."""
    points = np.asarray(points, dtype=np.float64)
    return points * np.array([1.0, -1.0, -1.0]) if check_frame(frame) == "opengl" else points


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals (V,3) of a triangle mesh's vertices: the area-weighted mean of the normals of the
    faces around each vertex, on the side from which the faces are counter-clockwise (outward for
    the hand models' meshes). A vertex on no face (or only on degenerate ones) gets (0, 0, 0)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # length: 2 x area
    summed = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(summed, faces[:, k], face_normals)
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    return np.divide(summed, length, out=np.zeros_like(summed), where=length > 0)


def mesh_bytes(vertices: np.ndarray, faces: np.ndarray, file_type: str) -> bytes:
    """A triangle mesh (V,3) meters, faces (F,3) as the bytes of an OBJ (text, 8 decimals: 10 nm;
    with vertex normals (`vn`, vertex_normals, 6 decimals) that the faces reference as `f a//a ...`)
    or binary little-endian PLY (float32 coordinates) file.

    Vertex order and face winding are kept exactly. Written here rather than by a mesh library:
    two plain formats, and predicting needs no other package for them.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if file_type == "obj":
        lines = [f"v {x:.8f} {y:.8f} {z:.8f}" for x, y, z in vertices.tolist()]
        lines += [f"vn {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertex_normals(vertices, faces).tolist()]
        lines += [f"f {a}//{a} {b}//{b} {c}//{c}" for a, b, c in (faces + 1).tolist()]  # OBJ counts from 1
        return ("\n".join(lines) + "\n").encode()
    if file_type == "ply":
        header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(vertices)}\n"
                  "property float x\nproperty float y\nproperty float z\n"
                  f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
        face_records = np.zeros(len(faces), dtype=[("count", "u1"), ("indices", "<i4", (3,))])
        face_records["count"], face_records["indices"] = 3, faces
        return header.encode() + vertices.astype("<f4").tobytes() + face_records.tobytes()
    raise ValueError(f"mesh file type must be 'obj' or 'ply', got {file_type!r}")


def glb_bytes(vertices: np.ndarray, faces: np.ndarray, joints: np.ndarray, joint_names: list[str] | tuple[str, ...],
              extras: dict[str, Any] | None = None) -> bytes:
    """A binary glTF 2.0 file of a triangle mesh (V,3) meters, faces (F,3), with its vertex normals
    (vertex_normals), and of the points `joints` (J,3) as J nodes without geometry, named
    `joint_names` and placed by their translation. The mesh is the node "hand"; `extras` (JSON
    values) go into the scene's extras. Written with trimesh (a dependency of mask2hand).
    """
    import trimesh

    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_normals=vertex_normals(vertices, faces),
                           process=False)
    scene = trimesh.Scene(metadata=to_jsonable(extras or {}))
    scene.add_geometry(mesh, node_name="hand", geom_name="hand")
    for name, point in zip(joint_names, np.asarray(joints, dtype=np.float64), strict=True):
        placement = np.eye(4)
        placement[:3, 3] = point
        scene.graph.update(frame_from=scene.graph.base_frame, frame_to=name, matrix=placement)
    return scene.export(file_type="glb", include_normals=True)


def to_jsonable(value: Any) -> Any:
    """Numbers, arrays (numpy or torch), dataclass-free containers -> plain JSON values.

    Non-finite floats become None (JSON has no NaN).
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


def json_text(data: Any) -> str:
    """Indented JSON text of `data` (converted with to_jsonable); lists of numbers on one line each
    (a (21,3) joint array reads as 21 lines of x, y, z)."""
    return _format(to_jsonable(data), 0) + "\n"


def _format(value: Any, level: int) -> str:
    pad, inner = " " * level, " " * (level + 2)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {_format(v, level + 2)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if all(not isinstance(v, (list, dict)) for v in value):
            return json.dumps(value)
        items = [inner + _format(v, level + 2) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value)


def figure_png_bytes(figure, dpi: int | None = None) -> bytes:
    """A matplotlib Figure as PNG bytes (Agg canvas; no pyplot, no GUI)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def write_files(writers: dict[str | os.PathLike, Callable[[], bytes]]) -> list[Path]:
    """Write several files all-or-nothing; each writer returns the file's bytes. Raises
    Mask2HandError, writing nothing, when a target exists and is not a file (a folder)."""
    paths = [Path(p) for p in writers]
    for path in paths:
        if path.exists() and not path.is_file():
            raise Mask2HandError(f"{path} exists and is not a file; move it away or choose another --out")
    with contextlib.ExitStack() as stack:
        # produce every payload first: an error here leaves the disk untouched
        payloads = [writer() for writer in writers.values()]
        temps = [stack.enter_context(atomic_path(path)) for path in paths]
        for tmp, data in zip(temps, payloads):
            tmp.write_bytes(data)
    return paths




def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write `data` as JSON atomically (numpy / torch values converted)."""
    return write_files({path: lambda: json_text(data).encode()})[0]


def write_figure(path: str | os.PathLike, figure, dpi: int | None = None) -> Path:
    """Write a matplotlib Figure as PNG atomically."""
    return write_files({path: lambda: figure_png_bytes(figure, dpi)})[0]
