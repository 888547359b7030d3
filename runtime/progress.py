"""Progress, not silence: one line on stderr when compiling takes more than a couple of seconds.

A cold numba cache can make a first call take a minute; without a word the user cannot tell a
compiling process from a hung one. ``reporting`` starts a timer; if the compilation is still
running after ``$DEFERC_PROGRESS_AFTER`` seconds (default 2), it prints one line saying what is
being compiled, where the result is cached and how to avoid the wait (``python -m
runtime.warmup``). ``DEFERC_QUIET=1`` silences it. Nested reports (a plan's background build
containing its first-run compile) print at most one line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

from .cache import cache_dir

DEFAULT_AFTER_S = 2.0
_active = threading.local()


def quiet() -> bool:
    """``$DEFERC_QUIET`` set to anything but ``""``/``"0"``."""
    return os.environ.get("DEFERC_QUIET", "") not in ("", "0")


def _after() -> float:
    try:
        return float(os.environ.get("DEFERC_PROGRESS_AFTER", DEFAULT_AFTER_S))
    except ValueError:
        return DEFAULT_AFTER_S


def message(what: str, tiered: bool = False) -> str:
    meanwhile = ("; calls run on the lower tier (NumPy reference) meanwhile" if tiered
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
    timer = threading.Timer(_after(), _say, args=(message(what, tiered),))
    timer.daemon = True
    _active.depth = 1
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        _active.depth = 0


def _say(line: str) -> None:
    if not quiet():
        print(line, file=sys.stderr, flush=True)
