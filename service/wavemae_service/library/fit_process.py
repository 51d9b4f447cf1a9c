"""Run CPU-heavy fits in a worker process, so the serving process keeps its GIL.

UMAP and t-SNE fits are numba and numpy code that holds the GIL for long stretches: in a thread
of the serving process they slow every request down (`wavemae bench cluster` measures /embed
latency during a fit both ways). :class:`FitWorker` runs ``fn(*args, progress=...)`` in a
``spawn``-ed child (a fresh interpreter: no inherited locks, threads or ONNX sessions), relays
its progress reports, returns its picklable result, and kills the child when cancelled.

The child is started on the first fit and kept for the next ones: numba compiles UMAP's and
openTSNE's kernels once per process (about 20 s on an idle core, 100 s on the loaded 2-core
development machine; most of it is not cached on disk), which a process per fit would pay every
time. Between fits it holds the imported libraries (about 300 MiB resident); the arrays of a fit
are freed when it returns.

Bounds: one child, one fit at a time (the job runner allows one), one core's worth of threads in
it (``OMP_NUM_THREADS``/``NUMBA_NUM_THREADS`` = 1), an address-space limit (``RLIMIT_AS``) so a
fit too large for the machine fails with ``MemoryError`` instead of pushing the server out of
memory (the child is then replaced), and a watchdog that ends the child when its parent dies.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["FitCancelled", "FitProcessDied", "FitWorker"]

Progress = Callable[[float, str], None]
_POLL_S = 0.1
_ONE_CORE = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class FitCancelled(RuntimeError):
    """The fit was cancelled (the server is stopping); its process was killed."""


class FitProcessDied(RuntimeError):
    """The fit's process ended without an answer (killed, or out of memory in native code)."""


class FitWorker:
    """One spawned child process that runs fits on request (see module docstring).

    Args:
        memory_limit_mb: the child's address-space limit in MiB (0 = none; POSIX only).
    """

    def __init__(self, memory_limit_mb: int = 0) -> None:
        self.memory_limit_mb = memory_limit_mb
        self._lock = threading.Lock()
        self._child: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (tests, logs)."""
        return None if self._child is None else self._child.pid

    def run(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        *,
        progress: Progress,
        cancel: threading.Event,
    ) -> Any:
        """``fn(*args, progress=report)`` in the child; returns what it returns.

        Args:
            fn: a module-level function (the child imports it by name); its result must pickle.
            args: its positional arguments (pickled to the child).
            progress: called in this thread with each ``(fraction, stage)`` the child reports.
            cancel: when set, the child is killed and :class:`FitCancelled` raised.

        Raises:
            FitCancelled: ``cancel`` was set.
            FitProcessDied: the child ended without an answer.
            Exception: what ``fn`` raised, re-raised here with its type when it pickles.
        """
        with self._lock:
            conn = self._start()
            conn.send((fn, args))
            while True:
                if cancel.is_set():
                    self._kill()
                    raise FitCancelled("the fit was cancelled: the server is stopping")
                try:
                    if not conn.poll(_POLL_S):
                        continue
                    kind, payload = conn.recv()
                except (EOFError, OSError):
                    code = self._kill()
                    raise FitProcessDied(
                        f"the fit process ended without an answer (exit code {code}; a negative "
                        "code is the signal that ended it, e.g. -9 when killed for memory)"
                    ) from None
                if kind == "progress":
                    progress(*payload)
                elif kind == "done":
                    return payload
                else:  # "failed": the child's exception, or its text when it does not pickle
                    if isinstance(payload, MemoryError):
                        self._kill()  # a child that ran out of memory starts afresh
                    raise payload if isinstance(payload, BaseException) else RuntimeError(payload)

    def close(self) -> None:
        """End the child; the next :meth:`run` starts a new one. An idle child exits by itself
        (its libraries clean up after themselves); one that is fitting is killed."""
        idle = self._lock.acquire(blocking=False)
        try:
            self._kill(graceful=idle)
        finally:
            if idle:
                self._lock.release()

    def _start(self) -> Connection:
        if self._child is not None and self._child.is_alive() and self._conn is not None:
            return self._conn
        self._kill()
        context = multiprocessing.get_context("spawn")
        mine, theirs = context.Pipe(duplex=True)
        child = context.Process(
            target=_child_main,
            args=(theirs, self.memory_limit_mb, os.getpid()),
            name="wavemae-fit",
            daemon=True,  # ended by multiprocessing's exit handler if this process exits first
        )
        child.start()
        theirs.close()  # the child holds the other end: EOF here means the child is gone
        self._child, self._conn = child, mine
        return mine

    def _kill(self, *, graceful: bool = False) -> int | None:
        """End and reap the child (killed, or given 5 s to exit on its own when ``graceful``);
        its exit code (None when there was none)."""
        child, conn = self._child, self._conn
        self._child = self._conn = None
        if conn is not None:
            conn.close()  # an idle child reads EOF and returns
        if child is None:
            return None
        if graceful:
            child.join(5)
        if child.is_alive():
            child.kill()
        child.join(10)
        code = child.exitcode
        child.close()
        return code


def _child_main(conn: Connection, memory_limit_mb: int, parent: int) -> None:
    """The child: bound itself, then run each ``(fn, args)`` it is sent, answering
    ``("progress", (fraction, stage))``\\* then ``("done", result)`` or ``("failed", error)``."""
    for name in _ONE_CORE:  # before numpy/numba start their thread pools
        os.environ[name] = "1"
    if memory_limit_mb > 0:
        try:
            import resource

            limit = memory_limit_mb * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):  # no RLIMIT_AS on this platform
            pass
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()

    def report(fraction: float, stage: str) -> None:
        conn.send(("progress", (float(fraction), str(stage))))

    while True:
        try:
            fn, args = conn.recv()
        except EOFError:  # the parent closed its end: nothing more to do
            return
        try:
            result = fn(*args, progress=report)
        except BaseException as exc:  # reported to the parent, which re-raises it
            try:
                conn.send(("failed", exc))
            except Exception:  # an exception that does not pickle travels as its text
                conn.send(("failed", f"{type(exc).__name__}: {exc}"))
            continue
        conn.send(("done", result))
        del result, fn, args  # free the fit's arrays before waiting for the next one


def _exit_when_orphaned(parent: int) -> None:
    """End this process once its parent is gone (a killed server leaves no fit running)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)
