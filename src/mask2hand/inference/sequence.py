"""A whole sequence predicted at once: `predict_sequence`, for callers that want every frame's answer.

    from mask2hand import Mask2Hand
    from mask2hand.inference.sequence import predict_sequence
    from mask2hand.inference.video import read_frames

    frames = read_frames("masks.mp4")          # a video, an animated GIF, a multi-page TIFF or a folder
    result = predict_sequence(Mask2Hand.from_pretrained(), frames)
    result.predictions[t].joints               # (21,3) per frame, smoothed
    result.raw_joints[t]                       # the same without smoothing

The frames run through a HandStream (mask2hand.inference.stream) batch by batch; what a frame
keeps is its Prediction, about 100 kB for a small frame. For sequences too long to keep every
Prediction, iterate `HandStream.predict_frames` and use each answer as it comes, as `mask2hand
predict` does with videos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mask2hand.errors import Mask2HandError
from mask2hand.image.masks import DEFAULT_THRESHOLD
from mask2hand.inference.smoothing import OneEuroConfig
from mask2hand.inference.stream import DEFAULT_FPS, HandStream
from mask2hand.inference.video import Frames


@dataclass(frozen=True)
class SequencePrediction:
    """predictions: one Prediction per predicted frame (smoothed unless smoothing was off);
    raw_joints: (T,21,3) meters, the same frames' joints without smoothing, in each frame's camera
    (what the jitter without smoothing is measured on); names: the predicted frames' names; fps:
    the frame rate used; smoothing: the filter settings (None: off); failed: (frame name, one-line
    reason) of the frames left out (only with skip_bad_frames)."""

    predictions: list
    raw_joints: np.ndarray
    names: list[str]
    fps: float
    smoothing: OneEuroConfig | None
    failed: list[tuple[str, str]]


def predict_sequence(model, frames: Frames, K=None, focal: float | None = None,
                     threshold: float = DEFAULT_THRESHOLD, side: str = "right", fps: float | None = None,
                     smoothing: OneEuroConfig | None = OneEuroConfig(), batch_size: int = 64,
                     skip_bad_frames: bool = False) -> SequencePrediction:
    """Predict every frame with `model` (a Mask2Hand) and smooth over time.

    K / focal: one camera for all frames (as in Mask2Hand.predict). fps: overrides the
    file's frame rate (default: the file's, else DEFAULT_FPS). smoothing=None turns the
    filter off. A bad frame raises its Mask2HandError naming it, or with skip_bad_frames is left
    out and listed in `failed` (the filter then treats its neighbours as consecutive);
    Mask2HandError if no frame is left.
    """
    stream = HandStream(model, fps=float(fps or frames.fps or DEFAULT_FPS), smoothing=smoothing, K=K, focal=focal,
                        threshold=threshold, side=side)
    predictions, raw_joints, names, failed = [], [], [], []
    for answer in stream.predict_frames(frames, batch_size=batch_size):
        if answer.error is not None:
            if not skip_bad_frames:
                raise type(answer.error)(f"{answer.label}: {answer.error}") from None
            failed.append((answer.name, str(answer.error)))
            continue
        predictions.append(answer.prediction)
        raw_joints.append(answer.raw_joints)
        names.append(answer.name)
    if not predictions:
        raise Mask2HandError(f"{frames.source}: no frame could be predicted")
    return SequencePrediction(predictions=predictions, raw_joints=np.stack(raw_joints), names=names, fps=stream.fps,
                              smoothing=smoothing, failed=failed)
