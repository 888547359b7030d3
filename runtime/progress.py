"""Progress, not silence: one line on stderr when compiling takes more than a couple of seconds.

A cold numba cache can make a first call take a minute; without a word the user cannot tell a
compiling process from a hung one. ``reporting`` starts a timer; if the block is still running
after ``$DEFERC_PROGRESS_AFTER`` seconds (default 2) *and numba has compiled something in the
meantime* (a slow load from the cache is not compiling), it prints one line saying what is being
compiled, where the result is cached and how to avoid the wait (``python -m runtime.warmup``).
``DEFERC_QUIET=1`` silences it. Nested reports (a plan's background build containing its
first-run compile) print at most one line, and each model is named at most once per process
(compiling a model twice, or a plan and its pickled copy, says it once).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

from numba.core import event

from .cache import cache_dir

DEFAULT_AFTER_S = 2.0
RECHECK_S = 0.5
_active = threading.local()
_said: set[str] = set()  # what this process has already announced
_said_lock = threading.Lock()


class _Compilations(event.Listener):
    """Counts numba compilations process-wide (any thread)."""

    count = 0

    def on_start(self, ev: event.Event) -> None:
        _Compilations.count += 1

    def on_end(self, ev: event.Event) -> None:
        pass


event.register("numba:compile", _Compilations())


def quiet() -> bool:
    """``$DEFERC_QUIET`` set to anything but ``""``/``"0"``."""
    return os.environ.get("DEFERC_QUIET", "") not in ("", "0")


def _after() -> float:
    try:
        return float(os.environ.get("DEFERC_PROGRESS_AFTER", DEFAULT_AFTER_S))
    except ValueError:
        return DEFAULT_AFTER_S


def message(what: str, tiered: bool = False) -> str:
    meanwhile = ("; calls run on the lower tier (cached kernels and NumPy) meanwhile" if tiered
                 else "")
    return (f"deferc: compiling numba kernels for {what}{meanwhile}. Cached in {cache_dir()}; "
            f"`python -m runtime.warmup` does this ahead of time, DEFERC_QUIET=1 silences this.")


@contextlib.contextmanager
def reporting(what: str, tiered: bool = False) -> Iterator[None]:
    """Print ``message(what)`` once on stderr if the block runs longer than the threshold."""
    if quiet() or getattr(_active, "depth", 0):
        _active.depth = getattr(_active, "depth", 0) + 1
        try:
            yield
        finally:
            _active.depth -= 1
        return
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(done, _Compilations.count,
                                                    message(what, tiered), what), daemon=True)
    _active.depth = 1
    watcher.start()
    try:
        yield
    finally:
        done.set()
        _active.depth = 0


def _watch(done: threading.Event, start: int, line: str, what: str) -> None:
    """After the threshold, say ``line`` as soon as numba has compiled something, unless this
    process already said it for ``what``."""
    if done.wait(_after()):
        return
    while not done.is_set():
        if _Compilations.count > start:
            if quiet():
                return
            with _said_lock:
                if what in _said:
                    return
                _said.add(what)
            print(line, file=sys.stderr, flush=True)
            return
        done.wait(RECHECK_S)
