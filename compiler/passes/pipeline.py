"""Runs passes in order, recording name, time and (on request) the IR after each one."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from ..ir import dump, verify
from ..ops import Unifier
from ..weights import PendingWeights, WeightStore

Pass = Callable[[nx.DiGraph, "CompileContext"], nx.DiGraph]


@dataclass
class PassRecord:
    name: str
    seconds: float
    nodes_before: int
    nodes_after: int
    ir: str | None = None

    def __str__(self) -> str:
        return (f"{self.name:<18} {self.seconds * 1e3:8.2f} ms  "
                f"{self.nodes_before:>5} -> {self.nodes_after:<5} nodes")


@dataclass
class CompileContext:
    """State shared by one pipeline run.

    ``weights`` is what every pass reads weights through: the arrays created in this run
    (``initialize``) on top of ``store``, the model's weights. They reach the store only when the
    whole pipeline succeeded (``commit_weights``), so a failing build changes nothing.
    """

    seed: int | None = None
    options: dict = field(default_factory=dict)
    disabled: frozenset = frozenset()
    dump_ir: bool = False
    #: run ``ir.verify`` after every pass (default from ``DEFERC_VERIFY_EACH=1``; the tests set it)
    verify_each: bool = field(default_factory=lambda: os.environ.get("DEFERC_VERIFY_EACH") == "1")
    unifier: Unifier = field(default_factory=Unifier)
    store: WeightStore | None = None
    records: list = field(default_factory=list)
    weights: PendingWeights = field(init=False)

    def __post_init__(self) -> None:
        self.weights = PendingWeights(self.store)

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)


def run_pipeline(graph: nx.DiGraph, passes: Sequence[Pass], ctx: CompileContext) -> nx.DiGraph:
    """Apply ``passes`` in order, skipping disabled ones by name.

    A context without a store reads the weights of the store the graph was lowered from.
    """
    if ctx.store is None and graph.graph.get("weights") is not None:
        ctx.store = graph.graph["weights"]
        ctx.weights = PendingWeights(ctx.store, ctx.weights.pending)
    for p in passes:
        name = p.__name__
        if name in ctx.disabled:
            continue
        before = graph.number_of_nodes()
        start = time.perf_counter()
        graph = p(graph, ctx)
        elapsed = time.perf_counter() - start
        if ctx.verify_each:
            verify(graph)
        ctx.records.append(PassRecord(name, elapsed, before, graph.number_of_nodes(),
                                      dump(graph) if ctx.dump_ir else None))
    return graph


def commit_weights(ctx: CompileContext) -> None:
    """Hand the weights created in this run to the model's store, all at once."""
    ctx.weights.commit()
