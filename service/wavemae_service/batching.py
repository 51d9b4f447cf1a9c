"""Micro-batching across requests: one bounded queue in front of the inference workers.

Routes ``await batcher.submit(x)`` with ``x`` of shape ``(n, ...)``. Requests are split into
chunks of at most ``max_batch_size`` rows. A batch closes when it holds ``max_batch_size`` rows
or ``max_wait_ms`` after its first row was queued, whichever comes first; while the workers run
batches, the next fills up, so the batch size adapts to the load. Inference runs in a worker
thread, off the event loop. An idle batcher does not queue: with no batching window
(``max_wait_ms=0``), nothing queued and a worker free, a request runs at once from the caller's
own task, without the hops through the batch loop's task. Rows of requests that were cancelled
(client gone, timeout) are dropped before inference. An exception fails only the requests in
that batch. When the queue already holds ``max_queue_spectra`` rows,
:meth:`MicroBatcher.submit` raises :class:`~wavemae_service.errors.Overloaded` at once (429 +
Retry-After).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InferenceFailed, NotReady, Overloaded

__all__ = ["BatchObserver", "MicroBatcher"]

log = logging.getLogger("wavemae_service.batching")

#: Runs one batch: receives the concatenated inputs, returns ``(rows, ...)`` array(s).
RunBatch = Callable[..., "np.ndarray | tuple[np.ndarray, ...]"]


class BatchObserver:
    """Hooks for metrics; the default does nothing (see :mod:`wavemae_service.metrics`)."""

    def queue_depth(self, name: str, spectra: int) -> None: ...
    def batch_done(self, name: str, size: int, wait_s: float, run_s: float, ok: bool) -> None: ...
    def rejected(self, name: str) -> None: ...


@dataclass(eq=False)
class _Item:
    inputs: tuple[np.ndarray, ...]
    rows: int
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


if sys.version_info >= (3, 11):

    async def _within(future: asyncio.Future, timeout_s: float) -> Any:
        async with asyncio.timeout(timeout_s):
            return await future

    async def _wait(futures: list[asyncio.Future], timeout_s: float) -> list[Any]:
        # asyncio.timeout arms one timer; wait_for would wrap each request in an extra task.
        async with asyncio.timeout(timeout_s):
            if len(futures) == 1:
                return [await futures[0]]
            return list(await asyncio.gather(*futures))

else:  # pragma: no cover - Python 3.10

    async def _wait(futures: list[asyncio.Future], timeout_s: float) -> list[Any]:
        return list(await asyncio.wait_for(asyncio.gather(*futures), timeout_s))

    async def _within(future: asyncio.Future, timeout_s: float) -> Any:
        return await asyncio.wait_for(future, timeout_s)


class MicroBatcher:
    """See module docstring.

    Args:
        run_batch: called in the worker thread with one array per input (rows concatenated).
        name: label for logs and metrics ("embed", "reconstruct").
        max_batch_size: rows per batch at most.
        max_wait_ms: how long a batch waits for more rows after its first one.
        max_queue_spectra: rows allowed to wait; beyond it submit raises Overloaded.
        retry_after_s: Retry-After sent with Overloaded.
        timeout_s: a submit waiting longer raises NotReady.
        stall_s: ``healthy`` turns False while a batch runs longer than this.
        observer: metrics hooks.
    """

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        name: str = "embed",
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        max_queue_spectra: int = 2048,
        retry_after_s: int = 1,
        timeout_s: float = 30.0,
        stall_s: float = 10.0,
        workers: int = 1,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size={max_batch_size} must be >= 1")
        if workers < 1:
            raise ValueError(f"workers={workers} must be >= 1")
        self.workers = workers
        self._run_batch = run_batch
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue_spectra = max_queue_spectra
        self.retry_after_s = retry_after_s
        self.timeout_s = timeout_s
        self.stall_s = stall_s
        self._observer = observer or BatchObserver()
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued_rows = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._running: dict[asyncio.Future, float] = {}  # running batch -> start time
        self._slots: asyncio.Semaphore | None = None
        self._batches = 0
        self._last_error: str | None = None
        self._broken = False  # a fault outside the engine stopped the loop

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the batch loop on the running event loop."""
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(self.workers)
        self._executor = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix=f"ort-{self.name}"
        )
        self._task = asyncio.create_task(self._loop(), name=f"batcher-{self.name}")

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Let queued rows finish (up to ``drain_timeout_s``), then stop the loop."""
        deadline = time.perf_counter() + drain_timeout_s
        while (self._queue or self._running) and time.perf_counter() < deadline:
            if self._task is None or self._task.done():
                break
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._running:
            await asyncio.wait(
                list(self._running), timeout=max(0.0, deadline - time.perf_counter())
            )
        for item in self._queue:
            if not item.future.done():
                item.future.set_exception(NotReady("the server is shutting down"))
        self._queue.clear()
        self._queued_rows = 0
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    # -- state -------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """The loop is alive and no batch has been running longer than ``stall_s``."""
        if self._task is None or self._task.done():
            return False
        now = time.perf_counter()
        return all(now - since < self.stall_s for since in self._running.values())

    def health(self) -> dict[str, Any]:
        oldest = min(self._running.values(), default=None)
        return {
            "healthy": self.healthy,
            "queued_spectra": self._queued_rows,
            "running_batches": len(self._running),
            "batches": self._batches,
            "running_for_s": None if oldest is None else round(time.perf_counter() - oldest, 3),
            "last_error": self._last_error,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "max_batch_size": self.max_batch_size,
            "max_wait_ms": self.max_wait_s * 1000.0,
            "max_queue_spectra": self.max_queue_spectra,
            "workers": self.workers,
        }

    # -- submit ------------------------------------------------------------------------------

    async def submit(self, *inputs: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Queue ``inputs`` (arrays with the same number of rows) and await their outputs.

        Raises:
            Overloaded: the queue is full.
            NotReady: the loop is not running or the answer took longer than ``timeout_s``.
            InferenceFailed: the engine raised on this request's batch.
        """
        if self._task is None or self._task.done() or self._wakeup is None:
            raise NotReady("the inference loop is not running")
        rows = int(inputs[0].shape[0])
        if self._idle_worker_for(rows):
            return await self._run_now(inputs, rows)
        if self._queued_rows > 0 and self._queued_rows + rows > self.max_queue_spectra:
            self._observer.rejected(self.name)
            raise Overloaded(
                f"the server is busy ({self._queued_rows} spectra queued); retry shortly",
                retry_after_s=self.retry_after_s,
            )
        loop = asyncio.get_running_loop()
        items = []
        for start in range(0, rows, self.max_batch_size):
            stop = min(rows, start + self.max_batch_size)
            chunk = tuple(x[start:stop] for x in inputs)
            items.append(_Item(chunk, stop - start, loop.create_future()))
        self._queue.extend(items)
        self._queued_rows += rows
        self._observer.queue_depth(self.name, self._queued_rows)
        self._wakeup.set()
        futures = [item.future for item in items]
        try:
            parts = await _wait(futures, self.timeout_s)
        except TimeoutError:
            raise NotReady(
                f"inference did not finish within {self.timeout_s:g} s; retry shortly"
            ) from None
        finally:
            for f in futures:  # on cancellation or error: drop what has not run yet
                if not f.done():
                    f.cancel()
        if len(parts) == 1:
            return parts[0]
        if isinstance(parts[0], tuple):
            return tuple(np.concatenate(group) for group in zip(*parts, strict=True))
        return np.concatenate(parts)

    # -- an idle worker: no queue ------------------------------------------------------------

    def _idle_worker_for(self, rows: int) -> bool:
        """Whether a request of ``rows`` may skip the queue: no batching window asked for,
        nothing waiting (so no one is overtaken), one batch's worth of rows, a worker free."""
        assert self._slots is not None
        return (
            self.max_wait_s == 0
            and not self._queue
            and rows <= self.max_batch_size
            and not self._slots.locked()
        )

    async def _run_now(
        self, inputs: tuple[np.ndarray, ...], rows: int
    ) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run ``inputs`` as one batch in a worker thread, awaited by the caller's task."""
        assert self._slots is not None
        await self._slots.acquire()  # free (checked just before): returns without suspending
        started = time.perf_counter()
        running = asyncio.get_running_loop().run_in_executor(
            self._executor, self._run_batch, *inputs
        )
        self._running[running] = started

        def finished(future: asyncio.Future) -> None:
            # Only when the thread is done: a caller that gave up must not free its worker early.
            assert self._slots is not None
            self._running.pop(future, None)
            self._slots.release()
            self._batches += 1
            error = None if future.cancelled() else future.exception()
            ok = not future.cancelled() and error is None
            if error is not None:
                self._last_error = type(error).__name__
                log.error("batch of %d spectra failed in %s", rows, self.name, exc_info=error)
            try:
                self._observer.batch_done(self.name, rows, 0.0, time.perf_counter() - started, ok)
            except Exception as exc:  # a fault outside the engine: as in the batch loop
                self._stop_on_fault(exc)

        running.add_done_callback(finished)  # before shield's: it runs before the caller resumes
        try:
            outputs = await _within(asyncio.shield(running), self.timeout_s)
        except TimeoutError:
            raise NotReady(
                f"inference did not finish within {self.timeout_s:g} s; retry shortly"
            ) from None
        except Exception:
            raise InferenceFailed("inference failed for this batch; retry the request") from None
        if self._broken:
            raise NotReady("the inference loop failed; retry")
        return outputs

    # -- loop --------------------------------------------------------------------------------

    def _take_batch(self) -> list[_Item]:
        batch: list[_Item] = []
        rows = 0
        while self._queue:
            item = self._queue[0]
            if item.future.done():  # cancelled while waiting: never reaches the engine
                self._queue.popleft()
                self._queued_rows -= item.rows
                continue
            if batch and rows + item.rows > self.max_batch_size:
                break
            self._queue.popleft()
            self._queued_rows -= item.rows
            batch.append(item)
            rows += item.rows
        return batch

    async def _rows_queued(self) -> None:
        assert self._wakeup is not None
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _next_batch(self) -> list[_Item]:
        """Wait until the batch is full or its first row's deadline passed, then take it
        (empty when every queued row was cancelled meanwhile)."""
        assert self._wakeup is not None
        if not self._queue:
            return []
        deadline = self._queue[0].queued_at + self.max_wait_s
        while self._queued_rows < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)
        batch = self._take_batch()
        self._observer.queue_depth(self.name, self._queued_rows)
        return batch

    async def _loop(self) -> None:
        assert self._slots is not None
        loop = asyncio.get_running_loop()
        while True:
            # Rows first, then a free worker, then the batch: rows keep arriving while the
            # workers are busy, so the batch size follows the load. No worker is held while
            # nothing is queued, so an idle worker stays free for a request to run at once.
            await self._rows_queued()
            await self._slots.acquire()
            try:
                batch = await self._next_batch()
            except BaseException:
                self._slots.release()
                raise
            if not batch:
                self._slots.release()
                continue
            task = loop.create_task(self._run(loop, batch))
            self._running[task] = time.perf_counter()
            task.add_done_callback(self._batch_finished)

    def _batch_finished(self, task: asyncio.Task) -> None:
        self._running.pop(task, None)
        assert self._slots is not None
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            self._stop_on_fault(task.exception())

    def _stop_on_fault(self, exc: BaseException) -> None:
        """A fault outside the engine (a bug, a failing hook): stop accepting work so that
        /readyz says so and callers get 503 at once instead of waiting for timeouts."""
        self._broken = True
        self._last_error = type(exc).__name__
        log.error("the %s batch loop failed", self.name, exc_info=exc)
        if self._task is not None:
            self._task.cancel()

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            await self._run_and_answer(loop, batch, started)
        finally:
            self._batches += 1
            for item in batch:  # never leave a caller waiting, whatever happened above
                if not item.future.done():
                    item.future.set_exception(NotReady("the inference loop failed; retry"))

    async def _run_and_answer(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Item], started: float
    ) -> None:
        wait_s = started - batch[0].queued_at
        n_inputs = len(batch[0].inputs)
        if len(batch) == 1:
            inputs: Sequence[np.ndarray] = batch[0].inputs
        else:
            inputs = [np.concatenate([item.inputs[i] for item in batch]) for i in range(n_inputs)]
        rows = sum(item.rows for item in batch)
        try:
            outputs = await loop.run_in_executor(self._executor, self._run_batch, *inputs)
        except Exception as exc:
            self._last_error = type(exc).__name__
            log.exception("batch of %d spectra failed in %s", rows, self.name)
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(
                        InferenceFailed("inference failed for this batch; retry the request")
                    )
            self._observer.batch_done(self.name, rows, wait_s, time.perf_counter() - started, False)
            return
        self._observer.batch_done(self.name, rows, wait_s, time.perf_counter() - started, True)
        offset = 0
        for item in batch:
            end = offset + item.rows
            if not item.future.done():
                if isinstance(outputs, tuple):
                    item.future.set_result(tuple(o[offset:end] for o in outputs))
                else:
                    item.future.set_result(outputs[offset:end])
            offset = end
