"""Module-level functions for the fit process tests: a spawned child imports them by name, so
they live in a module without heavy imports (the child's address space may be limited)."""

from __future__ import annotations

import os
import time


def alive(pid: int) -> bool:
    """Whether process ``pid`` still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def report_and_answer(value: int, *, progress) -> dict:
    """Reports two stages, then answers ``value`` and the child's pid."""
    progress(0.25, "first quarter")
    progress(0.5, "half way")
    return {"value": value, "pid": os.getpid()}


def refuse(field: str, *, progress) -> None:
    raise ValueError(f"{field} is not acceptable")


def sleep_forever(*, progress) -> None:
    progress(0.1, "sleeping")
    while True:
        time.sleep(0.1)


def allocate(gib: int, *, progress) -> int:
    return len(bytearray(gib * 2**30))
