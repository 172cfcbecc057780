"""Adaptive micro-batching: requests that arrive together are scored in one model call.

The model runs on the event loop's thread (no thread hop on the single-request path).
A request hands its rows to the :class:`MicroBatcher` of its model version and waits;
the batcher scores what is waiting at the next turn of the event loop, so:

- alone, a request waits one loop turn (a few microseconds) and is scored by itself;
- under load, the requests that arrived while the model was busy are scored together
  in the next call: batches grow with the load and shrink with it, and no request ever
  waits for a timer;
- a batch never adds more than the latency budget to a request's model call: the cost
  of each extra row in a call is measured (``calibrate``), and the batch is cut at
  ``1 + budget / per-row cost`` rows (always at least one whole request);
- batching is used only for models that gain from it: at calibration, a model whose 64-row
  call costs more than half of 64 single-row calls is scored one request at a time
  (``enabled`` False); the benchmark measures the throughput gain, on and off.

A batch whose call fails is rescored one request at a time, so one request's bad
record fails that request only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["BatchResult", "MicroBatcher", "measure_batch_gain"]

BatchResult = tuple[Any, int, int]  # (the model's prediction, first row, end row)

_GAIN_ROWS = 64
_GAIN_THRESHOLD = 0.5


def measure_batch_gain(
    predict: Callable[[list[Any]], Any], row: Any, repeats: int = 3
) -> tuple[float, float, float]:
    """(seconds per row of a 64-row call / seconds of a one-row call, the one-row call's
    seconds, the 64-row call's seconds): best of ``repeats`` each; lower ratio = gain."""
    single = min(_time(predict, [row]) for _ in range(repeats))
    batch = min(_time(predict, [row] * _GAIN_ROWS) for _ in range(repeats))
    ratio = (batch / _GAIN_ROWS) / single if single > 0 else 1.0
    return ratio, single, batch


def _time(predict: Callable[[list[Any]], Any], rows: list[Any]) -> float:
    started = time.perf_counter()
    predict(rows)
    return time.perf_counter() - started


class MicroBatcher:
    """Scores the rows of concurrent requests together, within a latency budget.

    ``predict`` takes a list of rows and returns the model's prediction for them;
    ``observe(rows, seconds)`` is called after each model call (metrics).
    """

    def __init__(
        self,
        predict: Callable[[list[Any]], Any],
        *,
        budget_seconds: float = 0.005,
        enabled: bool = True,
        max_rows: int = 4096,
        observe: Callable[[int, float], None] | None = None,
    ) -> None:
        self._predict = predict
        self.budget_seconds = budget_seconds
        self.wanted = enabled  # batching asked for; calibrate() decides if it pays
        self.enabled = enabled
        self.calibrated = False
        self.max_rows = max_rows
        self._observe = observe
        self.fixed_seconds = 0.0  # cost of a one-row call, measured by calibrate()
        self.row_seconds = 0.0  # cost of each further row
        self._pending: list[tuple[Sequence[Any], asyncio.Future[BatchResult]]] = []
        self._scheduled = False
        self.calls = 0
        self.rows = 0

    def calibrate(self, row: Any) -> float:
        """Measure whether batching pays for this model and its per-row cost (one pass:
        three one-row and three 64-row calls), then batch if it pays and was wanted."""
        ratio, single, batch = measure_batch_gain(self._predict, row)
        self.fixed_seconds = single
        self.row_seconds = max(batch - single, 0.0) / (_GAIN_ROWS - 1)
        self.enabled = self.wanted and ratio < _GAIN_THRESHOLD
        self.calibrated = True
        return ratio

    @property
    def batch_limit(self) -> int:
        """Rows per call that fit the latency budget at the measured per-row cost."""
        if self.row_seconds <= 0:
            return self.max_rows
        return max(1, min(self.max_rows, 1 + int(self.budget_seconds / self.row_seconds)))

    async def submit(self, rows: Sequence[Any]) -> BatchResult:
        """Score ``rows``; returns the call's prediction and this request's row span."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[BatchResult] = loop.create_future()
        self._pending.append((rows, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._drain)
        return await future

    def _drain(self) -> None:
        self._scheduled = False
        pending = self._pending
        if not pending:
            return
        if self.enabled:
            limit = self.batch_limit
            taken = 1
            total = len(pending[0][0])
            while taken < len(pending) and total + len(pending[taken][0]) <= limit:
                total += len(pending[taken][0])
                taken += 1
        else:
            taken = 1
        group, self._pending = pending[:taken], pending[taken:]
        if self._pending:
            # The rest waits one loop turn, so that reading new requests interleaves.
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)
        self._run(group)

    def _run(self, group: list[tuple[Sequence[Any], asyncio.Future[BatchResult]]]) -> None:
        rows: list[Any] = []
        spans: list[tuple[int, int]] = []
        for request_rows, _ in group:
            spans.append((len(rows), len(rows) + len(request_rows)))
            rows.extend(request_rows)
        started = time.perf_counter()
        try:
            prediction = self._predict(rows)
        except Exception as exc:
            if len(group) > 1:
                for item in group:  # find the request that fails; the others succeed
                    self._run([item])
                return
            _, future = group[0]
            if not future.done():
                future.set_exception(exc)
            return
        elapsed = time.perf_counter() - started
        self.calls += 1
        self.rows += len(rows)
        if self._observe is not None:
            self._observe(len(rows), elapsed)
        for (start, end), (_, future) in zip(spans, group, strict=True):
            if not future.done():  # the client may have gone away meanwhile
                future.set_result((prediction, start, end))
