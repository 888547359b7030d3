"""``latest.png``: ours/peer time ratio per workload on a log axis, with each target marked."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .records import Row


def plot_unavailable_reason() -> str | None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        return f"matplotlib not importable ({exc}); no plot written"
    return None


def _target_as_time_ratio(row: Row) -> float | None:
    """Targets on GFLOP/s ratios become time-ratio bounds (same work, so ratio inverts)."""
    if row.target is None or row.target.metric == "value":
        return None
    return 1.0 / row.target.bound if row.target.metric == "gflops_ratio" else row.target.bound


def _label(row: Row) -> str:
    """Three short lines per bar, so neighbouring labels do not collide."""
    return "\n".join([row.workload, (row.peer or "").replace(" ", "\n"),
                      row.case.replace(", ", "\n")])


def write_plot(rows: Sequence[Row], path: Path, title: str) -> Path | None:
    """Bar per (workload, peer) with a measured ratio; returns ``None`` when nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [r for r in rows
            if r.plot and r.unit == "s" and r.ratio is not None and r.status == "ok"]
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.95 * len(bars) + 2), 4.8))
    xs = range(len(bars))
    colors = ["tab:green" if r.met else "tab:red" if r.met is False else "tab:gray" for r in bars]
    # Bars grow from 1.0 (parity) up or down, so "faster" and "slower" read at a glance.
    ax.bar(xs, [r.ratio - 1.0 for r in bars], bottom=1.0, color=colors)
    for x, r in zip(xs, bars):
        bound = _target_as_time_ratio(r)
        if bound is not None:
            ax.hlines(bound, x - 0.4, x + 0.4, colors="black", linestyles="dashed")
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([_label(r) for r in bars], fontsize=7)
    ax.set_ylabel("time ours / peer (log; < 1 = ours faster)")
    ax.set_title(title + "\n(dashed: target; green met, red missed, gray no target)", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path
