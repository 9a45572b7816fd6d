"""Build examples/: silhouettes of the open hand in varied poses and a few shadow-puppet shapes.

Every mask is rendered by this project (the open hand, the exact rasterizer), so the
examples carry no third-party data. Each example is a finger pose (anatomical
flexion / abduction / twist per joint, see mask2hand.hand.prior), a view (a rotation
of the hand) and a hand size in pixels; the hand is centered in a 224x224 image seen
by the default camera of mask2hand.inference.cameras (so `mask2hand predict examples`
needs no --K). Writes, all into examples/:

    <name>.png            the mask, hand white (255) on black (0)
    K.json                the 3x3 intrinsics shared by all examples
    ground_truth.json     per example: joints (21,3) m, joints_2d (21,2) px, params, K
    README.md             what each example shows

Run: python tools/make_examples.py [--out examples] [--check]
(--check renders again and compares with the files on disk).
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from mask2hand.image.camera import Camera
from mask2hand.inference.cameras import default_focal
from mask2hand.export.files import json_text, write_files
from mask2hand.hand import JOINT_NAMES, load_hand_model
from mask2hand.hand.prior import ARCHETYPES, FINGERS, JOINT_LIMITS, local_to_pose
from mask2hand.render import project, rasterize_silhouette

IMAGE_SIZE = (224, 224)
OUT = Path(__file__).resolve().parents[1] / "examples"

# Views as rotations of the hand's rest frame (fingers -x, back of the hand +y, thumb +z)
# into the camera frame (x right, y down, z forward).
# palm: the palm faces the camera, fingers up, thumb on the image's right.
PALM = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
# back: the back of the hand faces the camera, fingers up, thumb on the image's left.
BACK = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
# side: seen from the little-finger side, fingers to the image's right, back of the hand up.
SIDE = np.diag([-1.0, -1.0, 1.0])
# edge: fingers to the image's right, thumb side up, back of the hand to the camera.
EDGE = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]])


def finger_local(index=(0, 0, 0), middle=(0, 0, 0), ring=(0, 0, 0), little=(0, 0, 0),
                 thumb=((0, 0, 0), (0, 0, 0), (0, 0, 0)), spread=(0.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """Anatomical finger pose (15,3): (MCP, PIP, DIP) flexion per long finger, MCP abduction
    `spread` (index, middle, ring, little), the thumb's (flex, abd, twist) per joint."""
    local = np.zeros((15, 3))
    long = {"index": (index, spread[0]), "middle": (middle, spread[1]), "ring": (ring, spread[2]),
            "little": (little, spread[3])}
    for fi, name in enumerate(FINGERS):
        if name == "thumb":
            local[12:15] = np.asarray(thumb, dtype=np.float64)
        else:
            flex, abd = long[name]
            local[3 * fi:3 * fi + 3, 0] = flex
            local[3 * fi, 1] = abd
    return np.clip(local, JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1])


@dataclass(frozen=True)
class Example:
    name: str
    description: str
    local: np.ndarray  # (15,3) anatomical finger pose
    view: np.ndarray  # (3,3) base view
    turn_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)  # extra rotation (x, y, z) in the camera frame
    size_px: float = 150.0  # larger side of the hand's projected box
    betas: tuple[float, ...] = ()


STRAIGHT = (0.0, 0.0, 0.0)
CURL = (1.45, 1.6, 0.9)
THUMB_TUCKED = ((0.55, 0.15, 0.45), (0.5, 0.0, 0.1), (0.7, 0.0, 0.0))

EXAMPLES = (
    Example("open_palm", "flat hand, palm to the camera, fingers up", ARCHETYPES["flat"], PALM),
    Example("spread_back", "fingers spread, back of the hand to the camera, tilted", ARCHETYPES["spread"], BACK,
            (10.0, -20.0, 15.0), betas=(0.8, -0.5)),
    Example("fist", "closed fist, seen from the front-side", ARCHETYPES["fist"], PALM, (0.0, 35.0, -10.0)),
    Example("point", "index pointing, the others curled", ARCHETYPES["point"], BACK, (0.0, 25.0, -30.0)),
    Example("victory", "index and middle up in a V", ARCHETYPES["victory"], PALM, (0.0, -15.0, 8.0),
            betas=(-0.7, 0.4)),
    Example("ok", "thumb and index in a ring, the others up", ARCHETYPES["ok"], PALM, (0.0, 20.0, -5.0)),
    Example("thumbs_up", "fist with the thumb up", ARCHETYPES["thumbs_up"], EDGE, (0.0, 30.0, 0.0)),
    Example("relaxed_tilted", "relaxed hand, rotated away from the camera", ARCHETYPES["relaxed"], PALM,
            (35.0, 40.0, 60.0), size_px=130.0),
    Example("puppet_duck", "shadow puppet: a duck (fingers together as the upper bill, thumb as the lower)",
            finger_local(index=(0.35, 0.25, 0.1), middle=(0.35, 0.2, 0.1), ring=(0.4, 0.2, 0.1),
                         little=(0.45, 0.2, 0.1), thumb=((0.3, 0.5, 0.5), (0.2, 0.0, 0.1), (0.1, 0.0, 0.0))),
            SIDE),
    Example("puppet_dog", "shadow puppet: a dog's head (fingers together as the snout, little finger dropped "
            "as the jaw, thumb up as the ear)",
            finger_local(index=(0.1, 0.1, 0.05), middle=(0.1, 0.1, 0.05), ring=(0.15, 0.1, 0.05),
                         little=(1.1, 0.4, 0.2), thumb=((-0.3, -0.4, 0.0), (-0.1, 0.0, 0.0), (-0.1, 0.0, 0.0)),
                         spread=(-0.1, 0.0, 0.1, -0.3)),
            EDGE, (-40.0, 0.0, 0.0)),
    Example("puppet_rabbit", "shadow puppet: a rabbit (index and middle up as ears, thumb holding the "
            "curled ring and little fingers)",
            finger_local(index=(0.0, 0.0, 0.0), middle=(0.0, 0.0, 0.0), ring=CURL, little=CURL,
                         thumb=((0.45, 0.45, 0.45), (0.3, 0.0, 0.1), (0.3, 0.0, 0.0)), spread=(0.3, -0.22, 0, 0)),
            EDGE, (0.0, 0.0, -55.0)),
    Example("puppet_swan", "shadow puppet: a swan's head (all fingers bent down as the bill, thumb along them)",
            finger_local(index=(1.2, 0.2, 0.1), middle=(1.2, 0.2, 0.1), ring=(1.25, 0.2, 0.1),
                         little=(1.3, 0.2, 0.1), thumb=((0.45, 0.5, 0.5), (0.3, 0.0, 0.1), (0.2, 0.0, 0.0))),
            SIDE, (0.0, 0.0, -30.0)),
)


def render_example(hand, example: Example) -> dict:
    """Pose, place and render one example -> dict with mask (H,W) bool and its ground truth."""
    pose = torch.as_tensor(local_to_pose(example.local)[None], dtype=torch.float64)
    betas = torch.zeros(1, 10, dtype=torch.float64)
    betas[0, :len(example.betas)] = torch.as_tensor(example.betas, dtype=torch.float64)
    rotation = Rotation.from_euler("xyz", example.turn_deg, degrees=True).as_matrix() @ example.view
    global_orient = torch.as_tensor(Rotation.from_matrix(rotation).as_rotvec()[None])
    zeros = torch.zeros(1, 3, dtype=torch.float64)
    out = hand(global_orient, zeros, hand_pose=pose, betas=betas)
    vertices = out.vertices[0].numpy()
    focal = default_focal(IMAGE_SIZE)
    K = Camera.centered(IMAGE_SIZE, focal).K
    # put the 3-D box center on the optical axis at the depth where its larger x/y side spans size_px
    lo, hi = vertices.min(0), vertices.max(0)
    center = (lo + hi) / 2
    depth = focal * max(hi[0] - lo[0], hi[1] - lo[1]) / example.size_px
    transl = np.array([0.0, 0.0, depth]) - center
    out = hand(global_orient, torch.as_tensor(transl[None]), hand_pose=pose, betas=betas)
    K_t = torch.as_tensor(K[None])
    uv = project(out.vertices, K_t)[0].numpy()
    if uv.min() < 2 or uv.max() > min(IMAGE_SIZE) - 2:
        raise SystemExit(f"example {example.name}: the hand leaves the image; lower its size_px")
    mask = rasterize_silhouette(out.vertices, hand.faces, K_t, image_size=IMAGE_SIZE)[0]
    return {"mask": mask, "K": K, "joints": out.joints[0].numpy(), "joints_2d": project(out.joints, K_t)[0].numpy(),
            "params": {"global_orient": global_orient[0].numpy(), "transl": transl, "hand_pose": pose[0].numpy(),
                       "betas": betas[0].numpy()}}


def png_bytes(mask: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def build(out: Path) -> dict[Path, bytes]:
    """All example files as {path: bytes} (nothing written)."""
    hand = load_hand_model("open").double()
    files: dict[Path, bytes] = {}
    truth = {}
    K = None
    for example in EXAMPLES:
        result = render_example(hand, example)
        K = result["K"]
        files[out / f"{example.name}.png"] = png_bytes(result["mask"])
        truth[f"{example.name}.png"] = {"description": example.description, "joints": result["joints"],
                                        "joints_2d": result["joints_2d"], "params": result["params"],
                                        "K": result["K"], "mask_pixels": int(result["mask"].sum())}
    header = {"hand": hand.identity, "units": "joints in meters (camera space), joints_2d in pixels",
              "joint_names": list(JOINT_NAMES),
              "image_size": list(IMAGE_SIZE), "made_by": "tools/make_examples.py"}
    files[out / "K.json"] = json_text(K).encode()
    files[out / "ground_truth.json"] = json_text({"about": header, "examples": truth}).encode()
    lines = ["# Example masks", "",
             "Silhouettes rendered by this project from its open hand model (`tools/make_examples.py`),",
             f"{IMAGE_SIZE[1]}x{IMAGE_SIZE[0]} PNG, hand white on black, seen by mask2hand's default camera",
             "(focal length 2.2 x 224 px, principal point at the center; the same matrix is in `K.json`).",
             "`ground_truth.json` holds each hand's joints (meters), their projections (pixels) and parameters.",
             "", "Try them:", "", "    mask2hand predict examples --out out/examples", "",
             "| file | what it shows |", "| --- | --- |"]
    lines += [f"| `{e.name}.png` | {e.description} |" for e in EXAMPLES]
    files[out / "README.md"] = ("\n".join(lines) + "\n").encode()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = parser.parse_args(argv)
    files = build(args.out)
    if args.check:
        stale = [p for p, data in files.items() if not p.is_file() or p.read_bytes() != data]
        for p in stale:
            print(f"differs: {p}")
        return 1 if stale else 0
    write_files({p: (lambda d=data: d) for p, data in files.items()})
    for p in files:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
