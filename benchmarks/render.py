"""Renderer throughput: soft silhouettes/s (forward, forward+backward), exact masks/s, peak memory.

Usage: python benchmarks/render.py [--threads 2] [--quick]

Open-hand meshes in random poses (the pose prior) and random orientations, each filling
about a third of the image (the square around its projection covers a third of the
image area), batch 32, at 128x128 and 224x224, default sigma (the paper's 1e-4 NDC^2).
Measured in the same run: the fast "contour" mode (the default), the faithful "faces"
mode, the dense reference (every pixel against every face, no cutoff) and the exact
rasterizer. Peak memory of a batch-32 forward+backward is measured in a fresh
subprocess (VmHWM). Goals: contour forward+backward >= 500/s at
128x128 and >= 200/s at 224x224, >= 20x the dense reference, <= 2 GB at batch 32
224x224; exact rasterizer >= 2,000 masks/s at 224x224.
"""

from __future__ import annotations

import os

# On a shared machine the OpenMP runtime's default wait policy makes every parallel
# torch op wait for a scheduler tick (~8 ms measured here with 2 threads and other busy
# processes); passive waiting avoids that. Set before torch loads OpenMP; override by
# setting OMP_WAIT_POLICY yourself (an empty value keeps the runtime default).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from common import print_table, setup_threads, time_per_call, write_json  # noqa: E402
from mask2hand.render import rasterize_silhouette, render_soft_silhouette  # noqa: E402
from mask2hand.render.exact import mask_iou  # noqa: E402
from mask2hand.testing.reference import render_soft_silhouette_dense  # noqa: E402
from mask2hand.testing.scenes import RenderScene, scene_from_meshes  # noqa: E402

BATCH = 32
SIZES = (128, 224)
GOALS_FWD_BWD = {128: 500.0, 224: 200.0}
GOAL_SPEEDUP = 20.0
GOAL_MEMORY_GB = 2.0
GOAL_RASTER_224 = 2000.0


def open_hand_scene(batch: int, size: int, seed: int = 0) -> RenderScene:
    from mask2hand.hand import load_hand_model
    from mask2hand.hand.prior import sample_pose_prior

    model = load_hand_model("open")
    gen = torch.Generator().manual_seed(seed)
    pose = torch.as_tensor(sample_pose_prior(batch, seed), dtype=torch.float32)
    betas = torch.randn(batch, 10, generator=gen)
    with torch.no_grad():
        out = model(global_orient=torch.zeros(batch, 3), transl=torch.zeros(batch, 3), hand_pose=pose, betas=betas)
    return scene_from_meshes(out.vertices, model.faces, (size, size), seed=seed + 1)


def soft_rates(scene: RenderScene, mode: str, batch: int, min_seconds: float) -> tuple[float, float]:
    v = scene.vertices[:batch].clone().requires_grad_(True)
    K = scene.K[:batch]

    def forward():
        with torch.no_grad():
            render_soft_silhouette(v, scene.faces, K, scene.image_size, mode=mode)

    def forward_backward():
        render_soft_silhouette(v, scene.faces, K, scene.image_size, mode=mode).sum().backward()

    warmup = 2 if mode == "contour" else 1
    fwd = time_per_call(forward, min_seconds=min_seconds, warmup=warmup)
    fwd_bwd = time_per_call(forward_backward, min_seconds=min_seconds, warmup=warmup)
    return batch / fwd, batch / fwd_bwd


def dense_rates(scene: RenderScene, images: int) -> tuple[float, float]:
    """The dense reference is far too slow to repeat: one timed call of each."""
    v = scene.vertices[:images].clone().requires_grad_(True)
    K = scene.K[:images]
    t0 = time.perf_counter()
    with torch.no_grad():
        render_soft_silhouette_dense(v, scene.faces, K, scene.image_size)
    t1 = time.perf_counter()
    render_soft_silhouette_dense(v, scene.faces, K, scene.image_size).sum().backward()
    t2 = time.perf_counter()
    return images / (t1 - t0), images / (t2 - t1)


def agreement(scene: RenderScene) -> dict:
    exact = torch.from_numpy(rasterize_silhouette(scene.vertices, scene.faces, scene.K, scene.image_size))
    fast = render_soft_silhouette(scene.vertices, scene.faces, scene.K, scene.image_size)
    few = slice(0, 4)
    faithful = render_soft_silhouette(scene.vertices[few], scene.faces, scene.K[few], scene.image_size, mode="faces")
    iou_fast = mask_iou(fast >= 0.5, exact)
    return {
        "mask_coverage": float(exact.float().mean()),
        "iou_contour_vs_exact_min": float(iou_fast.min()),
        "iou_faces_vs_exact_mean": float(mask_iou(faithful >= 0.5, exact[few]).mean()),
        "mean_abs_contour_minus_faces": float((fast[few] - faithful).abs().mean()),
        "band_pixels_per_image": float(((fast > 0) & (fast < 1)).sum() / len(fast)),
    }


def _vm_kb(field: str) -> int:
    """A size field of /proc/self/status in kB (VmRSS now, VmHWM the peak of this process)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def probe_memory(size: int, threads: int) -> None:
    """Run in a subprocess: peak RSS of one batch-32 forward+backward (contour mode).

    VmHWM, not ru_maxrss: the latter also counts the parent's memory copied at fork.
    """
    setup_threads(threads)
    scene = open_hand_scene(BATCH, size)
    v = scene.vertices.clone().requires_grad_(True)
    render_soft_silhouette(v[:1], scene.faces, scene.K[:1], scene.image_size).sum().backward()  # imports, caches
    before = _vm_kb("VmRSS")
    render_soft_silhouette(v, scene.faces, scene.K, scene.image_size).sum().backward()
    print(json.dumps({"peak_rss_mb": _vm_kb("VmHWM") / 1024, "rss_before_mb": before / 1024}))


def measure_memory(size: int, threads: int) -> dict:
    out = subprocess.run([sys.executable, str(Path(__file__)), "--probe-memory", str(size), "--threads", str(threads)],
                         check=True, capture_output=True, text=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["increase_mb"] = data["peak_rss_mb"] - data["rss_before_mb"]
    return data


def make_figure(path: Path) -> None:
    """Three hands: exact mask, soft silhouette (with a zoomed crop), the contour term."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mask2hand.render.contour import contour_distance_field, contour_loss, contour_term
    from mask2hand.render.soft import default_sigma

    size = 224
    scene = open_hand_scene(3, size, seed=11)
    exact = rasterize_silhouette(scene.vertices, scene.faces, scene.K, scene.image_size)
    soft = render_soft_silhouette(scene.vertices, scene.faces, scene.K, scene.image_size)
    # A target 3 px to the right, as if the prediction were off: the loss weights the
    # rendered contour by the distance to the target's contour.
    target = __import__("numpy").roll(exact, 3, axis=2)
    field = torch.from_numpy(contour_distance_field(target))
    term = contour_term(soft)
    losses = [float(contour_loss(soft[i:i + 1], field[i:i + 1])) for i in range(3)]
    fig, axes = plt.subplots(3, 4, figsize=(13, 10))
    for i in range(3):
        rows, cols = exact[i].nonzero()
        j = rows.argmin()  # the topmost hand pixel: zoom there
        r0, c0 = max(0, rows[j] - 8), max(0, cols[j] - 12)
        crop = (slice(r0, r0 + 24), slice(c0, c0 + 24))
        panels = [(exact[i], "exact mask", "gray"), (soft[i].numpy(), "soft silhouette", "gray"),
                  (soft[i].numpy()[crop], f"soft silhouette, zoom (rows {r0}-{r0 + 23})", "gray"),
                  (term[i].numpy(), f"contour term; loss vs 3-px-shifted target {losses[i]:.1f}", "inferno")]
        for ax, (img, title, cmap) in zip(axes[i], panels):
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1 if cmap == "gray" else max(float(term[i].max()), 1e-6),
                      interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.suptitle(f"mask2hand renderer, open hand, {size}x{size}, default sigma {default_sigma((size, size)):.3f} px^2 "
                 "(contour mode)", fontsize=11)
    fig.tight_layout()
    from mask2hand.utils.files import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="shorter timings, no dense reference")
    parser.add_argument("--figure", type=Path, default=None, help="only write the example figure to this PNG")
    parser.add_argument("--probe-memory", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.figure is not None:
        make_figure(args.figure)
        return
    if args.probe_memory is not None:
        probe_memory(args.probe_memory, args.threads)
        return
    setup_threads(args.threads)
    min_seconds = 0.5 if args.quick else 2.0
    rows, details = [], {}
    for size in SIZES:
        scene = open_hand_scene(BATCH, size)
        details[size] = agreement(scene)
        fast_fwd, fast_fb = soft_rates(scene, "contour", BATCH, min_seconds)
        faces_fwd, faces_fb = soft_rates(scene, "faces", 8, min_seconds)
        raster = BATCH / time_per_call(lambda: rasterize_silhouette(scene.vertices, scene.faces, scene.K,
                                                                    scene.image_size), min_seconds=min_seconds)
        dense_fwd, dense_fb = (None, None) if args.quick else dense_rates(scene, 1)
        memory = measure_memory(size, args.threads)
        details[size]["memory"] = memory

        def speedup(rate, ref):
            return None if ref is None else rate / ref

        rows += [
            {"size": size, "method": "contour (default)", "pass": "fwd", "per_s": fast_fwd,
             "x_dense": speedup(fast_fwd, dense_fwd)},
            {"size": size, "method": "contour (default)", "pass": "fwd+bwd", "per_s": fast_fb,
             "goal": GOALS_FWD_BWD[size], "x_dense": speedup(fast_fb, dense_fb), "peak_mb": memory["peak_rss_mb"]},
            {"size": size, "method": "faces (faithful)", "pass": "fwd", "per_s": faces_fwd,
             "x_dense": speedup(faces_fwd, dense_fwd)},
            {"size": size, "method": "faces (faithful)", "pass": "fwd+bwd", "per_s": faces_fb,
             "x_dense": speedup(faces_fb, dense_fb)},
            {"size": size, "method": "dense reference", "pass": "fwd", "per_s": dense_fwd},
            {"size": size, "method": "dense reference", "pass": "fwd+bwd", "per_s": dense_fb},
            {"size": size, "method": "exact rasterizer", "pass": "mask", "per_s": raster,
             "goal": GOAL_RASTER_224 if size == 224 else None},
        ]
    print(f"batch {BATCH} ({8} for faces mode, 1 image for the dense reference), {args.threads} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; per_s = silhouettes (or masks) per second")
    print_table(rows, ["size", "method", "pass", "per_s", "goal", "x_dense", "peak_mb"])
    for size in SIZES:
        d = details[size]
        print(f"{size}x{size}: mask coverage {d['mask_coverage']:.3f}, band {d['band_pixels_per_image']:.0f} px/image, "
              f"IoU(contour >= 0.5, exact) min {d['iou_contour_vs_exact_min']:.4f}, "
              f"IoU(faces >= 0.5, exact) mean {d['iou_faces_vs_exact_mean']:.4f}, "
              f"mean |contour - faces| {d['mean_abs_contour_minus_faces']:.4f}, "
              f"peak RSS {d['memory']['peak_rss_mb']:.0f} MB (+{d['memory']['increase_mb']:.0f} MB)")

    def rate(size, method, pass_):
        return next(r["per_s"] for r in rows if r["size"] == size and r["method"] == method and r["pass"] == pass_)

    meets = {f"fwd_bwd_{s}": rate(s, "contour (default)", "fwd+bwd") >= GOALS_FWD_BWD[s] for s in SIZES}
    meets["raster_224"] = rate(224, "exact rasterizer", "mask") >= GOAL_RASTER_224
    meets["memory_224"] = details[224]["memory"]["peak_rss_mb"] <= GOAL_MEMORY_GB * 1024
    if not args.quick:
        meets["speedup"] = all(r["x_dense"] >= GOAL_SPEEDUP for r in rows
                               if r["method"] == "contour (default)" and r["pass"] == "fwd+bwd")
    print("goals met:", meets)
    write_json("render", {"batch": BATCH, "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                          "rows": rows,
                          "details": {str(k): v for k, v in details.items()},
                          "goals": {"fwd_bwd": GOALS_FWD_BWD, "speedup": GOAL_SPEEDUP, "memory_gb": GOAL_MEMORY_GB,
                                    "raster_224": GOAL_RASTER_224},
                          "meets_goals": meets,
                          "load_average_at_end": list(os.getloadavg())})


if __name__ == "__main__":
    main()
