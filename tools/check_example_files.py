"""Write one example's files with the shipped model and open the OBJ and GLB with trimesh.

    python tools/check_example_files.py [--mask examples/open_palm.png] [--out out/example_files]

Prints, per file and frame, what trimesh reads: vertices, faces, whether the normals are of unit
length, how well they agree with the normals trimesh computes from the triangles itself (cosines), the
share of vertices whose normal points away from the mesh's centroid, the volume the faces enclose
(positive: they wind outward), and for the GLB the joint nodes. Exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import trimesh

from mask2hand import Mask2Hand
from mask2hand.export.prediction import write_prediction
from mask2hand.hand import JOINT_NAMES

REPO = Path(__file__).resolve().parents[1]


def check(mask: Path, out: Path) -> list[dict]:
    """Predict `mask` with the shipped model, write its files in both frames under `out` and read the
    OBJ and GLB back: one row per file with what was read and whether it passes."""
    prediction = Mask2Hand.from_pretrained().predict(str(mask))
    rows = []
    for frame in ("opencv", "opengl"):
        paths = write_prediction(prediction, out / frame, figure=False, frame=frame)
        turn = np.array([1.0, -1.0, -1.0]) if frame == "opengl" else np.ones(3)  # opengl: (x, -y, -z)
        for kind in ("obj", "glb"):
            loaded = trimesh.load(paths[kind], process=False)
            mesh = loaded.geometry["hand"] if kind == "glb" else loaded
            normals = np.asarray(mesh.vertex_normals)
            away = np.asarray(mesh.vertices) - np.asarray(mesh.vertices).mean(axis=0)
            # trimesh's own normals of the same triangles (angle-weighted), against the file's (area-weighted)
            own = trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), process=False).vertex_normals
            cosines = np.einsum("ij,ij->i", normals, own)
            row = {"file": f"{frame}/{paths[kind].name}", "vertices": len(mesh.vertices), "faces": len(mesh.faces),
                   "same_mesh": bool(np.allclose(mesh.vertices, prediction.vertices * turn, atol=1e-5)
                                     and np.array_equal(mesh.faces, prediction.faces)),
                   "unit_normals": float(np.abs(np.linalg.norm(normals, axis=1) - 1).max()) < 1e-4,
                   "normals_away_from_centroid": float((np.einsum("ij,ij->i", normals, away) > 0).mean()),
                   "cos_to_trimesh_normals_mean": float(cosines.mean()), "cos_min": float(cosines.min()),
                   "volume_cm3": float(mesh.volume * 1e6), "watertight": bool(mesh.is_watertight)}
            if kind == "glb":
                joints = np.stack([loaded.graph.get(name)[0][:3, 3] for name in JOINT_NAMES])
                row["joint_nodes"] = len(joints)
                row["joints_match"] = bool(np.allclose(joints, prediction.joints * turn, atol=1e-6))
                row["frame_in_extras"] = loaded.metadata.get("frame")
            row["ok"] = (row["same_mesh"] and row["unit_normals"] and row["volume_cm3"] > 0 and row["cos_min"] > 0
                         and row["normals_away_from_centroid"] > 0.5 and row.get("joints_match", True))
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mask", type=Path, default=REPO / "examples" / "open_palm.png")
    parser.add_argument("--out", type=Path, default=Path("out/example_files"))
    args = parser.parse_args(argv)
    rows = check(args.mask, args.out)
    for row in rows:
        print("  ".join(f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}"
                        for key, value in row.items()))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
