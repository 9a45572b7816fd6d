"""The prediction queue: predictions run one at a time on their own thread, and few may wait.

Predictions run on the queue's one worker thread, never on the event loop or the thread pool
that serves health, the page, its files and the downloads, so those never wait behind them.
At most `max_waiting` predictions wait behind the running one; a request finding the queue full
is refused at once with ServerBusy (503 with Retry-After) rather than holding its connection
and its upload for minutes.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from mask2hand.errors import Mask2HandError

DEFAULT_MAX_QUEUE = 16
"""Predictions that may wait behind the running one by default (`--max-queue`): a plain
prediction takes a fraction of a second on a CPU, one with the fit some seconds."""

T = TypeVar("T")


class ServerBusy(Mask2HandError):
    """The queue is full; `retry_after`: whole seconds after which a new request may find room."""

    def __init__(self, max_waiting: int, retry_after: int):
        super().__init__(f"the server is busy: {max_waiting} predictions are already waiting (its --max-queue); "
                         f"try again in {retry_after} s")
        self.retry_after = retry_after


class PredictionQueue:
    """`await run(job)`: job() on the one worker thread, after the jobs admitted before it.

    pending: jobs admitted and not finished (the running one included), at most max_waiting + 1.
    Admission happens on the event loop's thread only, so the count needs no lock.
    """

    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self.pending = 0
        self._last_seconds = 1.0
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mask2hand-predict")

    def retry_after(self) -> int:
        """Whole seconds until the jobs pending now are done, estimated from the last job's time."""
        return max(1, math.ceil(self._last_seconds * self.pending))

    async def run(self, job: Callable[[], T]) -> T:
        """job()'s result (or its exception); raises ServerBusy without running it when
        max_waiting jobs already wait behind a running one."""
        if self.pending > self.max_waiting:
            raise ServerBusy(self.max_waiting, self.retry_after())
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, self._timed, job)
        finally:
            self.pending -= 1

    def _timed(self, job: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return job()
        finally:
            self._last_seconds = time.perf_counter() - started
