"""The Python API: a silhouette in, a 3D hand out.

    from mask2hand import Mask2Hand

    model = Mask2Hand.from_pretrained()              # shipped weights (or a path, or hand_model="mano")
    result = model.predict("examples/open_palm.png")  # file, (H,W) array, (B,H,W) batch or a list
    result.joints          # (21,3) camera space, meters
    result.joints_2d       # (21,2) pixels of the input image
    result.iou             # input mask vs. the exact silhouette of the predicted hand

    from mask2hand.export.prediction import write_prediction
    write_prediction(result, "out")   # OBJ, PLY, GLB, JSON, PNG figure (mask2hand.export)

The pipeline has three stages, kept apart so later features plug in without changing
the others: `prepare` (file/array -> clean mask at the model's input size + camera,
`PreparedInput`; mask2hand.inference.prepare), the network runner (a batch of model inputs
and intrinsics -> `NetworkResult`; mask2hand.inference.runner), and `finish` (the network's
answers -> `Prediction`s in each original image: 2-D joints, exact silhouette, IoU;
mask2hand.inference.finish). Test-time fitting and hypotheses act on the NetworkResult between
the last two stages (mask2hand.inference.fitting), and so does the temporal smoothing of
streams and sequences (mask2hand.inference.stream, `stream`). Left hands are mirrored in `prepare` and mirrored
back in `finish` (mask2hand.inference.mirror). `predict_each` runs many inputs through the
three stages within a memory budget and gives each its own outcome
(mask2hand.inference.pipeline); `predict` is its strict form.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np

from mask2hand.errors import AnswerError, Mask2HandError
from mask2hand.image.masks import DEFAULT_THRESHOLD
from mask2hand.inference.cameras import resolve_camera
from mask2hand.inference.finish import build_predictions, place_answers
from mask2hand.inference.onnx_runner import EXPORT_FORMAT, OnnxRunner
from mask2hand.inference.pipeline import MaskInput, Outcome, predict_each
from mask2hand.inference.prepare import PreparedInput, prepare_mask
from mask2hand.inference.result import Prediction
from mask2hand.inference.runner import NetworkResult, Runner, TorchRunner
from mask2hand.inference.smoothing import OneEuroConfig
from mask2hand.utils.files import file_sha256

if TYPE_CHECKING:
    from mask2hand.hand.model import HandModel
    from mask2hand.inference.stream import HandStream

__all__ = ["Mask2Hand", "MaskInput", "NetworkResult", "Outcome", "PreparedInput", "Prediction"]


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


class Mask2Hand:
    """A loaded model that predicts hands from silhouettes. Build it with `from_pretrained`
    (a shipped model or PyTorch weights) or `from_onnx` (an exported model, no torch needed).

    runner: the network runner (mask2hand.inference.runner.Runner); model_identity: the
    weights' identity, written into every prediction.
    """

    def __init__(self, runner: Runner, model_identity: dict[str, Any]):
        self.runner = runner
        self.model_identity = dict(model_identity)
        self.hand_identity = dict(runner.hand_identity)
        self.flat_hand_mean = bool(runner.flat_hand_mean)
        self.faces = np.asarray(runner.faces, dtype=np.int64)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, hand_model: str | None = None,
                        mano_path: str | os.PathLike | None = None, device: str = "auto",
                        runtime: str = "auto") -> "Mask2Hand":
        """Load weights: `path` (a weights or checkpoint file, or a shipped model's name, see
        `mask2hand models`) or the shipped default.

        hand_model: "open" or "mano" (default: the one the weights were trained with);
        mano_path: MANO_RIGHT.pkl for MANO-trained weights; device: "auto" (CUDA when present,
        else the CPU), "cpu", "cuda", "cuda:N", ... (Mask2HandError for one that is not there).
        runtime: "auto" (PyTorch where torch imports, else a shipped model's ONNX file on
        onnxruntime: the rule of mask2hand.nn.pretrained.resolve_runtime), "torch" or "onnx"
        (shipped models only; for an export of your own weights use `from_onnx`).
        """
        from mask2hand.nn.pretrained import DEFAULT_MODEL, SHIPPED_MODELS, resolve_runtime, shipped_onnx_path

        name = DEFAULT_MODEL if path is None else str(path)
        if resolve_runtime(runtime) == "onnx":
            if name not in SHIPPED_MODELS:
                raise Mask2HandError(f"{path} is not a shipped model, and PyTorch weights run on the PyTorch runtime "
                                     "only (pip install 'mask2hand[torch]'); an ONNX export of them (mask2hand "
                                     "export-onnx) runs without torch: Mask2Hand.from_onnx, predict --model")
            if hand_model not in (None, "open") or mano_path is not None or device not in ("auto", "cpu"):
                raise Mask2HandError("hand_model, mano_path and device are for the PyTorch runtime; the shipped "
                                     "ONNX model runs the open hand on the CPU (pip install 'mask2hand[torch]')")
            runner = OnnxRunner(shipped_onnx_path(name))
            return cls(runner, _onnx_identity(runner, f"{name} (shipped)"))
        from mask2hand.nn.checkpoint import load_network
        from mask2hand.nn.device import resolve_device
        from mask2hand.nn.pretrained import resolve_weights

        device = resolve_device(device)
        file = resolve_weights(path)
        network, payload = load_network(file, hand_model=hand_model, mano_path=mano_path, device=device)
        identity = {"weights": f"{name} (shipped)" if name in SHIPPED_MODELS else str(file),
                    "sha256": file_sha256(file),
                    "format": payload.get("format"), "network": payload.get("network") or
                    payload.get("config", {}).get("network")}
        return cls(TorchRunner(network.fold_batch_norms(), device), identity)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, threads: int | None = None) -> "Mask2Hand":
        """Load an exported ONNX model (`mask2hand export-onnx`) and run it with onnxruntime, without
        torch. threads: onnxruntime's intra-op threads (None: its default)."""
        runner = OnnxRunner(path, threads=threads)
        return cls(runner, _onnx_identity(runner, str(path)))

    @property
    def input_size(self) -> int:
        """The network's input side S in pixels (masks are padded to square, or cut to the square
        around the hand for a cropping network, and resampled to S x S)."""
        return self.runner.input_size

    def hand_layer(self, purpose: str) -> "HandModel":
        """The runner's torch hand layer, for what re-poses the hand (`purpose`, e.g. "test-time
        fitting"); raises Mask2HandError where the runtime has none (ONNX)."""
        if self.runner.hand is None:
            raise Mask2HandError(f"{purpose} needs the PyTorch hand layer, which this runtime (ONNX) does not "
                                 "have; load the model with Mask2Hand.from_pretrained(runtime='torch') (pip install "
                                 "'mask2hand[torch]')")
        return self.runner.hand

    # ------------------------------------------------------------------ stage 1
    def prepare(self, source: str | os.PathLike | np.ndarray, K: np.ndarray | None = None,
                focal: float | None = None, threshold: float = DEFAULT_THRESHOLD,
                name: str | None = None, side: str = "right") -> PreparedInput:
        """Read and clean one mask (file or (H,W) array) and resolve its camera.

        side="left" mirrors the cleaned mask (mask2hand.inference.mirror). Raises
        Mask2HandError for a bad input (message without the file name: callers add it).
        """
        mask = prepare_mask(source, self.input_size, threshold=threshold, name=name,
                            crop_margin=self.runner.input_crop, side=side)
        choice = resolve_camera(mask.image_size, K=K, focal=focal)
        return PreparedInput(mask=mask, camera=choice.camera, side=side, camera_source=choice.source,
                             camera_note=choice.note)

    # ------------------------------------------------------------------ stage 2 + 3
    def run_network(self, items: Sequence[PreparedInput]) -> NetworkResult:
        """Stage 2 alone: the network's answer for prepared inputs, in one batch (for a left
        hand, the right hand of the mirrored picture)."""
        masks = np.stack([item.mask.model_input for item in items])
        Ks = np.stack([item.model_camera.K for item in items]).astype(np.float32)
        return self.runner(masks, Ks)

    def finish_each(self, items: Sequence[PreparedInput], raw: NetworkResult, fit=None,
                    hypotheses: int | None = None) -> list[Prediction | AnswerError]:
        """Stage 3: a network batch -> per input a Prediction in its own image (2-D joints, exact
        silhouette at the input's resolution, IoU with the input mask; left hands mirrored back),
        or the AnswerError of an answer that cannot be used, which costs no other input its
        answer. `fit` and `hypotheses` as in `predict` (mask2hand.inference.fitting)."""
        if fit is None and hypotheses is None:
            return build_predictions(self, items, raw, place_answers(items, raw, self.faces))
        from mask2hand.inference.fitting import predictions_with_fit, resolve_fit, resolve_hypotheses

        fit, hypotheses = resolve_fit(fit), resolve_hypotheses(hypotheses)
        hand = self.hand_layer("test-time fitting and hypotheses")
        return predictions_with_fit(self, hand, items, raw, fit, hypotheses)

    def finish(self, items: Sequence[PreparedInput], raw: NetworkResult, fit=None,
               hypotheses: int | None = None) -> list[Prediction]:
        """`finish_each` for a batch whose answers must all be usable: raises the AnswerError of the
        first input whose answer is not, naming it."""
        results = self.finish_each(items, raw, fit=fit, hypotheses=hypotheses)
        for item, result in zip(items, results):
            if isinstance(result, AnswerError):
                raise AnswerError(f"{item.source}: {result}")
        return results

    def predict_each(self, inputs: Iterable[MaskInput | str | os.PathLike], threshold: float = DEFAULT_THRESHOLD,
                     side: str = "right", batch_size: int = 64, fit=None, hypotheses: int | None = None,
                     pixel_budget: int | None = None, confidence: bool = False) -> Iterator[Outcome]:
        """Predict many inputs, each with its own outcome: an iterator of `Outcome`s in input order,
        each holding a Prediction or the Mask2HandError (InputError, CameraError, AnswerError) that
        stopped that input alone. Inputs are MaskInputs (a file or array with its own K or focal)
        or file paths. They are read as they are needed and run through the network in batches of
        at most `batch_size` masks and `pixel_budget` input pixels (default
        mask2hand.inference.pipeline.PIXEL_BUDGET), so memory stays bounded whatever the number
        and size of the inputs, and every input goes through the network once.
        threshold, side, fit, hypotheses, confidence: as in `predict` (checked before any input is read).
        """
        return predict_each(self, inputs, threshold=threshold, side=side, batch_size=batch_size, fit=fit,
                            hypotheses=hypotheses, pixel_budget=pixel_budget, confidence=confidence)

    def stream(self, fps: float = 30.0, smoothing: OneEuroConfig | None = OneEuroConfig(),
               K: np.ndarray | None = None, focal: float | None = None, threshold: float = DEFAULT_THRESHOLD,
               side: str = "right") -> "HandStream":
        """A HandStream (mask2hand.inference.stream): `push(frame) -> Prediction`, one frame of a
        camera after another, smoothed over time (smoothing: the One Euro settings, None for
        independent frames) with memory that does not grow with the number of frames."""
        from mask2hand.inference.stream import HandStream

        return HandStream(self, fps=fps, smoothing=smoothing, K=K, focal=focal, threshold=threshold, side=side)

    # ------------------------------------------------------------------ all stages
    def predict(self, masks, K=None, focal=None, threshold: float = DEFAULT_THRESHOLD,
                batch_size: int = 64, side: str = "right", fit=None,
                hypotheses: int | None = None, confidence: bool = False) -> Prediction | list[Prediction]:
        """Predict hands from masks.

        masks: a file path, one image as an array (numpy or torch; (H,W) bool, 0/1 or
        0..255, or an (H,W,3) / (H,W,4) uint8 picture), a (B,H,W) batch, or a list of
        paths/arrays (sizes may differ). A single path or image gives one Prediction,
        anything else a list.
        K: None, one (3,3) for all, (B,3,3) or a list of (3,3)/None per mask, in pixels
        of each input. focal: None, one focal length in pixels, or a list (principal
        point at the image center). With neither, the default focal length is assumed
        (see mask2hand.inference.cameras) and each prediction's notes say so.
        threshold: grey level above which a pixel is hand (8-bit scale).
        side: "right" (default) or "left" for every mask: a left hand is predicted as the
        right hand of the mirrored mask and mirrored back (mask2hand.inference.mirror); "auto":
        both readings are predicted and the one that explains the mask better is returned, with
        `side_margin` and `side_ambiguous` (mask2hand.inference.side).
        fit: None (the network's answer), a number of steps or a mask2hand.fit.FitConfig:
        test-time fitting to the silhouette (the answer is replaced where that raises the
        IoU; `iou_before_fit` and `fit_steps` report it). hypotheses: None or k, the k best
        distinct fitted hands (mask2hand.fit.hypotheses) in `Prediction.hypotheses`.
        confidence: also measure how sure the network is of each joint, `joint_confidence`
        (mask2hand.inference.confidence; about 8 more network passes per mask).
        Raises Mask2HandError naming the first bad input or setting.
        """
        single, sources = _split_inputs(masks)
        n = len(sources)
        if n == 0:
            raise Mask2HandError("no masks given")
        Ks = _per_input(K, n, "K", matrix=True)
        focals = _per_input(focal, n, "focal", matrix=False)
        outcomes = self.predict_each([MaskInput(src, K=k, focal=f) for src, k, f in zip(sources, Ks, focals)],
                                     threshold=threshold, side=side, batch_size=batch_size, fit=fit,
                                     hypotheses=hypotheses, confidence=confidence)
        results = []
        for outcome in outcomes:
            if not outcome.ok:
                raise type(outcome.error)(outcome.message)
            results.append(outcome.prediction)
        return results[0] if single else results


def _onnx_identity(runner: OnnxRunner, label: str) -> dict[str, Any]:
    """The model identity of an ONNX runner: `label` (its file, or "<name> (shipped)"), the file's
    hash, and the weights it was exported from (their hash ties a shipped ONNX file to its .pt)."""
    return {"onnx": label, "sha256": file_sha256(runner.path), "format": EXPORT_FORMAT,
            "network": runner.network_config, "exported_from": runner.metadata.get("source")}


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _is_picture(array: np.ndarray) -> bool:
    """An (H,W,3) / (H,W,4) uint8 array is one colour or grey picture, not a batch of H masks."""
    return array.ndim == 3 and array.shape[-1] in (3, 4) and array.dtype == np.uint8


def _split_inputs(masks: Any) -> tuple[bool, list]:
    """`predict`'s masks argument -> (whether it is one input, the inputs: paths or numpy arrays)."""
    if _is_path(masks):
        return True, [masks]
    if isinstance(masks, (list, tuple)):
        return False, [m if _is_path(m) else _as_numpy(m) for m in masks]
    array = _as_numpy(masks)
    if array.ndim == 2 or _is_picture(array):
        return True, [array]
    if array.ndim == 3:
        return False, list(array)
    raise Mask2HandError(f"masks must be a file, an (H,W) mask, an (H,W,3|4) picture, a (B,H,W) batch or a list, "
                         f"got an array of shape {tuple(array.shape)}")


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
