"""ONNX runtime vs PyTorch: the exported graph against the network's fast PyTorch path, same run.

Rows (network input 128 x 128 and the open hand, 1,100 vertices / 2,196 faces, unless
--checkpoint gives other weights; random weights otherwise, which cost the same):

- onnxruntime: the whole exported graph (mask2hand.export.onnx: encoder, hand layer, exact
  silhouette, RefineNet) run by mask2hand.inference.onnx_runner.OnnxRunner;
- pytorch fast path: Mask2HandNet with fold_batch_norms() and forward(exact_silhouette=True),
  the same computation;
- silhouette alone: the graph's traced exact rasterizer by itself in onnxruntime, and the
  numpy rasterizer (mask2hand.render.exact.rasterize, what a two-graph design would run
  between the graphs), to show what putting the rasterizer in the graph costs.

ms per mask at batch 1 and masks/s at batch 64 on --threads threads (default 2), each the
best of --rounds round-robin passes (each pass times every row once, so rows share the
machine's load alike). The exported graph's largest difference from PyTorch on the same
masks is printed too. Goal: <= 5 ms per mask at batch 1 on 2 threads.

Usage: python benchmarks/onnx.py [--threads 2] [--rounds 5] [--quick] [--checkpoint PATH]
(--quick: one round, few calls, no JSON written.)
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import warnings
from pathlib import Path

# This file is named onnx.py: its folder goes to the end of the path, after site-packages,
# so that `import onnx` (inside torch.onnx) finds the package, not this script.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import best_time, print_table, setup_threads, write_json  # noqa: E402
from mask2hand.nn import Mask2HandNet, NetConfig  # noqa: E402
from mask2hand.export.onnx import export_onnx, synthetic_check_inputs  # noqa: E402
from mask2hand.inference.onnx_runner import OnnxRunner  # noqa: E402
from mask2hand.render import exact  # noqa: E402

GOAL_BATCH1_MS = 5.0
BATCH = 64


def silhouette_session(network, threads: int, folder: Path):
    """onnxruntime session of the exported graph's rasterizer alone: (vertices, K) -> silhouette."""
    import onnxruntime

    from mask2hand.export.onnx import ExportGraph

    class SilhouetteOnly(ExportGraph):
        def forward(self, vertices, K):
            size = self.network.config.input_size
            return exact.silhouette(vertices.double(), K.double(), self.faces, self.edges, self.edge_faces,
                                    self.edge_dirs, (size, size), dense_rows=True).float()

    path = folder / "silhouette.onnx"
    vertices = torch.zeros(2, network.hand.num_vertices, 3) + torch.tensor([0.0, 0.0, 0.5])
    K = torch.eye(3).expand(2, 3, 3).contiguous()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(SilhouetteOnly(network), (vertices, K), str(path), dynamo=False, opset_version=17,
                          input_names=["vertices", "K"], output_names=["silhouette"],
                          dynamic_axes={"vertices": {0: "b"}, "K": {0: "b"}, "silhouette": {0: "b"}})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one round, few calls, no JSON: checks that it runs")
    parser.add_argument("--checkpoint", help="weights or checkpoint file (default: random cpu-default weights)")
    args = parser.parse_args()
    setup_threads(args.threads)
    rounds, calls_b1, calls_b64 = (1, 3, 1) if args.quick else (args.rounds, 20, 3)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.checkpoint:
            result = export_onnx(args.checkpoint, folder / "model.onnx")
            network = result.network
        else:
            torch.manual_seed(0)
            network = Mask2HandNet(NetConfig()).eval()
            result = export_onnx(network, folder / "model.onnx")
        runner = OnnxRunner(result.path, threads=args.threads)
        size = runner.input_size
        masks, K = synthetic_check_inputs(network.hand, BATCH, size, seed=0)
        fast = copy.deepcopy(network).fold_batch_norms()
        masks_t, K_t = torch.as_tensor(masks), torch.as_tensor(K)

        def torch_run(b):
            def run():
                with torch.inference_mode():
                    return fast(masks_t[:b], K_t[:b], exact_silhouette=True)
            return run

        with torch.inference_mode():
            prelim = fast.preliminary(masks_t[:, None], K_t).vertices.numpy()
        raster_session = silhouette_session(network, args.threads, folder)
        faces = network.hand.faces.numpy()
        rows = {
            "onnxruntime (whole graph)": {"b1": lambda: runner.run_graph(masks[:1], K[:1]),
                                          "b64": lambda: runner.run_graph(masks, K)},
            "pytorch fast path": {"b1": torch_run(1), "b64": torch_run(BATCH)},
            "silhouette alone, onnxruntime": {
                "b1": lambda: raster_session.run(None, {"vertices": prelim[:1], "K": K[:1]}),
                "b64": lambda: raster_session.run(None, {"vertices": prelim, "K": K})},
            "silhouette alone, numpy": {"b1": lambda: exact.rasterize(prelim[:1], faces, K[:1], (size, size)),
                                        "b64": lambda: exact.rasterize(prelim, faces, K, (size, size))},
        }
        best = {name: {"b1": float("inf"), "b64": float("inf")} for name in rows}
        for _ in range(rounds):
            for name, timers in rows.items():
                best[name]["b1"] = min(best[name]["b1"], best_time(timers["b1"], calls_b1, warmup=1))
                best[name]["b64"] = min(best[name]["b64"], best_time(timers["b64"], calls_b64, warmup=1))

        ours = runner.run_graph(masks, K)
        with torch.inference_mode():
            theirs = fast(masks_t, K_t, exact_silhouette=True)
        vertex_diff = float(np.abs(ours["vertices"] - theirs.final_vertices.numpy()).max())
        joint_diff = float(np.abs(ours["joints"] - theirs.final_joints.numpy()).max())
        model_mb = result.size_bytes / 1e6

    table = [{"path": name, "b1_ms": 1e3 * t["b1"], "b64_masks_per_s": BATCH / t["b64"]} for name, t in best.items()]
    print(f"network input {size}x{size}, {network.hand.num_vertices} vertices, {len(faces)} faces, "
          f"{args.threads} thread(s), best of {rounds} round(s){' (quick)' if args.quick else ''}")
    print_table(table, ["path", "b1_ms", "b64_masks_per_s"])
    onnx_b1 = table[0]["b1_ms"]
    print(f"goal <= {GOAL_BATCH1_MS} ms per mask at batch 1: {onnx_b1:.2f} ms "
          f"({'met' if onnx_b1 <= GOAL_BATCH1_MS else 'missed'} with {args.threads} thread(s)); "
          f"onnxruntime vs PyTorch: max vertex difference {vertex_diff:.2e} m, joints {joint_diff:.2e} m")
    if args.quick:
        return
    write_json("onnx", {"threads": args.threads, "rounds": rounds, "quick": args.quick, "input_size": size,
                        "num_vertices": network.hand.num_vertices, "num_faces": int(len(faces)),
                        "weights": args.checkpoint or "random cpu-default", "model_mb": model_mb,
                        "goal_b1_ms": GOAL_BATCH1_MS, "rows": table,
                        "max_vertex_diff_m": vertex_diff, "max_joint_diff_m": joint_diff})


if __name__ == "__main__":
    main()
