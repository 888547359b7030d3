"""``--repeat-runs N``: the whole suite N times, reported as the median run with the spread.

One run's medians hide what changes between runs (thread placement, frequency, other tenants);
repeating the whole suite and keeping every run's ratio shows whether a target was met once or
reliably.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace

from .records import Row


def _key(row: Row) -> tuple:
    return row.workload, row.case, row.peer


def _value(row: Row) -> float | None:
    return row.ratio if row.ratio is not None else row.ours


def combine_runs(runs: Sequence[Sequence[Row]]) -> list[Row]:
    """One row per (workload, case, peer): the run whose value is the (lower) median, with every
    run's ratio in ``extra["ratio_runs"]`` (and ours in ``extra["ours_runs"]``).

    A row that failed in any run keeps that failure (a mismatch must not be voted away).
    """
    if len(runs) == 1:
        return list(runs[0])
    grouped: dict[tuple, list[Row]] = {}
    for rows in runs:
        for row in rows:
            grouped.setdefault(_key(row), []).append(row)
    combined = []
    for rows in grouped.values():
        failed = [r for r in rows if r.status != "ok"]
        if failed:
            combined.append(failed[0])
            continue
        measured = sorted((r for r in rows if _value(r) is not None), key=_value)
        chosen = measured[(len(measured) - 1) // 2] if measured else rows[0]
        extra = dict(chosen.extra, runs=len(rows),
                     ratio_runs=[r.ratio for r in rows if r.ratio is not None],
                     ours_runs=[r.ours for r in rows if r.ours is not None])
        combined.append(replace(chosen, extra=extra))
    return combined


def spread_text(row: Row) -> str:
    """``"0.61x-0.66x"`` over runs, or ``""`` for a single run."""
    ratios = row.extra.get("ratio_runs") or []
    if len(ratios) < 2:
        return ""
    return f"{min(ratios):.3g}x-{max(ratios):.3g}x"


def median_ratio(row: Row) -> float | None:
    ratios = row.extra.get("ratio_runs") or []
    return statistics.median(ratios) if ratios else row.ratio
