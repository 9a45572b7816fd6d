"""What `Mask2Hand.predict` returns for one mask: `Prediction`, with its JSON form, figure and files."""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mask2hand.hand.params import HandParams
from mask2hand.image.camera import Camera, project_points
from mask2hand.inference.mirror import mirror_mask
from mask2hand.utils.optional import available, missing_message, require
from mask2hand.version import JSON_SCHEMA_VERSION


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixel coordinates (B,N,2) float32 of camera-space points (B,N,3) through K (B,3,3),
    computed in float64 with the renderer's projection."""
    return project_points(np.asarray(points, dtype=np.float64), np.asarray(K, dtype=np.float64)).astype(np.float32)


@dataclass(frozen=True)
class Prediction:
    """One predicted hand, in the input image's camera.

    vertices: (V,3) meters, camera space, the final (refined, if the network refines) mesh.
    joints: (21,3) meters, camera space, FreiHAND order.
    joints_2d: (21,2) their projections in the input image's pixels.
    params: HandParams that rebuild the answer, in the flat_hand_mean=True convention:
        `load_hand_model(hand["name"])(global_orient, transl, pose=pose, betas=betas)` (fitted to
        the final mesh, mask2hand.inference.rebuild; see below for a left hand). Where the runtime
        lacks the hand's arrays (an ONNX export of a MANO network) they are the network's own, in
        the convention `params.flat_hand_mean` (and `hand["flat_hand_mean"]`) names. Whatever
        takes them with a hand layer converts them (`HandModel.in_convention`).
        params_residual_mm: {"joints", "vertices"} mean distance of the rebuilt hand from the
        answer (None where not rebuilt); vertex_offsets: (V,3) meters, the answer's mesh minus
        the rebuilt one, in the frame of params (None where not rebuilt).
    K: (3,3) the input image's intrinsics; image_size: (H, W).
    mask: (H,W) bool, the cleaned input mask; rendered_mask: (H,W) bool, the exact
        silhouette of the predicted hand at the input's resolution; iou: their IoU (for a network
        with a locator, against the mask within hand_window: an arm beyond the hand is not counted).
    hand_window: (3,) (u0, v0, side) the square the network's locator found the hand in, pixels of
        the input image, or None for a network without a locator (mask2hand.nn.locator).
    silhouette: (S,S) the network's silhouette of its preliminary hand in the model input's
        frame, or None where the runner gives none.
    faces: (F,3) int64. hand: the hand model's identity (name, asset hash, flat_hand_mean).
    model: the weights' identity. camera: where K came from ("K", "focal", "default").
    warnings: what was changed in the input; notes: what the user should know about the
        answer (e.g. the assumed focal length). source: the input file name or "<array i>".
    side: "right" or "left". For a left hand, vertices, joints, joints_2d, faces (winding
        reversed), mask and rendered_mask are in the input's own frame, but params (and
        silhouette) describe the mirrored right hand the network saw, in the mirrored camera
        (camera x negated, `Camera.mirrored`; see mask2hand.inference.mirror).
    iou_before_fit, fit_steps: with test-time fitting, the network's IoU and the updates made.
    hypotheses: with hypotheses, a list of mask2hand.fit.Hypothesis, best first (vertices and
        joints in the input's frame, params in the network's).
    """

    vertices: np.ndarray
    joints: np.ndarray
    joints_2d: np.ndarray
    params: HandParams
    K: np.ndarray
    image_size: tuple[int, int]
    mask: np.ndarray
    rendered_mask: np.ndarray
    iou: float
    silhouette: np.ndarray | None
    faces: np.ndarray
    hand: dict[str, Any]
    model: dict[str, Any]
    camera: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = "<array>"
    side: str = "right"
    iou_before_fit: float | None = None
    fit_steps: int | None = None
    hypotheses: list | None = None
    params_residual_mm: dict[str, float] | None = None
    vertex_offsets: np.ndarray | None = None
    hand_window: np.ndarray | None = None

    def network_frame(self) -> tuple[HandParams, np.ndarray, np.ndarray]:
        """(params, mask (H,W) bool, K (3,3)) in the frame the params live in: the input's own for a
        right hand, the mirrored picture for a left one (what mask2hand.fit.hypotheses takes)."""
        if self.side == "right":
            return self.params, self.mask, self.K
        return self.params, mirror_mask(self.mask), Camera(self.K, self.image_size).mirrored().K

    def to_mano(self, mano_path: str | os.PathLike | None, fingertips: str = "freihand"):
        """MANO parameters of this hand in smplx's convention (`smplx.MANO(is_rhand=True,
        use_pca=False, flat_hand_mean=True)`), fitted to the answer's joints and mesh with the MANO
        model read from `mano_path` (MANO_RIGHT.pkl, its folder, or None for MANO_RIGHT_PATH).

        Returns a mask2hand.export.mano.ManoParams (global_orient, hand_pose, betas, transl, the
        residuals in mm); `save_mano_json` of that module writes it. For a left hand they are MANO's
        right hand in the mirrored camera (camera x negated), like `params`. fingertips: which MANO
        vertices stand for the fingertips (mask2hand.hand.mano.MANO_FINGERTIP_SETS). About 1-2 s.
        """
        from mask2hand.export.mano import fit_mano, load_mano_layer
        from mask2hand.inference.mirror import mirror_points

        vertices, joints = self.vertices, self.joints
        if self.side == "left":  # into the mirrored camera, where the hand is a right one
            vertices, joints = mirror_points(vertices), mirror_points(joints)
        return fit_mano(load_mano_layer(mano_path, fingertips), vertices, self.faces, joints, side=self.side)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the meshes and images, JSON-ready (via mask2hand.export.files.to_jsonable):
        joints in meters, 2-D joints in pixels."""
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "source": self.source,
            "side": self.side,
            "units": {"joints": "meters, camera space (x right, y down, z forward)",
                      "joints_2d": "pixels of the input image (u right, v down, pixel centers at +0.5)"},
            "joint_order": "FreiHAND: 0 wrist; 1-4 thumb; 5-8 index; 9-12 middle; 13-16 ring; 17-20 little",
            "joints": self.joints,
            "joints_2d": self.joints_2d,
            "params": asdict(self.params),
            "params_residual_mm": self.params_residual_mm,
            "K": self.K,
            "camera": self.camera,
            "image_size": list(self.image_size),
            "iou": self.iou,
            "hand_window": self.hand_window,
            "hand": self.hand,
            "model": self.model,
            "warnings": self.warnings,
            "notes": self.notes,
            **({} if self.fit_steps is None else {"iou_before_fit": self.iou_before_fit, "fit_steps": self.fit_steps}),
            **({} if self.hypotheses is None else {"hypotheses": [h.to_dict() for h in self.hypotheses]}),
        }

    def to_trimesh(self):
        """The answer's mesh as a `trimesh.Trimesh` (meters, camera space; vertices kept as they are).
        Needs trimesh (pip install trimesh), which mask2hand itself does not use."""
        require("trimesh", "Prediction.to_trimesh")
        import trimesh

        return trimesh.Trimesh(vertices=np.asarray(self.vertices, dtype=np.float64), faces=self.faces, process=False)

    def figure(self, title: str | None = None):
        """The paper's Fig. 1 / B1 row for this prediction (a matplotlib Figure): input mask,
        predicted silhouette with the input's contour, 2-D skeleton, shaded mesh, 3-D skeleton.
        Needs matplotlib (pip install 'mask2hand[figures]'); Mask2HandError without it."""
        require("matplotlib", "drawing the figure")
        from mask2hand.export.figures import prediction_figure

        vertices_2d = project(self.vertices[None], self.K[None])[0]
        if title is None:
            title = f"{Path(self.source).name}   IoU {self.iou:.3f}"
        return prediction_figure(self.mask, self.rendered_mask, self.joints_2d, self.vertices, vertices_2d,
                                 self.faces, self.joints, iou=self.iou, title=title)

    def save(self, directory: str | os.PathLike, stem: str | None = None,
             figure: bool | None = None) -> dict[str, Path]:
        """Write <stem>.obj, <stem>.ply, <stem>.json, <stem>_hyp<k>.obj per hypothesis and
        <stem>.png (the figure) into `directory`, all or nothing.

        figure: None draws the figure where matplotlib is installed and otherwise leaves it out,
        saying so once per process (a UserWarning); True requires it (Mask2HandError without
        matplotlib); False leaves it out. stem defaults to the input file's stem ("prediction" for
        arrays). Returns {"obj", "ply", "json", "hyp<k>"..., "png"?: path}.
        """
        if figure is None:
            figure = available("matplotlib")
            if not figure:
                _say_once(f"{missing_message('matplotlib', 'the figure (.png)')}; "
                          "Prediction.save writes the meshes and JSON only")
        from mask2hand.export.files import figure_png_bytes, json_text, mesh_bytes, write_files

        directory = Path(directory)
        if stem is None:
            stem = Path(self.source).stem if not self.source.startswith("<") else "prediction"
        paths = {"obj": directory / f"{stem}.obj", "ply": directory / f"{stem}.ply",
                 "json": directory / f"{stem}.json"}
        writers = {paths["obj"]: lambda: mesh_bytes(self.vertices, self.faces, "obj"),
                   paths["ply"]: lambda: mesh_bytes(self.vertices, self.faces, "ply"),
                   paths["json"]: lambda: json_text(self.to_dict()).encode()}
        for rank, hypothesis in enumerate(self.hypotheses or [], start=1):
            paths[f"hyp{rank}"] = directory / f"{stem}_hyp{rank}.obj"
            writers[paths[f"hyp{rank}"]] = lambda h=hypothesis: mesh_bytes(h.vertices, self.faces, "obj")
        if figure:
            paths["png"] = directory / f"{stem}.png"
            writers[paths["png"]] = lambda: figure_png_bytes(self.figure())
        write_files(writers)
        return paths


_SAID: set[str] = set()
"""The messages _say_once has already issued in this process."""


def _say_once(message: str) -> None:
    """Issue `message` as a UserWarning the first time it comes up in this process."""
    if message not in _SAID:
        _SAID.add(message)
        warnings.warn(message, UserWarning, stacklevel=3)
