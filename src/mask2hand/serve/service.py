"""The loaded model behind the web app: one request at a time, and the answers kept for download.

Requests run one after another on the prediction queue's one worker thread
(mask2hand.serve.prediction_queue), at most `max_queue` waiting. The model is not made for
concurrent calls (the torch runner and the fitting share state), torch already uses every core
for one mask, and one request at a time bounds memory to one input's pixels: at most
MAX_IMAGE_SIDE^2, the PIXEL_BUDGET `mask2hand predict` holds at once. The upload is read on that
thread for that reason; only the HTTP parsing and the JSON encoding run beside it.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, BinaryIO

from mask2hand.inference.pipeline import MaskInput
from mask2hand.serve.answers import Answer, AnswerStore
from mask2hand.serve.prediction_queue import DEFAULT_MAX_QUEUE, PredictionQueue
from mask2hand.serve.uploads import PredictOptions, saved_upload

if TYPE_CHECKING:
    from mask2hand.inference.api import Mask2Hand

KEPT_ANSWERS = 64
"""Answers whose files stay downloadable (the oldest is dropped first); each is a few hundred kB."""


class PredictService:
    """`await predict(file, name, options) -> Answer` on one model, serialised; `answer(id)` for downloads.

    requests / failed: how many predictions were run and how many were refused (bad input);
    queue: the prediction queue (its `pending` count and `max_waiting` limit).
    """

    def __init__(self, model: "Mask2Hand", kept_answers: int = KEPT_ANSWERS, max_queue: int = DEFAULT_MAX_QUEUE):
        self.model = model
        self.answers = AnswerStore(kept_answers)
        self.queue = PredictionQueue(max_queue)
        self.requests = 0
        self.failed = 0

    async def predict(self, file: BinaryIO, name: str, options: PredictOptions) -> Answer:
        """The answer for one uploaded mask (file object at its start, `name` its display name).
        Raises Mask2HandError with the library's one-line message for a bad upload or a hand the
        model cannot place, ServerBusy when `max_queue` predictions already wait."""
        answer = await self.queue.run(lambda: self._predict(file, name, options))
        self.answers.add(answer)
        return answer

    def _predict(self, file: BinaryIO, name: str, options: PredictOptions) -> Answer:
        """predict's work, on the queue's worker thread: one call at a time."""
        self.requests += 1
        started = time.perf_counter()
        with saved_upload(file, name) as path:
            given = MaskInput(path, K=options.K, focal=options.focal, name=name)
            outcome = next(self.model.predict_each([given], side=options.side, fit=options.fit,
                                                   hypotheses=options.hypotheses))
        if not outcome.ok:
            self.failed += 1
            raise type(outcome.error)(outcome.message)
        return Answer.from_prediction(uuid.uuid4().hex, outcome.prediction, time.perf_counter() - started)

    def answer(self, answer_id: str) -> Answer | None:
        return self.answers.get(answer_id)
