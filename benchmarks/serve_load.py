"""Load on `mask2hand serve`: requests/s and latency of POST /api/predict, against in-process predict.

Starts the real command (`python -m mask2hand serve`, uvicorn, one process) on a free port of
127.0.0.1, waits for /api/health, sends a few warm-up requests, then:
- HTTP, 1 client: --single requests one after another (latency without queueing);
- HTTP, N clients: --requests requests from --clients threads at once (httpx, one kept-alive
  connection each), all with the same example PNG;
and, in this process, the baseline: `Mask2Hand.predict` on the same file (2 threads, as the server's
torch on this machine), so the HTTP and answer-building overhead is visible. The server runs one
prediction at a time (mask2hand.serve.service), so N clients queue: their latency grows with N
while requests/s stays that of one stream. `model s` is the server's own time per answer (read,
predict, overlay, under its lock), from the answers' "seconds".

With --queued N it measures instead whether the cheap routes wait behind predictions: N POST
/api/predict at once (one thread and connection each; with --fit each asks for the test-time fit,
a slower prediction), and meanwhile --probes GET /api/health and one GET / one after another, each
timed; then how the N were answered (200, 503) and the slowest one's wait. --server-args passes
options to `mask2hand serve` (e.g. "--max-queue 60").

Usage: python benchmarks/serve_load.py [--requests 200] [--clients 4] [--single 30] [--file examples/victory.png]
                                      [--checkpoint W]
       python benchmarks/serve_load.py --queued 60 [--fit] [--probes 3] [--server-args "--max-queue 60"]
Writes benchmarks/results/serve_load.json (serve_queued.json with --queued).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from common import print_table, setup_threads, write_json

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 5
SETTLE_S = 2.0
"""Seconds between firing the --queued predictions and the first probe: their uploads are in by then."""


def start_server(checkpoint: str | None, extra: list[str]) -> tuple[subprocess.Popen, str]:
    """`mask2hand serve --port 0 [extra]` in a subprocess; (the process, its base URL) once it answers."""
    import httpx

    command = [sys.executable, "-m", "mask2hand", "serve", "--port", "0", *extra] + (["--checkpoint", checkpoint]
                                                                                     if checkpoint else [])
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()
    found = re.search(r"http://[\d.]+:\d+", line)
    if not found:
        proc.kill()
        raise SystemExit(f"the server did not start: {line.strip() or 'no output'}")
    url = found[0]
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/api/health", timeout=5).raise_for_status()
            return proc, url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("the server does not answer /api/health")
            time.sleep(0.2)


def load(url: str, data: bytes, name: str, requests: int, clients: int) -> dict:
    """`requests` POST /api/predict from `clients` threads; latency percentiles (ms), requests/s, the
    server's mean time per answer (s)."""
    import httpx

    latencies: list[float] = []
    model_seconds: list[float] = []
    failures: list[str] = []
    remaining = [requests]
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while True:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                t0 = time.perf_counter()
                response = http.post("/api/predict", files={"mask": (name, data, "image/png")})
                elapsed = time.perf_counter() - t0
                with lock:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                        model_seconds.append(response.json()["seconds"])
                    else:
                        failures.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} request(s) failed, e.g. {failures[0]}")
    ms = 1000 * np.asarray(latencies)
    return {"requests": requests, "clients": clients, "requests_per_s": requests / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
            "model_s": float(np.mean(model_seconds)), "seconds": wall}


def queued(url: str, data: bytes, name: str, count: int, probes: int, timeout: float, fields: dict) -> dict:
    """`count` POST /api/predict (form `fields`) at once; meanwhile `probes` timed GET /api/health
    and one GET /; then the predictions' status codes and the slowest one's wait (s). Every request gives up
    after `timeout` seconds (counted as status "timeout")."""
    import httpx

    statuses: list[str] = []
    waits: list[float] = []
    lock = threading.Lock()

    def predict() -> None:
        t0 = time.perf_counter()
        try:
            with httpx.Client(base_url=url, timeout=timeout) as http:
                status = str(http.post("/api/predict", files={"mask": (name, data, "image/png")},
                                       data=fields).status_code)
        except httpx.TimeoutException:
            status = "timeout"
        with lock:
            statuses.append(status)
            waits.append(time.perf_counter() - t0)

    def timed_get(path: str) -> float:
        t0 = time.perf_counter()
        with httpx.Client(base_url=url, timeout=timeout) as http:
            http.get(path).raise_for_status()
        return 1000 * (time.perf_counter() - t0)

    threads = [threading.Thread(target=predict) for _ in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(SETTLE_S)
    health_ms = [timed_get("/api/health") for _ in range(probes)]
    page_ms = timed_get("/")
    for thread in threads:
        thread.join()
    return {"queued": count, "health_ms": health_ms, "health_max_ms": max(health_ms), "page_ms": page_ms,
            "answered": {status: statuses.count(status) for status in sorted(set(statuses))},
            "slowest_wait_s": max(waits), "seconds": time.perf_counter() - started}


def in_process(checkpoint: str | None, path: Path, calls: int) -> dict:
    """Latency of Mask2Hand.predict on the file, in this process (after one warm-up call)."""
    from mask2hand import Mask2Hand

    model = Mask2Hand.from_pretrained(checkpoint)
    model.predict(str(path))
    seconds = []
    for _ in range(calls):
        t0 = time.perf_counter()
        model.predict(str(path))
        seconds.append(time.perf_counter() - t0)
    ms = 1000 * np.asarray(seconds)
    return {"requests": calls, "clients": 1, "requests_per_s": calls / (ms.sum() / 1000),
            "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "model_s": None,
            "seconds": float(ms.sum() / 1000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests of the concurrent row (default 200)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--single", type=int, default=30, help="requests of the 1-client row and of the "
                                                                "in-process baseline (default 30)")
    parser.add_argument("--file", type=Path, default=ROOT / "examples" / "victory.png", help="the mask sent")
    parser.add_argument("--checkpoint", help="weights (default: the shipped model)")
    parser.add_argument("--queued", type=int, metavar="N", help="instead: N predictions at once while "
                                                                "/api/health and / are timed")
    parser.add_argument("--fit", action="store_true", help="the --queued predictions ask for the test-time fit")
    parser.add_argument("--probes", type=int, default=3, help="timed /api/health requests with --queued (default 3)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds any one request may take (default 600)")
    parser.add_argument("--server-args", default="", help="options for `mask2hand serve`, one string")
    args = parser.parse_args()
    setup_threads(2)
    data = args.file.read_bytes()
    if args.queued:
        run_queued(args, data)
        return
    rows = [{"mode": "in-process predict", **in_process(args.checkpoint, args.file, args.single)}]
    proc, url = start_server(args.checkpoint, shlex.split(args.server_args))
    try:
        load(url, data, args.file.name, WARMUP, 1)
        rows.append({"mode": "HTTP, 1 client", **load(url, data, args.file.name, args.single, 1)})
        rows.append({"mode": f"HTTP, {args.clients} clients",
                     **load(url, data, args.file.name, args.requests, args.clients)})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"POST /api/predict with {args.file.name} ({len(data)} bytes), shipped model unless --checkpoint; "
          "latency in ms, model s = the server's time per answer")
    print_table(rows, ["mode", "requests", "clients", "requests_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms",
                       "model_s"])
    overhead = rows[1]["p50_ms"] - rows[0]["p50_ms"]
    print(f"HTTP overhead at 1 client (median latency minus in-process predict): {overhead:.1f} ms")
    write_json("serve_load", {"file": str(args.file.relative_to(ROOT)) if args.file.is_relative_to(ROOT) else
                              str(args.file), "bytes": len(data), "checkpoint": args.checkpoint or "shipped default",
                              "note": "2 CPU cores shared with other jobs: pessimistic", "rows": rows,
                              "http_overhead_ms_1_client": overhead})


def run_queued(args: argparse.Namespace, data: bytes) -> None:
    proc, url = start_server(args.checkpoint, shlex.split(args.server_args))
    try:
        load(url, data, args.file.name, 1, 1)
        result = queued(url, data, args.file.name, args.queued, args.probes, args.timeout,
                        {"fit": "on"} if args.fit else {})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"{args.queued} x POST /api/predict with {args.file.name}{' and fit' if args.fit else ''} at once, "
          f"server args {args.server_args!r}")
    print_table([{"route": "GET /api/health", "ms": ms} for ms in result["health_ms"]]
                + [{"route": "GET /", "ms": result["page_ms"]}], ["route", "ms"])
    print(f"predictions answered {result['answered']}; slowest waited {result['slowest_wait_s']:.1f} s")
    write_json("serve_queued", {"file": args.file.name, "fit": args.fit, "server_args": args.server_args,
                                "note": "2 CPU cores shared with other jobs: pessimistic", **result})


if __name__ == "__main__":
    main()
