"""``plan.profile(*inputs)``: where a call's time goes, step by step.

Each step runs through the step executor (same kernels, same memory layout as a call) with a
timer around it, ``repeat`` times after a warm-up; the table gives each step's median time, its
share, and GFLOP/s from ``compiler.cost``. Per-step timing pays a Python round trip per step, so
the steps add up to more than a generated plan's single call; the table shows both totals.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from compiler.cost import step_flops


@dataclass(frozen=True)
class StepTime:
    index: int
    op: str
    kernel: str
    where: str
    shape: tuple
    seconds: float  # median over repeats
    iqr: float
    flops: int

    @property
    def gflops(self) -> float | None:
        return self.flops / self.seconds * 1e-9 if self.seconds > 0 and self.flops else None


@dataclass(frozen=True)
class Profile:
    steps: tuple
    call_seconds: float   # median of whole plan calls on the same inputs
    executor: str

    @property
    def step_seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    def table(self, top: int | None = None) -> str:
        """Steps slowest first (all, or the ``top`` slowest), then the totals."""
        total = self.step_seconds or 1.0
        rows = sorted(self.steps, key=lambda s: -s.seconds)[:top]
        lines = [f"{'#':>4} {'op':<18} {'where':<28} {'output':<20} {'time':>10} "
                 f"{'share':>6} {'GFLOP/s':>8}"]
        for s in rows:
            gf = f"{s.gflops:8.2f}" if s.gflops is not None else f"{'-':>8}"
            lines.append(f"{s.index:>4} {s.op[:18]:<18} {s.where[:28]:<28} "
                         f"{str(s.shape)[:20]:<20} {_fmt(s.seconds):>10} "
                         f"{100 * s.seconds / total:5.1f}% {gf}")
        flops = sum(s.flops for s in self.steps)
        lines.append(f"steps: {_fmt(self.step_seconds)} in {len(self.steps)} kernel calls; "
                     f"one plan call ({self.executor}): {_fmt(self.call_seconds)}; "
                     f"{flops / 1e9:.3g} GFLOP per call")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _fmt(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def _median_iqr(samples: list) -> tuple[float, float]:
    if len(samples) < 2:
        return samples[0], 0.0
    q1, q2, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return statistics.median(samples), q3 - q1


def profile_plan(plan: Any, inputs: tuple, repeat: int = 10, warmup: int = 2) -> Profile:
    """Time every step of ``plan`` on ``inputs`` (see the module docstring)."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, received {repeat}")
    for _ in range(warmup):
        plan(*inputs)  # compiles, binds the layout, syncs weights
    calls = []
    for _ in range(repeat):
        start = time.perf_counter()
        plan(*inputs)
        calls.append(time.perf_counter() - start)
    arrays, layout = plan._bind(inputs)
    steps = plan._steps
    samples: list[list[float]] = [[] for _ in steps]
    for rep in range(warmup + repeat):
        values, arena = plan._fresh_run(arrays, layout)
        for index in range(len(steps)):
            start = time.perf_counter()
            plan._run_step(index, values, arena, layout)
            if rep >= warmup:
                samples[index].append(time.perf_counter() - start)
    g = plan.graph
    out = []
    for index, step in enumerate(steps):
        if step.alias:
            continue
        node = g.nodes[step.node]
        shape = layout.step_shapes[index]
        in_shapes = [tuple(values[n].shape) for n in step.inputs]
        params = {name: tuple(plan._values[p].shape)
                  for name, p in zip(plan._param_names(step), step.params) if p is not None}
        seconds, iqr = _median_iqr(samples[index])
        out.append(StepTime(index, node["op"], step.kernel, step.where.removeprefix("layer "),
                            tuple(shape), seconds, iqr,
                            step_flops(node["op"], in_shapes, tuple(shape), params)))
    return Profile(tuple(out), statistics.median(calls), plan.executor)
