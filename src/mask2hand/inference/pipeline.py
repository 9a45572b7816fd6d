"""Many inputs through the three stages, each with its own outcome: `Mask2Hand.predict_each`.

    from mask2hand.inference import MaskInput

    for outcome in model.predict_each(["a.png", MaskInput("b.png", focal=600.0)]):
        if outcome.ok:
            outcome.prediction.joints
        else:
            print(outcome.message)      # "b.png: the mask is empty: ..."

`read_input` is the one reader of a user's input (file or array) that the CLI, `serve` and
`adapt` share: whatever goes wrong while reading becomes an InputError or a CameraError with a
one-line message. Inputs are read as they are needed and run through the network in batches
bounded by a count and a number of input pixels, so memory stays bounded whatever the inputs;
an input whose reading or answer fails costs no other input anything, and every input goes
through the network once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from mask2hand.errors import AnswerError, CameraError, InputError, Mask2HandError
from mask2hand.image.masks import DEFAULT_THRESHOLD
from mask2hand.inference.cameras import KFile
from mask2hand.inference.confidence import with_confidence
from mask2hand.inference.prepare import PreparedInput, check_side
from mask2hand.inference.result import Prediction
from mask2hand.inference.side import choose_side, left_reading

PIXEL_BUDGET = 64_000_000
"""Most input pixels (summed over the masks) held at once: a batch is run early when its masks
reach this, so memory stays bounded whatever the inputs' sizes (64 large images at once would
need gigabytes for their full-resolution masks and silhouettes)."""


@dataclass(frozen=True)
class MaskInput:
    """One input of `Mask2Hand.predict_each`.

    source: a file path, or one image as an array ((H,W) mask or (H,W,3|4) uint8 picture).
    K: its intrinsics (3,3) in pixels, or a KFile whose entry for this file is used, or None.
    focal: its focal length in pixels (principal point at the image center), or None; with
    neither, the default camera (mask2hand.inference.cameras).
    name: what its outcome and messages call it (default: the path, or "<array i>").
    """

    source: str | os.PathLike | np.ndarray
    K: np.ndarray | KFile | None = None
    focal: float | None = None
    name: str | None = None

    def label(self, index: int) -> str:
        if self.name is not None:
            return self.name
        return str(self.source) if isinstance(self.source, (str, os.PathLike)) else f"<array {index}>"


@dataclass(frozen=True)
class Outcome:
    """What one input gave: index (its position among the inputs), name, and either the
    prediction or the error (an InputError, CameraError or AnswerError, its message without
    the name) that stopped this input alone."""

    index: int
    name: str
    prediction: Prediction | None = None
    error: Mask2HandError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def message(self) -> str:
        """The error on one line, naming the input ("" for a prediction)."""
        return "" if self.error is None else f"{self.name}: {self.error}"


def read_input(model, given: MaskInput, threshold: float = DEFAULT_THRESHOLD,
               side: str = "right", index: int = 0) -> PreparedInput:
    """Stage 1 for one input of a Mask2Hand `model`, safely: its PreparedInput, or CameraError
    for its camera and InputError for anything else that goes wrong while reading it (an
    unreadable or damaged file, not enough memory, a failure of an image decoder), the message
    without the name."""
    try:
        K = given.K.for_input(given.source) if isinstance(given.K, KFile) else given.K
        return model.prepare(given.source, K=K, focal=given.focal, threshold=threshold, name=given.label(index),
                             side=side)
    except (InputError, CameraError):
        raise
    except Mask2HandError as exc:
        raise InputError(str(exc)) from None
    except MemoryError:
        raise InputError("not enough memory to read this input; downscale it (a silhouette needs a few "
                         "hundred pixels)") from None
    except Exception as exc:  # an image decoder's unforeseen failure is still this input's
        raise InputError(f"cannot read this input ({type(exc).__name__}: {exc})") from None


def predict_each(model, inputs: Iterable[MaskInput | str | os.PathLike],
                 threshold: float = DEFAULT_THRESHOLD, side: str = "right", batch_size: int = 64, fit=None,
                 hypotheses: int | None = None, pixel_budget: int | None = None,
                 confidence: bool = False) -> Iterator[Outcome]:
    """See `Mask2Hand.predict_each`. The settings are checked here, before any input is read."""
    check_side(side, allow_auto=True)
    if batch_size < 1:
        raise Mask2HandError(f"the batch size must be at least 1, got {batch_size}")
    budget = PIXEL_BUDGET if pixel_budget is None else int(pixel_budget)
    if budget < 1:
        raise Mask2HandError(f"the pixel budget must be positive, got {pixel_budget}")
    if fit is not None or hypotheses is not None:
        from mask2hand.inference.fitting import resolve_fit, resolve_hypotheses

        fit, hypotheses = resolve_fit(fit), resolve_hypotheses(hypotheses)
        model.hand_layer("test-time fitting and hypotheses")
    stages = _Stages(model, fit, hypotheses, confidence)
    return _outcomes(model, inputs, threshold, side, batch_size, budget, stages)


@dataclass(frozen=True)
class _Stages:
    """Stages 2 and 3 as the settings ask: fit, hypotheses, and the joints' confidence."""

    model: Any
    fit: Any
    hypotheses: int | None
    confidence: bool

    def __call__(self, items: list[PreparedInput]) -> list[Prediction | AnswerError]:
        results = self.model.finish_each(items, self.model.run_network(items), fit=self.fit,
                                         hypotheses=self.hypotheses)
        return with_confidence(self.model, items, results) if self.confidence else results


def _readings(model, given: MaskInput, threshold: float, side: str, index: int) -> tuple[PreparedInput, ...]:
    """The prepared readings of one input: one, or for side "auto" the right and the left one."""
    item = read_input(model, given, threshold, "right" if side == "auto" else side, index)
    if side != "auto":
        return (item,)
    return item, left_reading(item, model.input_size, model.runner.input_crop)


def _outcomes(model, inputs, threshold, side, batch_size, budget, stages: _Stages) -> Iterator[Outcome]:
    pending: list[tuple[int, str, tuple[PreparedInput, ...]]] = []
    done: dict[int, Outcome] = {}
    next_index = 0
    for index, given in enumerate(inputs):
        given = given if isinstance(given, MaskInput) else MaskInput(given)
        name = given.label(index)
        try:
            pending.append((index, name, _readings(model, given, threshold, side, index)))
        except Mask2HandError as exc:
            done[index] = Outcome(index, name, error=exc)
        pixels = sum(item.mask.mask.size for _, _, readings in pending for item in readings)
        if pending and (len(pending) == batch_size or pixels >= budget):
            done.update(_run_batch(pending, stages))
            pending = []
        while next_index in done:
            yield done.pop(next_index)
            next_index += 1
    done.update(_run_batch(pending, stages))
    for index in sorted(done):
        yield done[index]


def _run_batch(pending: list[tuple[int, str, tuple[PreparedInput, ...]]], stages: _Stages) -> dict[int, Outcome]:
    """Stages 2 and 3 for one batch (every reading of every input in one network pass): index ->
    Outcome. A batch that runs out of memory is run again in halves, down to single inputs."""
    if not pending:
        return {}
    items = [item for _, _, readings in pending for item in readings]
    try:
        results = stages(items)
    except MemoryError:
        if len(pending) > 1:
            half = len(pending) // 2
            return {**_run_batch(pending[:half], stages), **_run_batch(pending[half:], stages)}
        results = [InputError("not enough memory for this input; downscale it or lower the batch size")] * len(items)
    outcomes, start = {}, 0
    for index, name, readings in pending:
        answers = results[start:start + len(readings)]
        start += len(readings)
        result = answers[0] if len(answers) == 1 else choose_side(*answers)
        outcomes[index] = (Outcome(index, name, error=result) if isinstance(result, Mask2HandError)
                           else Outcome(index, name, prediction=result))
    return outcomes
