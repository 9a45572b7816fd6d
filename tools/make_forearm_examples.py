"""Build examples/forearm/: six of the examples' hands with a forearm attached, as real silhouettes have.

Each hand is the one in examples/ground_truth.json (the open hand, its parameters and K), with a
forearm from mask2hand.data.forearm (a seeded draw: wrist flexion and deviation within anatomical
limits, adult proportions, the arm pointing away from the camera). The same hand without its arm
is the example of the same name in examples/. Writes, into examples/forearm/:

    <name>.png            hand and arm, white (255) on black (0), 224x224
    ground_truth.json     per example: the hand's joints (21,3) m, joints_2d (21,2) px, params, K, the
                          arm's draw (flexion, deviation in degrees, length in m), pixel counts

Run: python tools/make_forearm_examples.py [--check]   (--check renders again and compares)
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from mask2hand.data.forearm import FOREARM_FACES, ForearmSettings, build_forearms, draw_forearms
from mask2hand.export.files import json_text, write_files
from mask2hand.hand import load_hand_model
from mask2hand.render import project, rasterize_silhouette

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
OUT = EXAMPLES / "forearm"
NAMES = ("open_palm", "spread_back", "point", "victory", "fist", "thumbs_up")
SEED = 7


def render(hand, example: dict, draw, index: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(mask with arm (H,W) bool, hand-only mask, the arm's description) of one example."""
    p = {k: torch.tensor(np.asarray(v)[None], dtype=torch.float64) for k, v in example["params"].items()}
    with torch.no_grad():
        out = hand(p["global_orient"], p["transl"], p["hand_pose"], betas=p["betas"])
    vertices, joints = out.vertices.numpy(), out.joints.numpy()
    arm_draw = replace(draw, **{f.name: getattr(draw, f.name)[index:index + 1] for f in fields(draw)
                                if isinstance(getattr(draw, f.name), np.ndarray)})
    arms = build_forearms(vertices, joints, arm_draw)
    K = np.asarray(example["K"], dtype=np.float64)[None]
    faces = hand.faces.numpy()
    both = np.concatenate([vertices, arms.vertices.astype(np.float64)], axis=1)
    all_faces = np.concatenate([faces, FOREARM_FACES + vertices.shape[1]])
    mask = rasterize_silhouette(both, all_faces, K, image_size=(224, 224))[0]
    hand_only = rasterize_silhouette(vertices, faces, K, image_size=(224, 224))[0]
    # rounded to 1e-6 deg and 1 micrometer: the last bits of the float64 arithmetic differ between numpy builds
    arm = {"flexion_deg": round(float(np.degrees(arms.flexion[0])), 6),
           "deviation_deg": round(float(np.degrees(arms.deviation[0])), 6), "length_m": round(float(arms.length[0]), 6)}
    return mask, hand_only, arm


def png_bytes(mask: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG")
    return buffer.getvalue()


def build() -> dict[Path, bytes]:
    truth = json.loads((EXAMPLES / "ground_truth.json").read_text())
    hand = load_hand_model("open").double()
    draw = draw_forearms(np.random.default_rng(SEED), len(NAMES),
                         ForearmSettings(probability=1.0, cut_probability=0.0, away_from_camera=True))
    files, entries = {}, {}
    for i, name in enumerate(NAMES):
        example = truth["examples"][f"{name}.png"]
        mask, hand_only, arm = render(hand, example, draw, i)
        files[OUT / f"{name}.png"] = png_bytes(mask)
        K = torch.tensor(np.asarray(example["K"])[None])
        joints_2d = project(torch.tensor(np.asarray(example["joints"])[None]), K)[0].numpy()
        entries[f"{name}.png"] = {"description": f"{example['description']}, with a forearm",
                                  "joints": example["joints"], "joints_2d": joints_2d.round(3).tolist(),
                                  "params": example["params"], "K": example["K"], "forearm": arm,
                                  "mask_pixels": int(mask.sum()), "hand_pixels": int(hand_only.sum()),
                                  "hand_only": f"../{name}.png"}
    about = {**truth["about"], "made_by": "tools/make_forearm_examples.py", "forearm_seed": SEED}
    files[OUT / "ground_truth.json"] = json_text({"about": about, "examples": entries}).encode()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        stale = [str(p) for p, data in files.items() if not p.is_file() or p.read_bytes() != data]
        print("up to date" if not stale else "differs: " + ", ".join(stale))
        return 1 if stale else 0
    write_files({p: (lambda d=data: d) for p, data in files.items()})
    print(f"wrote {len(files)} files into {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
