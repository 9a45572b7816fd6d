"""Jitter of sequence predictions with and without One Euro smoothing, 2 CPU threads.

A synthetic sequence (mask2hand.testing.scenes.synthetic_sequence: an open hand easing into a
half-closed, turned pose, exact silhouettes at 224x224, 30 fps) is predicted frame by
frame; jitter is the mean frame-to-frame joint acceleration (norm of the second
difference, m/frame^2; mask2hand.inference.smoothing.mean_joint_acceleration), for the raw and the
smoothed predictions and for the ground-truth motion itself (the floor a perfect
predictor would reach). Weights: the shipped model if this build has one, else a randomly
initialised network: then the numbers only check the mechanism (a random network's
frame-to-frame changes are not a trained network's errors). The JSON says which.
Usage: python benchmarks/sequence.py [--checkpoint PATH] [--frames N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common import load_model, print_table, setup_threads, write_json
from mask2hand.inference.sequence import predict_sequence
from mask2hand.inference.video import Frames
from mask2hand.testing.scenes import synthetic_sequence
from mask2hand.inference.smoothing import OneEuroConfig, mean_joint_acceleration

IMAGE_SIZE = (224, 224)
FPS = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="weights (default: shipped, else random default config)")
    parser.add_argument("--frames", type=int, default=48, help="sequence length (default: 48)")
    args = parser.parse_args()
    setup_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model, weights = load_model(args.checkpoint, Path(tmp))
        masks, truth, K = synthetic_sequence(model.runner.hand, num_frames=args.frames, image_size=IMAGE_SIZE,
                                             focal=2.2 * IMAGE_SIZE[1], seed=0)
        frames = Frames.from_images(masks, fps=FPS, source="<synthetic>")
        config = OneEuroConfig()
        start = time.perf_counter()
        result = predict_sequence(model, frames, K=K, smoothing=config)
        seconds = time.perf_counter() - start
    raw = mean_joint_acceleration(result.raw_joints)
    smoothed = mean_joint_acceleration(np.stack([p.joints for p in result.predictions]))
    rows = [{"joints": "ground truth (synthetic motion)", "jitter m/frame^2": mean_joint_acceleration(truth)},
            {"joints": "predicted, raw", "jitter m/frame^2": raw},
            {"joints": "predicted, One Euro smoothed", "jitter m/frame^2": smoothed}]
    print(f"weights: {weights}; {args.frames} frames {IMAGE_SIZE[1]}x{IMAGE_SIZE[0]} at {FPS:g} fps; "
          f"One Euro min_cutoff {config.min_cutoff} Hz, beta {config.beta}, d_cutoff {config.d_cutoff} Hz")
    print_table(rows, ["joints", "jitter m/frame^2"])
    print(f"smoothing reduces jitter {raw / smoothed:.1f}x; whole sequence predicted in {seconds:.1f} s")
    write_json("sequence", {"weights": weights, "frames": args.frames, "image_size": list(IMAGE_SIZE), "fps": FPS,
                            "one_euro": {"min_cutoff": config.min_cutoff, "beta": config.beta,
                                         "d_cutoff": config.d_cutoff},
                            "jitter_m_per_frame2": {"ground_truth": mean_joint_acceleration(truth), "raw": raw,
                                                    "smoothed": smoothed},
                            "seconds": seconds,
                            "note": "random weights: a mechanism check only" if "random" in weights else ""})


if __name__ == "__main__":
    main()
