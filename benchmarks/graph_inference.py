"""C1-C3: a deferc conv net at one batch size, checked against every peer, then timed.

Same rules as the dense workloads (``inference``): every peer is built from the weights ours
was compiled with, must reproduce our output before it is timed, and all contenders are timed
in shared rounds. NCHW peers receive a transposed copy of the input made before timing; their
output is transposed back only for the check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from . import ours_graph
from .context import RunContext
from .inference import check_and_time, comparison_rows, skipped_rows
from .ours import DEFERC
from .peers import GRAPH_BUILDERS
from .records import Row, Target


@dataclass(frozen=True)
class GraphWorkload:
    """The model ``ours_graph.MODELS[model]`` on ``batch`` images of ``input_shape`` (NHWC)."""

    id: str
    title: str
    model: str
    architecture: str  # one line for the table caption
    input_shape: tuple[int, int, int]
    batch: int
    peers: tuple[str, ...] = ("numpy", "torch", "onnxruntime")
    targets: dict[str, Target] = field(default_factory=dict)  # peer name -> target

    @property
    def case(self) -> str:
        h, w, c = self.input_shape
        return f"batch {self.batch}, {h}x{w}x{c}"

    def steps(self) -> int:
        return 2 + len(self.peers)


def run_graph_inference(ctx: RunContext, wl: GraphWorkload) -> list[Row]:
    """Build ours, check every peer against it, then time all of them in shared rounds."""
    if ctx.ours.name != DEFERC:
        # The conv models come from deferc itself; a stand-in has nothing to build them from.
        return skipped_rows(wl, wl.steps(), ctx, "conv workloads need deferc")
    bar = ctx.progress
    bar.describe(f"{wl.id}: build ours ({ctx.ours.name})")
    built = ours_graph.build(wl.model, wl.input_shape, ctx.seed)
    x = np.random.default_rng(ctx.seed).standard_normal(
        (wl.batch, *wl.input_shape)).astype(np.float32)
    expected = np.array(built.run(x), copy=True)  # ours may reuse its output buffer
    bar.step()

    def attempt(name: str) -> tuple[Callable[[], object], np.ndarray]:
        peer = GRAPH_BUILDERS[name](built.spec)
        native = peer.prepare(x)
        return (lambda: peer.run(native)), peer.to_ours(peer.run(native))

    timings, statuses = check_and_time(ctx, wl.id, lambda: built.run(x), expected,
                                       {name: partial(attempt, name) for name in wl.peers})
    return comparison_rows(wl.id, wl.case, wl.peers, timings, built.spec.flops(wl.batch),
                           wl.targets, statuses)


def describe(wl: GraphWorkload) -> str:
    """Table caption: ``LeNet-5 (2 conv + ...), batch 64, 28x28x1``."""
    return f"{wl.title} ({wl.architecture}), {wl.case}"
