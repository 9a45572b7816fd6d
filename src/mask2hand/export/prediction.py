"""A Prediction's files: its JSON form, its meshes (OBJ, PLY, GLB), its figure, written together.

`write_prediction(prediction, directory)` writes <stem>.obj, .ply, .glb, .json, <stem>_hyp<k>.obj per
hypothesis and <stem>.png all or nothing; `prediction_files` makes the same files' bytes without writing
them (mask2hand serve's downloads), `prediction_json(prediction)` is the JSON's content. Meshes
and joints are written in the frame `frame` names (mask2hand.export.files.FRAMES: "opencv", the
camera's own, or "opengl", y up and z toward the viewer); the JSON records which.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from mask2hand.export.files import (FRAMES, check_frame, figure_png_bytes, glb_bytes, json_text, mesh_bytes,
                                    points_in_frame, write_files)
from mask2hand.hand.data import JOINT_NAMES
from mask2hand.hand.params import HandParams
from mask2hand.inference.result import Prediction
from mask2hand.utils.optional import available, missing_message
from mask2hand.version import JSON_SCHEMA_VERSION

JOINT_ORDER = "FreiHAND: 0 wrist; 1-4 thumb; 5-8 index; 9-12 middle; 13-16 ring; 17-20 little"
"""The joint order in words, beside `joint_names` in every JSON with joints."""


def params_json(params: HandParams) -> dict[str, Any]:
    """Hand parameters as the files write them: the HandParams fields with the finger pose
    (`HandParams.pose`) named `hand_pose`, smplx's name and the hand layer's keyword."""
    values = asdict(params)
    return {("hand_pose" if name == "pose" else name): value for name, value in values.items()}


def prediction_json(prediction: Prediction, frame: str = "opencv") -> dict[str, Any]:
    """Everything but the meshes and images of `prediction`, JSON-ready through
    mask2hand.export.files.json_text: joints (21,3) meters in `frame`, 2-D joints in pixels, the
    hand parameters (in the input camera's OpenCV frame whatever `frame` is: they rebuild the hand
    with the hand layer, which works in that frame)."""
    check_frame(frame)
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "source": prediction.source,
        "side": prediction.side,
        "frame": frame,
        "units": {"joints": f"meters, camera space, {frame} frame ({FRAMES[frame]})",
                  "joints_2d": "pixels of the input image (u right, v down, pixel centers at +0.5)",
                  "params": f"meters and radians, camera space, opencv frame ({FRAMES['opencv']})"},
        "joint_order": JOINT_ORDER,
        "joint_names": list(JOINT_NAMES),
        "joints": points_in_frame(prediction.joints, frame),
        "joints_2d": prediction.joints_2d,
        "params": params_json(prediction.params),
        "params_residual_mm": prediction.params_residual_mm,
        "K": prediction.K,
        "camera": prediction.camera,
        "image_size": list(prediction.image_size),
        "iou": prediction.iou,
        "hand_window": prediction.hand_window,
        "hand": prediction.hand,
        "model": prediction.model,
        "warnings": prediction.warnings,
        "notes": prediction.notes,
        **({} if prediction.fit_steps is None else {"iou_before_fit": prediction.iou_before_fit,
                                                     "fit_steps": prediction.fit_steps}),
        **({} if prediction.joint_confidence is None else {"joint_confidence": prediction.joint_confidence}),
        **({} if prediction.side_margin is None else {"side_margin": prediction.side_margin,
                                                      "side_ambiguous": prediction.side_ambiguous}),
        **({} if prediction.hypotheses is None else {"hypotheses": [
            {"start": h.start, "iou": h.iou, "prior_penalty": h.prior_penalty, "score": h.score, "steps": h.steps,
             "joints": points_in_frame(h.joints, frame), "params": params_json(h.params)}
            for h in prediction.hypotheses]}),
    }


def prediction_stem(prediction: Prediction) -> str:
    """The default file stem of a prediction's files: its input file's stem ("prediction" for arrays)."""
    return Path(prediction.source).stem if not prediction.source.startswith("<") else "prediction"


def prediction_files(prediction: Prediction, stem: str | None = None,
                     frame: str = "opencv") -> dict[str, tuple[str, Callable[[], bytes]]]:
    """The mesh and JSON files of `prediction`, unwritten: kind ("obj", "ply", "glb", "json",
    "hyp<k>") -> (file name, a function making its bytes). The functions hold the answer's arrays,
    not its masks. frame and stem as in write_prediction; what mask2hand serve offers for download."""
    check_frame(frame)
    stem = prediction_stem(prediction) if stem is None else stem
    vertices, faces = points_in_frame(prediction.vertices, frame), prediction.faces
    joints = points_in_frame(prediction.joints, frame)
    extras = {"frame": frame, "axes": FRAMES[frame], "units": "meters", "source": prediction.source,
              "side": prediction.side}
    record = prediction_json(prediction, frame)
    files: dict[str, tuple[str, Callable[[], bytes]]] = {
        "obj": (f"{stem}.obj", lambda: mesh_bytes(vertices, faces, "obj")),
        "ply": (f"{stem}.ply", lambda: mesh_bytes(vertices, faces, "ply")),
        "glb": (f"{stem}.glb", lambda: glb_bytes(vertices, faces, joints, JOINT_NAMES, extras=extras)),
        "json": (f"{stem}.json", lambda: json_text(record).encode()),
    }
    for rank, hypothesis in enumerate(prediction.hypotheses or [], start=1):
        files[f"hyp{rank}"] = (f"{stem}_hyp{rank}.obj", lambda v=points_in_frame(hypothesis.vertices, frame):
                               mesh_bytes(v, faces, "obj"))
    return files


def write_prediction(prediction: Prediction, directory: str | os.PathLike, stem: str | None = None,
                     figure: bool | None = None, frame: str = "opencv") -> dict[str, Path]:
    """Write <stem>.obj, <stem>.ply, <stem>.glb, <stem>.json, <stem>_hyp<k>.obj per hypothesis
    (prediction_files) and <stem>.png (the figure, prediction_figure) into `directory`, all or nothing.

    frame: "opencv" (the camera's, the default) or "opengl" (y up, z toward the viewer) for the
    meshes and joints (mask2hand.export.files.FRAMES); the JSON records it. figure: None draws the
    figure where matplotlib is installed and otherwise leaves it out, saying so once per process (a
    UserWarning); True requires it (Mask2HandError without matplotlib); False leaves it out. stem
    defaults to prediction_stem. Returns {"obj", "ply", "glb", "json", "hyp<k>"..., "png"?: path}.
    """
    check_frame(frame)
    if figure is None:
        figure = available("matplotlib")
        if not figure:
            _say_once(f"{missing_message('matplotlib', 'the figure (.png)')}; "
                      "write_prediction writes the meshes and JSON only")
    stem = prediction_stem(prediction) if stem is None else stem
    files = prediction_files(prediction, stem, frame)
    if figure:
        from mask2hand.export.figures import prediction_figure

        files["png"] = (f"{stem}.png", lambda: figure_png_bytes(prediction_figure(prediction)))
    directory = Path(directory)
    write_files({directory / name: make for name, make in files.values()})
    return {kind: directory / name for kind, (name, _) in files.items()}


_SAID: set[str] = set()
"""The messages _say_once has already issued in this process."""


def _say_once(message: str) -> None:
    """Issue `message` as a UserWarning the first time it comes up in this process."""
    if message not in _SAID:
        _SAID.add(message)
        warnings.warn(message, UserWarning, stacklevel=3)
