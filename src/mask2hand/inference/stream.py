"""Frames in, smoothed hands out, one frame (or one batch of frames) at a time: `HandStream`.

    from mask2hand import Mask2Hand
    from mask2hand.inference.stream import HandStream

    stream = HandStream(Mask2Hand.from_pretrained(), fps=30.0)   # or model.stream(fps=30.0)
    for mask in camera:                                          # (H,W) masks, as they come
        prediction = stream.push(mask)                           # smoothed over the frames before

Each frame goes through the three stages of mask2hand.inference.api: the network runs on it
alone (or on a batch of consecutive frames), its answer is smoothed over time before stage 3
(mask2hand.inference.hand_smoothing), so the per-frame outputs (2-D joints, exact silhouette,
IoU) are those of the smoothed hand. The stream keeps only the smoother's state, so memory does
not grow with the number of frames; `predict_frames` runs a whole `Frames` through it batch by
batch and yields each frame's answer as it is made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Iterator, Sequence

import numpy as np

from mask2hand.errors import AnswerError, Mask2HandError
from mask2hand.image.masks import DEFAULT_THRESHOLD
from mask2hand.inference.hand_smoothing import HandSmoother, smoothing_layer
from mask2hand.inference.mirror import mirror_points
from mask2hand.inference.pipeline import MaskInput, read_input
from mask2hand.inference.prepare import check_side
from mask2hand.inference.result import Prediction
from mask2hand.inference.smoothing import OneEuroConfig
from mask2hand.inference.video import Frames

DEFAULT_FPS = 30.0
"""Frame rate assumed when neither the file nor the user gives one (folders of frames)."""


@dataclass(frozen=True)
class FrameAnswer:
    """One frame's answer: name (its output stem), label (what messages call it), and either
    prediction (smoothed unless the stream's smoothing is off) with raw_joints (21,3) meters, the
    same frame's joints without smoothing in its camera, or error: the InputError, CameraError or
    AnswerError that stopped this frame alone (its message without the label)."""

    name: str
    label: str
    prediction: Prediction | None = None
    raw_joints: np.ndarray | None = None
    error: Mask2HandError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class HandStream:
    """A Mask2Hand `model` run over consecutive frames of one camera, its answers smoothed over time.

    fps: the frame rate (the time between frames when push is given no timestamps); smoothing:
    the One Euro settings, or None for independent frames; K / focal: the camera of every frame
    (as in Mask2Hand.predict); threshold and side: as in Mask2Hand.predict. Raises
    Mask2HandError for a bad setting, or for smoothing with a model whose hand layer this
    installation lacks.
    """

    def __init__(self, model, fps: float = DEFAULT_FPS, smoothing: OneEuroConfig | None = OneEuroConfig(),
                 K: np.ndarray | None = None, focal: float | None = None, threshold: float = DEFAULT_THRESHOLD,
                 side: str = "right"):
        self.model = model
        self.fps = float(fps)
        if not self.fps > 0:
            raise Mask2HandError(f"the frame rate must be positive, got {fps}")
        self.K, self.focal, self.threshold, self.side = K, focal, threshold, check_side(side)
        self.smoothing = smoothing
        self.smoother = None if smoothing is None else HandSmoother(smoothing_layer(model), self.fps, smoothing)
        self.note = None if smoothing is None else (
            f"parameters smoothed over time (One Euro filter, min_cutoff {smoothing.min_cutoff:g} Hz, "
            f"beta {smoothing.beta:g}, d_cutoff {smoothing.d_cutoff:g} Hz, {self.fps:g} fps)")
        self.last_time: float | None = None

    def push(self, frame: str | os.PathLike | np.ndarray, timestamp: float | None = None,
             name: str = "frame") -> Prediction:
        """The smoothed Prediction of the next frame (a file or an (H,W) / (H,W,3|4) image).
        timestamp: when it was taken, in seconds (the filter then uses the time since the last
        frame answered instead of 1 / fps). Raises the frame's InputError, CameraError or
        AnswerError; a frame that cannot be read leaves the filter as it was."""
        answer = self.push_many([(name, name, frame)], None if timestamp is None else [timestamp])[0]
        if answer.error is not None:
            raise answer.error
        return answer.prediction

    def push_many(self, frames: Sequence[tuple[str, str, Any]],
                  timestamps: Sequence[float] | None = None) -> list[FrameAnswer]:
        """The answers of consecutive frames, (name, label, image) each, in one network batch; a
        frame that fails has its error in its answer and is skipped by the filter."""
        answers: list[FrameAnswer | None] = [None] * len(frames)
        items, kept = [], []
        for i, (name, label, image) in enumerate(frames):
            try:
                items.append(read_input(self.model, MaskInput(image, K=self.K, focal=self.focal, name=label),
                                        threshold=self.threshold, side=self.side))
                kept.append(i)
            except Mask2HandError as exc:
                answers[i] = FrameAnswer(name, label, error=exc)
        if items:
            raw = self.model.run_network(items)
            raw_joints = mirror_points(raw.joints) if self.side == "left" else raw.joints
            if self.smoother is not None:
                raw = self.smoother.smooth(raw, self._periods([timestamps[i] for i in kept]) if timestamps else None)
            for k, (i, result) in enumerate(zip(kept, self.model.finish_each(items, raw))):
                name, label, _ = frames[i]
                if isinstance(result, AnswerError):
                    answers[i] = FrameAnswer(name, label, error=result)
                else:
                    prediction = result if self.note is None else replace(result, notes=result.notes + [self.note])
                    answers[i] = FrameAnswer(name, label, prediction=prediction, raw_joints=raw_joints[k])
        return answers

    def _periods(self, timestamps: list[float]) -> list[float]:
        """Seconds since the previous frame answered, per frame (1 / fps for the first, and where
        the clock did not advance)."""
        periods = []
        for t in timestamps:
            elapsed = None if self.last_time is None else t - self.last_time
            periods.append(elapsed if elapsed is not None and elapsed > 0 else 1.0 / self.fps)
            self.last_time = t
        return periods

    def predict_frames(self, frames: Frames, batch_size: int = 64) -> Iterator[FrameAnswer]:
        """Each frame's answer, in order, as it is made: the frames are read and run through the
        network batch_size at a time, so memory holds one batch whatever the sequence's length.
        A frame that cannot be read or answered has its error in its answer; one the reader cannot
        get past (a damaged video) raises its InputError."""
        if batch_size < 1:
            raise Mask2HandError(f"the batch size must be at least 1, got {batch_size}")
        batch: list[tuple[str, str, Any]] = []
        for name, image in frames:
            batch.append((name, frames.label(name, image), image))
            if len(batch) == batch_size:
                yield from self.push_many(batch)
                batch = []
        if batch:
            yield from self.push_many(batch)
