"""Shared helpers of the benchmarks: thread setup, timing, table printing, JSON output."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does; before torch is imported

import torch  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def setup_threads(threads: int = 2) -> None:
    torch.set_num_threads(threads)


def time_per_call(fn: Callable[[], object], min_seconds: float = 1.0, warmup: int = 2) -> float:
    """Median seconds per call of `fn` over repeated runs lasting at least `min_seconds`."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_seconds or len(samples) < 3:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return samples[len(samples) // 2]


def best_time(fn: Callable[[], object], calls: int = 1, warmup: int = 0) -> float:
    """Fastest of `calls` calls of `fn`, in seconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def load_model(checkpoint: str | None, tmp: Path):
    """(Mask2Hand, description of the weights): the given checkpoint, else the shipped
    weights, else a random NetConfig() network saved under `tmp` (timing and plumbing only)."""
    from mask2hand.nn.checkpoint import CHECKPOINT_FORMAT, export_weights
    from mask2hand.nn.pretrained import shipped_weights_path
    from mask2hand.utils.dataclass_config import to_dict
    from mask2hand.nn import Mask2HandNet, NetConfig
    from mask2hand.inference.api import Mask2Hand

    if checkpoint:
        return Mask2Hand.from_pretrained(checkpoint), checkpoint
    if shipped_weights_path() is not None:
        return Mask2Hand.from_pretrained(), "shipped default"
    torch.manual_seed(0)
    config = NetConfig()
    net = Mask2HandNet(config)
    path = export_weights({"format": CHECKPOINT_FORMAT, "config": {"network": to_dict(config)},
                           "hand": net.hand.identity, "model": net.state_dict()}, Path(tmp) / "random.pt")
    return Mask2Hand.from_pretrained(path), "random init of NetConfig() (timing and plumbing only)"


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(w) for c, w in zip(columns, widths)))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    return "" if value is None else str(value)


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__},
        **payload,
    }
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)
    print(f"wrote {path}")
    return path
