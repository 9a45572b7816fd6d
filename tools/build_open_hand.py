"""Build the open hand asset: src/mask2hand/hand/assets/open_hand.npz.

    python tools/build_open_hand.py [--out PATH]

Deterministic (same machine, same package versions -> the same bytes). Needs the
build-only packages scikit-image (marching cubes) and fast-simplification (quadric
decimation) besides the runtime dependencies. Takes about a minute.

Steps: designed skeleton (Buchholz, Armstrong & Goldstein 1992, "Anthropometric data
for describing the kinematics of the human hand", Ergonomics 35(3):261-273, for the
segment-length ratios; see tools/open_hand_geometry.py) -> implicit surface ->
marching cubes -> decimation -> skinning weights, joint regressor, fingertips ->
ten anthropometric shape directions -> pose PCA of 100,000 samples of the pose prior
(mask2hand.hand.prior) -> checks -> npz. See docs/OPEN_HAND.md.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from open_hand_geometry import (build_skeleton, hand_primitives, is_clean_closed_mesh, mesh_hand,  # noqa: E402
                                mesh_report, part_labels)
from open_hand_rig import fingertip_vertices, joint_regressor, shape_directions, skinning_weights  # noqa: E402

from mask2hand.hand.data import MANO_PARENTS  # noqa: E402
from mask2hand.hand.prior import sample_pose_prior  # noqa: E402

ASSET = Path(__file__).resolve().parents[1] / "src" / "mask2hand" / "hand" / "assets" / "open_hand.npz"
TARGET_VERTICES = 1100
PCA_SAMPLES = 100_000
PCA_SEED = 20240601


def pose_pca(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows = principal directions scaled by their standard deviation (45,45); the mean (45,)."""
    mean = samples.mean(axis=0)
    centered = samples - mean
    _, sing, vt = np.linalg.svd(centered, full_matrices=False)
    std = sing / np.sqrt(len(samples) - 1)
    # fix each component's sign: the flexion-weighted sum is positive (first: curl)
    for k in range(len(vt)):
        if vt[k].sum() < 0:
            vt[k] = -vt[k]
    return vt * std[:, None], mean


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz (zip of .npy) with fixed timestamps, so the bytes (and asset hash) are reproducible."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            data = io.BytesIO()
            np.lib.format.write_array(data, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, data.getvalue())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


def build() -> dict[str, np.ndarray]:
    t0 = time.time()
    sk = build_skeleton()
    spec = hand_primitives(sk)
    vertices, faces = mesh_hand(spec, target_vertices=TARGET_VERTICES)
    print(f"mesh: {mesh_report(vertices, faces)} ({time.time() - t0:.1f} s)")
    names, labels = part_labels(spec, vertices)
    weights = skinning_weights(vertices, faces, sk, labels, names)
    regressor = joint_regressor(vertices, sk, weights)
    err = np.linalg.norm(regressor @ vertices - sk.joints, axis=1).max()
    print(f"joint regressor: max error {err * 1000:.3f} mm, {int((regressor > 0).sum())} non-zeros")
    tips = fingertip_vertices(vertices, sk)
    shapedirs = shape_directions(vertices, sk, weights)
    samples = sample_pose_prior(PCA_SAMPLES, np.random.default_rng(PCA_SEED))
    components, mean = pose_pca(samples)
    arrays = {
        "v_template": vertices.astype(np.float32),
        "faces": faces.astype(np.int32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((len(vertices), 3, 135), dtype=np.float32),
        "joint_regressor": regressor.astype(np.float32),
        "weights": weights.astype(np.float32),
        "parents": np.array(MANO_PARENTS, dtype=np.int32),
        "pose_components": components.astype(np.float32),
        "pose_mean": mean.astype(np.float32),
        "fingertip_ids": tips.astype(np.int32),
    }
    assert is_clean_closed_mesh(vertices, faces)
    print(f"built in {time.time() - t0:.1f} s")
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ASSET)
    args = parser.parse_args()
    arrays = build()
    write_npz(args.out, arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
