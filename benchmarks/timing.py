"""Wall-clock measurement of one callable: warm-up, calibrated inner loop, robust statistics.

A single call of a small model takes microseconds, far below timer and scheduler noise, so each
repetition runs ``k`` calls back to back with ``k`` chosen to make a repetition last at least
``min_rep_s``; we report the median and inter-quartile range of the per-call time across
repetitions, which shrug off the odd preempted repetition on a shared 2-core machine.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

MIN_REP_S = 0.020
#: Upper bound on inner calls, so calibration noise on a ~100 ns call cannot explode run time.
MAX_INNER = 100_000


@dataclass(frozen=True)
class Timing:
    """Per-call seconds: ``median`` and ``iqr`` over ``repeat`` repetitions of ``inner`` calls."""

    median: float
    iqr: float
    inner: int
    repeat: int
    samples: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _calibrate(fn: Callable[[], object], min_rep_s: float) -> int:
    """Smallest ``k`` (doubling) such that ``k`` calls take at least ``min_rep_s``."""
    k = 1
    while True:
        start = time.perf_counter_ns()
        for _ in range(k):
            fn()
        elapsed = (time.perf_counter_ns() - start) * 1e-9
        if elapsed >= min_rep_s or k >= MAX_INNER:
            return k
        # Jump straight to the estimate (plus margin); never less than doubling.
        k = min(MAX_INNER, max(2 * k, math.ceil(k * min_rep_s / max(elapsed, 1e-9) * 1.2)))


def _repetition(fn: Callable[[], object], inner: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(inner):
        fn()
    return (time.perf_counter_ns() - start) * 1e-9 / inner


def measure(fn: Callable[[], object], repeat: int, warmup: int = 3,
            min_rep_s: float = MIN_REP_S) -> Timing:
    """Time ``fn()``; the first calls (JIT, allocator, caches) are discarded as warm-up."""
    for _ in range(warmup):
        fn()
    inner = _calibrate(fn, min_rep_s)
    return summarize([_repetition(fn, inner) for _ in range(repeat)], inner)


def measure_rounds(fns: dict[str, Callable[[], object]], repeat: int, warmup: int = 3,
                   min_rep_s: float = MIN_REP_S, rounds: int = 3,
                   between: Callable[[], None] = lambda: None) -> dict[str, Timing]:
    """Time several callables on the same inputs, fairly on a machine whose load drifts.

    Each callable's ``repeat`` repetitions are split over ``rounds`` rounds; within a round
    every callable runs its share as one contiguous block (so one library's lingering worker
    threads are not billed to the next call of another), and ``between()`` runs before each
    block. Background load that comes and goes then lands on all contenders alike.
    """
    inner = {}
    for name, fn in fns.items():
        between()
        for _ in range(warmup):
            fn()
        inner[name] = _calibrate(fn, min_rep_s)
    rounds = max(1, min(rounds, repeat))
    shares = [repeat // rounds + (i < repeat % rounds) for i in range(rounds)]
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for share in shares:
        for name, fn in fns.items():
            between()
            samples[name] += [_repetition(fn, inner[name]) for _ in range(share)]
    return {name: summarize(samples[name], inner[name]) for name in fns}


def summarize(samples: list[float], inner: int = 1) -> Timing:
    """Median and IQR of per-call samples (IQR is 0 with fewer than two samples)."""
    if len(samples) >= 2:
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
        iqr = q3 - q1
    else:
        iqr = 0.0
    return Timing(statistics.median(samples), iqr, inner, len(samples), tuple(samples))
