"""The Python API: a silhouette in, a 3D hand out.

    from mask2hand import Mask2Hand

    model = Mask2Hand.from_pretrained()              # shipped weights (or a path, or hand_model="mano")
    result = model.predict("examples/open_palm.png")  # file, (H,W) array, (B,H,W) batch or a list
    result.joints          # (21,3) camera space, meters
    result.joints_2d       # (21,2) pixels of the input image
    result.iou             # input mask vs. the exact silhouette of the predicted hand
    result.save("out")     # OBJ, PLY, JSON, PNG figure
    fig = result.figure()  # the paper's Fig. 1 row

The pipeline has three stages, kept apart so later features plug in without changing
the others: `prepare` (file/array -> clean mask at the model's input size + camera,
`PreparedInput`), the network runner (a batch of model inputs and intrinsics ->
`NetworkResult`, numpy; `TorchRunner` here, or `mask2hand.inference.onnx_runner.OnnxRunner`), and
`finish` (the network's answers -> `Prediction`s in each original image: 2-D joints,
exact silhouette, IoU). Test-time fitting and hypotheses act on the NetworkResult
between the last two stages (mask2hand.inference.fitting; temporal smoothing of sequences
too, see mask2hand.inference.sequence); left hands by mirroring in `prepare` and mirroring back in `finish`.

Left hands (side="left"): the network only knows right hands, so the mask is mirrored
about the image's vertical center line, u -> W - u (pixel column j -> W - 1 - j), and K
with it: K' = P K F with P = [[-1,0,W],[0,1,0],[0,0,1]] and F = diag(-1,1,1), i.e.
cx -> W - cx and the skew negated, fx, fy, cy unchanged. Then a camera point (x,y,z)
seen at u in the original image is seen at W - u = fx (-x)/z + (W - cx) in the mirrored
one: the mirrored picture is the original scene with camera x negated. So the right hand
predicted in the mirrored picture maps back by x -> -x (vertices, joints), exactly, and
its 2-D joints by u -> W - u; a reflection turns the mesh inside out, so the faces'
winding is reversed to keep normals pointing outward.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mask2hand.inference.cameras import Camera, resolve_camera
from mask2hand.errors import Mask2HandError
from mask2hand.utils.files import file_sha256
from mask2hand.hand.params import HandParams
from mask2hand.image.masks import DEFAULT_THRESHOLD, PreparedMask, load_mask, prepare_mask


@dataclass
class Prediction:
    """One predicted hand, in the input image's camera.

    vertices (V,3), joints (21,3): camera space, meters (FreiHAND joint order), the final
    (refined, if the network refines) answer. joints_2d (21,2): their projections in the
    input image's pixels. params: HandParams. K (3,3): the input image's intrinsics;
    image_size (H,W). mask (H,W) bool: the cleaned input mask; rendered_mask (H,W) bool:
    the exact silhouette of the predicted hand at the input's resolution; iou: their IoU.
    silhouette (S,S): the network's soft silhouette of its preliminary (unrefined) hand at
    its input resolution, in the padded, resampled frame of the model input (None if the
    runner gives none). faces (F,3). hand: the hand model's
    identity (name, asset hash). model: the weights' identity. camera: where K came from
    ("K", "focal", "default"). warnings: what was changed in the input; notes: what the
    user should know about the answer (e.g. the assumed focal length). source: the input
    file name or "<array i>". side: "right" or "left". For a left hand, vertices, joints,
    joints_2d, faces (winding reversed), mask and rendered_mask are in the input's own
    frame, but params (and silhouette) describe the mirrored right hand the network saw:
    params in the mirrored camera (camera x negated, K' = mirror_K(K, W)), silhouette in
    the mirrored model input. With fitting (predict(fit=...)): iou_before_fit, the network's
    IoU, and fit_steps; with hypotheses: a list of mask2hand.fit.Hypothesis (params,
    vertices, joints, iou, score, ...), best first, in the same frames as the fields above.
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

    def to_dict(self) -> dict[str, Any]:
        """Everything but the meshes and images, JSON-ready (via mask2hand.export.files.to_jsonable):
        joints in meters, 2-D joints in pixels."""
        return {
            "source": self.source,
            "side": self.side,
            "units": {"joints": "meters, camera space (x right, y down, z forward)",
                      "joints_2d": "pixels of the input image (u right, v down, pixel centers at +0.5)"},
            "joint_order": "FreiHAND: 0 wrist; 1-4 thumb; 5-8 index; 9-12 middle; 13-16 ring; 17-20 little",
            "joints": self.joints,
            "joints_2d": self.joints_2d,
            "params": asdict(self.params),
            "K": self.K,
            "camera": self.camera,
            "image_size": list(self.image_size),
            "iou": self.iou,
            "hand": self.hand,
            "model": self.model,
            "warnings": self.warnings,
            "notes": self.notes,
            **({} if self.fit_steps is None else {"iou_before_fit": self.iou_before_fit, "fit_steps": self.fit_steps}),
            **({} if self.hypotheses is None else {"hypotheses": [h.to_dict() for h in self.hypotheses]}),
        }

    def figure(self, title: str | None = None):
        """The paper's Fig. 1 / B1 row for this prediction (a matplotlib Figure): input mask,
        predicted silhouette with the input's contour, 2-D skeleton, shaded mesh, 3-D skeleton."""
        from mask2hand.export.figures import prediction_figure

        vertices_2d = _project(self.vertices, self.K)
        if title is None:
            title = f"{Path(self.source).name}   IoU {self.iou:.3f}"
        return prediction_figure(self.mask, self.rendered_mask, self.joints_2d, self.vertices, vertices_2d,
                                 self.faces, self.joints, iou=self.iou, title=title)

    def save(self, directory: str | os.PathLike, stem: str | None = None, figure: bool = True) -> dict[str, Path]:
        """Write <stem>.obj, <stem>.ply, <stem>.json and (figure=True) <stem>.png into `directory`.

        stem defaults to the input file's stem ("prediction" for arrays). All files are
        written all-or-nothing. Returns {"obj", "ply", "json", "png"?: path}.
        """
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

            def png() -> bytes:
                fig = self.figure()
                return figure_png_bytes(fig)

            writers[paths["png"]] = png
        write_files(writers)
        return paths


@dataclass
class PreparedInput:
    """A mask ready for the network with its camera: mask (PreparedMask), camera (Camera),
    K_model (3,3) the intrinsics of the model input."""

    mask: PreparedMask
    camera: Camera
    side: str = "right"

    @property
    def K_model(self) -> np.ndarray:
        """Intrinsics of the model input (of the mirrored picture for a left hand)."""
        K = self.camera.K if self.side == "right" else mirror_K(self.camera.K, self.mask.image_size[1])
        return self.mask.transform.K_to_model(K)

    @property
    def original_mask(self) -> np.ndarray:
        """The cleaned mask (H,W) bool in the input's own frame (`mask.mask` is mirrored for a left hand)."""
        return self.mask.mask if self.side == "right" else np.ascontiguousarray(self.mask.mask[:, ::-1])

    @property
    def source(self) -> str:
        return self.mask.source


@dataclass
class NetworkResult:
    """The network's answer for a batch, numpy float32 on the CPU.

    vertices (B,V,3), joints (B,21,3) meters (final stage), global_orient (B,3), transl (B,3),
    pose (B,45) as passed to HandModel.forward(pose=...), pose_pcs (B,k) or None, betas (B,10),
    silhouette (B,S,S) or None.
    """

    vertices: np.ndarray
    joints: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    pose_pcs: np.ndarray | None = None
    silhouette: np.ndarray | None = None

    def params(self, b: int) -> HandParams:
        return HandParams(global_orient=self.global_orient[b], transl=self.transl[b], pose=self.pose[b],
                          betas=self.betas[b], pose_pcs=None if self.pose_pcs is None else self.pose_pcs[b])


class TorchRunner:
    """Runs a Mask2HandNet: (masks (B,S,S), K (B,3,3)) numpy -> NetworkResult."""

    def __init__(self, network, device):
        import torch

        self.network = network.eval()
        self.device = torch.device(device)
        self.hand = network.hand
        self.input_size = int(network.config.input_size)
        self.input_crop = network.config.input_crop

    @property
    def faces(self) -> np.ndarray:
        return self.hand.faces.detach().cpu().numpy()

    def __call__(self, masks: np.ndarray, K: np.ndarray) -> NetworkResult:
        import torch

        with torch.inference_mode():
            mask_t = torch.as_tensor(np.asarray(masks, dtype=np.float32), device=self.device)
            k_t = torch.as_tensor(np.asarray(K, dtype=np.float32), device=self.device)
            out = self.network(mask_t, k_t, exact_silhouette=True)
            refined = out.refined_vertices is not None
            vertices = out.refined_vertices if refined else out.vertices
            joints = out.refined_joints if out.refined_joints is not None else out.joints
            p = out.params
            pose_pcs = getattr(p, "pose_pcs", None)
            pose = layer_finger_pose(self.hand, p)
            betas = getattr(p, "betas", None)
            if betas is None:
                betas = torch.zeros(vertices.shape[0], 10, device=vertices.device)

            def np32(x):
                return None if x is None else x.detach().float().cpu().numpy()

            return NetworkResult(vertices=np32(vertices), joints=np32(joints), global_orient=np32(p.global_orient),
                                 transl=np32(p.transl), pose=np32(pose.reshape(pose.shape[0], -1)), betas=np32(betas),
                                 pose_pcs=np32(pose_pcs), silhouette=np32(getattr(out, "silhouette", None)))


def layer_finger_pose(hand, params: HandParams):
    """The finger pose (B,45) tensor of network params as `HandModel.forward(pose=...)` takes it:
    `params.pose`, or the axis-angle of `params.pose_pcs` (the model's mean, added by forward,
    taken out). hand: the network's HandModel."""
    if params.pose is not None:
        return params.pose.reshape(params.pose.shape[0], -1)
    return hand.finger_pose(pose_pcs=params.pose_pcs) - hand.pose_mean.to(params.pose_pcs.dtype)


def _project_batch(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixel coordinates (B,N,2) float32 of camera-space points (B,N,3) through K (B,3,3),
    computed in float64 with the renderer's projection (numpy)."""
    from mask2hand.render.exact import project_points

    return project_points(np.asarray(points, dtype=np.float64), np.asarray(K, dtype=np.float64)).astype(np.float32)


def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixel coordinates (N,2) of camera-space points (N,3) through K (3,3)."""
    return _project_batch(np.asarray(points)[None], np.asarray(K)[None])[0]


SIDES = ("right", "left")


def check_side(side: str) -> str:
    """A validated hand side; raises Mask2HandError for anything but "right" or "left"."""
    if side not in SIDES:
        raise Mask2HandError(f"side must be 'right' or 'left', got {side!r}")
    return side


def mirror_K(K: np.ndarray, width: int) -> np.ndarray:
    """Intrinsics (3,3) of the horizontally mirrored image (u -> W - u) with camera x negated:
    P K F, P = [[-1,0,W],[0,1,0],[0,0,1]], F = diag(-1,1,1): cx -> W - cx, skew negated."""
    P = np.array([[-1.0, 0.0, float(width)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return P @ np.asarray(K, dtype=np.float64) @ np.diag([-1.0, 1.0, 1.0])


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


class Mask2Hand:
    """A loaded model that predicts hands from silhouettes. Build it with `from_pretrained`
    (PyTorch) or `from_onnx` (an exported model, no torch needed)."""

    def __init__(self, runner, hand_identity: dict[str, Any], model_identity: dict[str, Any],
                 flat_hand_mean: bool = True):
        self.runner = runner
        self.hand_identity = dict(hand_identity)
        self.model_identity = dict(model_identity)
        self.flat_hand_mean = flat_hand_mean
        self.faces = np.asarray(runner.faces, dtype=np.int64)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, hand_model: str | None = None,
                        mano_path: str | os.PathLike | None = None, device: str | None = None) -> "Mask2Hand":
        """Load weights: `path` (a weights or checkpoint file) or the shipped default.

        hand_model: "open" or "mano" (default: the one the weights were trained with);
        mano_path: MANO_RIGHT.pkl for MANO-trained weights; device: "cpu" (default), "cuda", ...
        """
        from mask2hand.nn.checkpoint import default_weights_path, load_network

        device = device or "cpu"
        network, payload = load_network(path, hand_model=hand_model, mano_path=mano_path, device=device)
        file = Path(path) if path is not None else default_weights_path()
        identity = {"weights": str(file) if path is not None else "default (shipped)",
                    "sha256": file_sha256(file) if file is not None and file.is_file() else None,
                    "format": payload.get("format"), "network": payload.get("network") or
                    payload.get("config", {}).get("network")}
        runner = TorchRunner(network.fold_batch_norms(), device)
        return cls(runner, runner.hand.identity, identity, flat_hand_mean=bool(runner.hand.flat_hand_mean))

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, threads: int | None = None) -> "Mask2Hand":
        """Load an exported ONNX model (`mask2hand export-onnx`) and run it with onnxruntime, without
        torch. threads: onnxruntime's intra-op threads (None: its default)."""
        from mask2hand.inference.onnx_runner import EXPORT_FORMAT, OnnxRunner

        runner = OnnxRunner(path, threads=threads)
        identity = {"onnx": str(path), "sha256": file_sha256(path), "format": EXPORT_FORMAT,
                    "network": runner.network_config, "exported_from": runner.metadata.get("source")}
        return cls(runner, runner.hand_identity, identity, flat_hand_mean=runner.flat_hand_mean)

    @property
    def input_size(self) -> int:
        """The network's input side S in pixels (masks are padded to square, or cut to the square
        around the hand for a cropping network, and resampled to S x S)."""
        return self.runner.input_size

    # ------------------------------------------------------------------ stage 1
    def prepare(self, source: str | os.PathLike | np.ndarray, K: np.ndarray | None = None,
                focal: float | None = None, threshold: float = DEFAULT_THRESHOLD,
                name: str | None = None, side: str = "right") -> PreparedInput:
        """Read and clean one mask (file or (H,W) array) and resolve its camera.

        side="left" mirrors the cleaned mask (see the module docstring). Raises
        Mask2HandError for a bad input (message without the file name: callers add it).
        """
        if check_side(side) == "left":
            if name is None:
                name = str(source) if _is_path(source) else "<array>"
            clean, warnings = load_mask(source, threshold)
            mask = prepare_mask(np.ascontiguousarray(clean[:, ::-1]), self.input_size, name=name,
                                crop_margin=self.runner.input_crop)
            mask.warnings = warnings + mask.warnings
        else:
            mask = prepare_mask(source, self.input_size, threshold=threshold, name=name,
                                crop_margin=self.runner.input_crop)
        camera = resolve_camera(mask.image_size, K=K, focal=focal)
        return PreparedInput(mask=mask, camera=camera, side=side)

    # ------------------------------------------------------------------ stage 2 + 3
    def predict_prepared(self, items: Sequence[PreparedInput], batch_size: int = 64, fit=None,
                         hypotheses: int | None = None) -> list[Prediction]:
        """Predictions for prepared inputs, run through the network in batches of `batch_size`;
        `fit` and `hypotheses` as in `predict` (mask2hand.inference.fitting)."""
        if fit is not None or hypotheses is not None:
            from mask2hand.inference.fitting import predictions_with_fit, resolve_fit, resolve_hypotheses

            fit, hypotheses = resolve_fit(fit), resolve_hypotheses(hypotheses)
        results: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            chunk = list(items[start:start + batch_size])
            raw = self.run_network(chunk)
            if fit is None and hypotheses is None:
                results.extend(self.finish(chunk, raw))
            else:
                results.extend(predictions_with_fit(self, chunk, raw, fit, hypotheses))
        return results

    def run_network(self, items: Sequence[PreparedInput]) -> NetworkResult:
        """Stage 2 alone: the network's answer for prepared inputs, in one batch (for a left
        hand, the right hand of the mirrored picture)."""
        masks = np.stack([item.mask.model_input for item in items])
        Ks = np.stack([item.K_model for item in items]).astype(np.float32)
        return self.runner(masks, Ks)

    def finish(self, items: Sequence[PreparedInput], raw: NetworkResult) -> list[Prediction]:
        """A network batch -> Predictions in each input's own image: 2-D joints, exact silhouette
        at the input's resolution, IoU with the input mask. Inputs of equal size are rendered
        together (one rasterizer call per image size). Left hands are mirrored back here
        (camera x negated, faces' winding reversed)."""
        from mask2hand.render.exact import mask_iou_numpy, rasterize

        left = np.array([item.side == "left" for item in items])
        vertices, joints = raw.vertices, raw.joints
        if left.any():
            # x -> -x is exact (see the module docstring); copies keep the runner's arrays intact
            flip = np.where(left, -1.0, 1.0).astype(vertices.dtype)[:, None]
            vertices, joints = vertices.copy(), joints.copy()
            vertices[..., 0] *= flip
            joints[..., 0] *= flip
        mirrored_faces = np.ascontiguousarray(self.faces[:, ::-1])

        rendered: list[np.ndarray | None] = [None] * len(items)
        ious = [0.0] * len(items)
        groups: dict[tuple[int, int], list[int]] = {}
        for b, item in enumerate(items):
            groups.setdefault(item.mask.image_size, []).append(b)
        for size, members in groups.items():
            # the rasterizer ignores winding, so one call serves both sides
            silhouettes = rasterize(vertices[members], self.faces, np.stack([items[b].camera.K for b in members]),
                                    image_size=size)
            targets = np.stack([items[b].original_mask for b in members])
            group_iou = mask_iou_numpy(silhouettes, targets).tolist()
            for k, b in enumerate(members):
                rendered[b], ious[b] = silhouettes[k], float(group_iou[k])
        joints_2d = _project_batch(joints, np.stack([item.camera.K for item in items]))
        hand = {**self.hand_identity, "flat_hand_mean": self.flat_hand_mean}
        return [Prediction(
            vertices=vertices[b], joints=joints[b], joints_2d=joints_2d[b], params=raw.params(b),
            K=item.camera.K, image_size=item.mask.image_size, mask=item.original_mask, rendered_mask=rendered[b],
            iou=ious[b], silhouette=None if raw.silhouette is None else raw.silhouette[b],
            faces=mirrored_faces if left[b] else self.faces, hand=hand, model=self.model_identity,
            camera=item.camera.source, warnings=list(item.mask.warnings),
            notes=[item.camera.note] if item.camera.note else [], source=item.source, side=item.side)
            for b, item in enumerate(items)]

    # ------------------------------------------------------------------ all stages
    def predict(self, masks, K=None, focal=None, threshold: float = DEFAULT_THRESHOLD,
                batch_size: int = 64, side: str = "right", fit=None,
                hypotheses: int | None = None) -> Prediction | list[Prediction]:
        """Predict hands from masks.

        masks: a file path, an (H,W) array (numpy or torch; bool, 0/1 or 0..255), an
        (B,H,W) array, or a list of paths/arrays (sizes may differ). A single path or
        (H,W) array gives one Prediction, anything else a list.
        K: None, one (3,3) for all, (B,3,3) or a list of (3,3)/None per mask, in pixels
        of each input. focal: None, one focal length in pixels, or a list (principal
        point at the image center). With neither, the default focal length is assumed
        (see mask2hand.inference.cameras) and each prediction's notes say so.
        threshold: grey level above which a pixel is hand (8-bit scale).
        side: "right" (default) or "left" for every mask: a left hand is predicted as the
        right hand of the mirrored mask and mirrored back (see the module docstring).
        fit: None (the network's answer), a number of steps or a mask2hand.fit.FitConfig:
        test-time fitting to the silhouette (the answer is replaced where that raises the
        IoU; `iou_before_fit` and `fit_steps` report it). hypotheses: None or k, the k best
        distinct fitted hands (mask2hand.fit.hypotheses) in `Prediction.hypotheses`.
        Raises Mask2HandError naming the first bad input or setting.
        """
        single = _is_path(masks) or (not isinstance(masks, (list, tuple)) and np.ndim(_as_numpy(masks)) == 2)
        sources = [masks] if single else list(masks) if not _is_array3(masks) else [m for m in _as_numpy(masks)]
        n = len(sources)
        check_side(side)
        if n == 0:
            raise Mask2HandError("no masks given")
        Ks = _per_input(K, n, "K", matrix=True)
        focals = _per_input(focal, n, "focal", matrix=False)
        items = []
        for i, (src, k, f) in enumerate(zip(sources, Ks, focals)):
            name = str(src) if _is_path(src) else f"<array {i}>"
            try:
                items.append(self.prepare(src if _is_path(src) else _as_numpy(src), K=k, focal=f,
                                          threshold=threshold, name=name, side=side))
            except Mask2HandError as exc:
                raise Mask2HandError(f"{name}: {exc}") from None
        results = self.predict_prepared(items, batch_size=batch_size, fit=fit, hypotheses=hypotheses)
        return results[0] if single else results


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _is_array3(x: Any) -> bool:
    return not isinstance(x, (list, tuple)) and not _is_path(x) and np.ndim(_as_numpy(x)) == 3


def _per_input(value: Any, n: int, what: str, matrix: bool) -> list:
    """Broadcast a K / focal argument to a list of n per-input values (None allowed)."""
    if value is None:
        return [None] * n
    if isinstance(value, (list, tuple)) and (not matrix or np.ndim(value) != 2 or
                                              any(v is None for v in value)):
        values = list(value)
    else:
        array = _as_numpy(value)
        if matrix and array.ndim == 3:
            values = list(array)
        elif matrix or array.ndim == 0:
            values = [array] * n
        else:
            values = list(array)
    if len(values) != n:
        raise Mask2HandError(f"{len(values)} {what} values for {n} masks; give one for all or one per mask")
    return values
