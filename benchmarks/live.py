"""Live mode of `mask2hand serve`: frames answered per second end to end and their latency.

The server (the app of `mask2hand serve`, uvicorn in a thread of this process, the shipped model
on onnxruntime unless --runtime torch) and the client (headless Chromium on the live page /live,
its fake camera playing a Y4M video of the synthetic sequence: an open hand easing into a
half-closed, turned pose, 224 x 224, white on black) run on this machine. The page makes each
silhouette, sends it over the WebSocket, waits for the answer and draws the smoothed hand (WebGL
on Chromium's software renderer), then sends the next: one frame in flight, so the answered rate
is what the whole loop sustains. After --warmup answers, --seconds are measured: answered frames
per second, the latency from taking a frame to its answer (median, 90th percentile, measured by
the page), and the server's own time per frame (read, network, smoothing, finish). The load
average before and after is printed: the figures depend on what else the machine runs.

Usage: python benchmarks/live.py [--seconds 20] [--runtime onnx|torch] [--screenshot PATH]
Writes benchmarks/results/live.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import print_table, setup_threads, write_json

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import serve_screenshot as browser  # noqa: E402

SIDE = 224
FPS = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time (default: 20)")
    parser.add_argument("--warmup", type=int, default=20, help="answers before measuring (default: 20)")
    parser.add_argument("--runtime", choices=("onnx", "torch"), default="onnx", help="the server's runtime")
    parser.add_argument("--screenshot", type=Path, help="also save the live page as this PNG")
    args = parser.parse_args()
    if not (browser.CHROMIUM.is_file() and browser.CHROMEDRIVER.is_file()):
        sys.exit(f"needs {browser.CHROMIUM} and {browser.CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    setup_threads(2)

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from mask2hand import Mask2Hand
    from mask2hand.hand import load_hand_model
    from mask2hand.serve.app import create_app
    from mask2hand.testing.scenes import synthetic_sequence

    masks, _, _ = synthetic_sequence(load_hand_model("open"), num_frames=60, image_size=(SIDE, SIDE),
                                     focal=2.2 * SIDE, seed=0)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        video = browser.write_y4m(Path(tmp) / "camera.y4m",
                                  np.concatenate([masks, masks[::-1]]).astype(np.uint8) * 255, fps=FPS)
        model = Mask2Hand.from_pretrained(runtime=args.runtime)
        with browser.serving(create_app(model)) as url, \
                browser.chromium(flags=browser.fake_camera_flags(video)) as driver:
            driver.get(url + "/live")
            driver.find_element(By.ID, "start").click()
            stats = lambda: driver.execute_script("return window.liveStats")  # noqa: E731
            WebDriverWait(driver, 300, poll_frequency=0.1).until(lambda d: stats()["answers"] >= args.warmup)
            start, started = stats(), time.perf_counter()
            time.sleep(args.seconds)
            end, elapsed = stats(), time.perf_counter() - started
            if args.screenshot:
                print(f"wrote {browser.save_page(driver, args.screenshot)}")
    load_after = os.getloadavg()
    answered = end["answers"] - start["answers"]
    latencies = np.asarray(end["latencies"][len(start["latencies"]):])
    server = np.asarray(end["serverSeconds"][len(start["serverSeconds"]):]) * 1000
    fps = answered / elapsed
    rows = [{"measure": "answered frames/s (end to end)", "value": fps},
            {"measure": "latency median ms", "value": float(np.median(latencies))},
            {"measure": "latency p90 ms", "value": float(np.percentile(latencies, 90))},
            {"measure": "server time per frame median ms", "value": float(np.median(server))},
            {"measure": "errors", "value": end["errors"] - start["errors"]}]
    print(f"{args.runtime} runtime, {SIDE}x{SIDE} frames, {answered} answers in {elapsed:.1f} s; "
          f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} ({os.cpu_count()} CPUs)")
    print_table(rows, ["measure", "value"])
    write_json("live", {"runtime": args.runtime, "image_size": [SIDE, SIDE], "seconds": elapsed, "answers": answered,
                        "fps": fps, "latency_ms": {"median": float(np.median(latencies)),
                                                   "p90": float(np.percentile(latencies, 90))},
                        "server_ms_median": float(np.median(server)), "errors": end["errors"] - start["errors"],
                        "load_average": {"before": load_before[0], "after": load_after[0]},
                        "goal": ">= 15 answered frames/s, median latency < 100 ms on 2 CPU cores"})


if __name__ == "__main__":
    main()
