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


#: Workload families by id prefix: one panel each, so labels stay readable as rows grow.
FAMILIES = {"W": "MLPs", "C": "CNNs", "S": "sequence models", "R": "ONNX models",
            "T": "cold start", "D": "scale-out"}


def family(workload: str) -> str:
    return FAMILIES.get(workload[:1], "other")


def _label(row: Row) -> str:
    """Short lines per bar, so neighbouring labels do not collide."""
    return "\n".join([row.workload, (row.peer or "").replace(" ", "\n"),
                       row.case.replace(", ", "\n")])


def group_by_family(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """Plottable rows (a time ratio was measured) per family, in the order rows came."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        if r.plot and r.unit == "s" and r.ratio is not None and r.status == "ok":
            groups.setdefault(family(r.workload), []).append(r)
    return groups


def write_plot(rows: Sequence[Row], path: Path, title: str) -> Path | None:
    """One panel per workload family, a bar per (workload, case, peer): ours/peer time on a log
    axis from parity, the target dashed; returns ``None`` when nothing was measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = group_by_family(rows)
    if not groups:
        return None
    widths = [max(3.0, 0.9 * len(bars) + 1.2) for bars in groups.values()]
    fig, axes = plt.subplots(1, len(groups), figsize=(sum(widths) + 1, 5.2), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for ax, (name, bars) in zip(axes[0], groups.items()):
        _panel(ax, name, bars)
    axes[0][0].set_ylabel("time ours / peer (log; < 1 = ours faster)")
    fig.suptitle(title + "  (dashed: target; green met, red missed, gray no target)",
                 fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _panel(ax, name: str, bars: Sequence[Row]) -> None:
    xs = range(len(bars))
    colors = ["tab:green" if r.met else "tab:red" if r.met is False else "tab:gray" for r in bars]
    # Bars grow from 1.0 (parity) up or down, so "faster" and "slower" read at a glance.
    ax.bar(xs, [r.ratio - 1.0 for r in bars], bottom=1.0, color=colors)
    for x, r in zip(xs, bars):
        bound = _target_as_time_ratio(r)
        if bound is not None:
            ax.hlines(bound, x - 0.4, x + 0.4, colors="black", linestyles="dashed")
        spread = r.extra.get("ratio_runs")
        if spread and len(spread) > 1:  # --repeat-runs: the range over whole-suite runs
            ax.vlines(x, min(spread), max(spread), colors="black", linewidth=1)
        ax.annotate(f"{r.ratio:.2g}x", (x, r.ratio), ha="center", fontsize=6,
                    xytext=(0, 2 if r.ratio >= 1 else -8), textcoords="offset points")
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([_label(r) for r in bars], fontsize=6)
    ax.set_title(name, fontsize=9)
