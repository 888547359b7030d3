"""W6: shape propagation + weight initialisation of very deep MLPs (``net.build``).

Guards against accidentally quadratic passes: 10,000 layers must build in about a second and no
more than ~12x the 1,000-layer time (10x would be perfectly linear).
"""

from __future__ import annotations

import gc

from .context import RunContext
from .records import Row, Target
from .timing import summarize

WIDTH = 32
SIZES = (1_000, 10_000)
TEN_K_SECONDS = Target("value", "<=", 1.0, "<= 1 s")
SCALING = Target("time_ratio", "<=", 12.0, "<= 12x the 1k time")


def _build_times(ctx: RunContext, n_layers: int, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        gc.collect()  # don't bill this build for the previous one's garbage
        times.append(ctx.ours.build_seconds(n_layers, WIDTH))
    return times


def run_w6(ctx: RunContext) -> list[Row]:
    bar = ctx.progress
    bar.describe("W6: warm-up build")
    ctx.ours.build_seconds(10, WIDTH)  # imports and first-call costs are not W6's subject
    reps = {1_000: 2 if ctx.quick else 7, 10_000: 1 if ctx.quick else 3}
    stats = {}
    for n in SIZES:
        bar.describe(f"W6: build {n} layers")
        stats[n] = summarize(_build_times(ctx, n, reps[n]))
        bar.step()
    small, big = stats[SIZES[0]], stats[SIZES[1]]
    return [
        Row("W6", "build 1k layers", ours=small.median, ours_iqr=small.iqr, plot=False,
            extra={"samples": small.samples}),
        Row("W6", "build 10k layers", ours=big.median, ours_iqr=big.iqr, target=TEN_K_SECONDS,
            plot=False, extra={"samples": big.samples}),
        Row("W6", "10k vs 1k scaling", peer="ours @ 1k layers", ours=big.median,
            ours_iqr=big.iqr, peer_value=small.median, peer_iqr=small.iqr, target=SCALING,
            plot=False),
    ]
