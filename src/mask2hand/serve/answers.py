"""The answer to one `POST /api/predict`: its JSON and its downloadable files.

The JSON's "prediction" block is mask2hand.export.prediction.prediction_json made JSON-ready by
the writer `mask2hand predict` uses (mask2hand.export.files.to_jsonable): parsed, it equals the
<stem>.json that `mask2hand predict` writes for the same file. Beside it: the mesh for the
page's viewer, an overlay image (the input mask, the predicted silhouette's contour and the
2-D skeleton: mask2hand.export.animation.skeleton_panel, the sequence GIF's frame), the
skeleton's bones and colours (mask2hand.export.figures) and the download links. The files
(<stem>.obj, .ply, .glb, .json, <stem>_hyp<k>.obj: mask2hand.export.prediction.prediction_files) are
made on request by the library's writers, so they are byte for byte what `mask2hand predict` writes.
"""

from __future__ import annotations

import base64
import io
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from threading import Lock
from typing import Any, Callable

import numpy as np

from mask2hand.export.animation import skeleton_panel
from mask2hand.export.figures import FREIHAND_BONES, joint_colors
from mask2hand.export.files import to_jsonable
from mask2hand.export.prediction import prediction_files, prediction_json
from mask2hand.inference.result import Prediction

OVERLAY_SIDE = 512
"""Longer side in pixels of the overlay image (the input is shown at most this large)."""

VIEWER_DECIMALS = 6
"""The viewer's vertices are rounded to a micrometre: a third of the JSON, no visible change
(the downloaded files keep every digit)."""

DOWNLOADS_PATH = "/api/answers"
"""URL path under which an answer's files are served: DOWNLOADS_PATH/<id>/<file name>."""

MEDIA_TYPES = {".obj": "text/plain; charset=utf-8", ".ply": "application/octet-stream",
               ".glb": "model/gltf-binary", ".json": "application/json"}


def download_stem(source: str) -> str:
    """The file stem of an upload's downloads: its stem in letters, digits, '-', '_' and '.'
    ("prediction" if nothing is left), as `write_prediction` names an input's files."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source).stem).strip("._")
    return stem or "prediction"


def overlay_png(prediction: Prediction) -> bytes:
    """PNG bytes of the overlay: the input mask in grey, the predicted contour, the 2-D skeleton,
    at most OVERLAY_SIDE pixels a side."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(skeleton_panel(prediction, max_side=OVERLAY_SIDE)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Answer:
    """One request's answer.

    id: the key of its downloads; stem: their file stem; prediction: the per-input JSON of
    `mask2hand predict` (JSON-ready dict); vertices: (V,3) meters, camera space (the
    answer's mesh); faces: (F,3) int64 (winding reversed for a left hand, as in the files);
    hypotheses: [(V,3)] the hypotheses' meshes, best first (empty without hypotheses);
    overlay: PNG bytes (see overlay_png); seconds: the time the model took for it; downloads:
    file name -> a function making its bytes (prediction_files, in the camera's OpenCV frame).
    """

    id: str
    stem: str
    prediction: dict[str, Any]
    vertices: np.ndarray
    faces: np.ndarray
    hypotheses: list[np.ndarray]
    overlay: bytes
    seconds: float
    downloads: dict[str, Callable[[], bytes]]

    @classmethod
    def from_prediction(cls, answer_id: str, prediction: Prediction, seconds: float) -> "Answer":
        stem = download_stem(prediction.source)
        return cls(id=answer_id, stem=stem, prediction=to_jsonable(prediction_json(prediction)),
                   vertices=np.asarray(prediction.vertices), faces=np.asarray(prediction.faces),
                   hypotheses=[np.asarray(h.vertices) for h in prediction.hypotheses or []],
                   overlay=overlay_png(prediction), seconds=seconds,
                   downloads=dict(prediction_files(prediction, stem).values()))

    def to_json(self) -> dict[str, Any]:
        """The HTTP answer: id, prediction (the per-input JSON), mesh {vertices (V,3) m, faces (F,3),
        hypotheses [(V,3)]}, skeleton {bones (20,2) joint pairs, joint_colors (21,)}, overlay (a PNG
        data URL), downloads {name: URL}, seconds."""
        return {
            "id": self.id,
            "prediction": self.prediction,
            "mesh": {"units": "meters, camera space (x right, y down, z forward)",
                     "vertices": to_jsonable(np.round(self.vertices, VIEWER_DECIMALS)), "faces": self.faces.tolist(),
                     "hypotheses": [to_jsonable(np.round(v, VIEWER_DECIMALS)) for v in self.hypotheses]},
            "skeleton": {"bones": [list(bone) for bone in FREIHAND_BONES], "joint_colors": joint_colors()},
            "overlay": "data:image/png;base64," + base64.b64encode(self.overlay).decode("ascii"),
            "downloads": {name: f"{DOWNLOADS_PATH}/{self.id}/{name}" for name in self.downloads},
            "seconds": round(self.seconds, 4),
        }


class AnswerStore:
    """The last `capacity` answers by id, for their downloads (thread-safe; the oldest goes first)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._answers: OrderedDict[str, Answer] = OrderedDict()
        self._lock = Lock()

    def add(self, answer: Answer) -> None:
        with self._lock:
            self._answers[answer.id] = answer
            while len(self._answers) > self.capacity:
                self._answers.popitem(last=False)

    def get(self, answer_id: str) -> Answer | None:
        with self._lock:
            return self._answers.get(answer_id)
