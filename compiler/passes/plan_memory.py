"""Memory planning: intermediate values share one arena when their lifetimes do not overlap.

Liveness comes from the schedule (a value lives from the step that writes it to the last step
that reads it, through any alias views). Graph inputs and outputs stay outside the arena: inputs
belong to the caller, outputs are handed to the caller. Sizes may be symbolic (the batch), so the
pass records lifetimes and size expressions, and ``assign_offsets`` places buffers once the sizes
are concrete (the runtime caches that per input shape).

The arena is byte-addressed: each buffer holds one value in that value's own dtype (an int64
index next to a bool mask next to float32 activations), so sizes and offsets are in bytes, and
every offset is a multiple of ``ALIGN_BYTES`` (aligned SIMD loads, and a valid start for a view
of any itemsize).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from ..symbolic import DimLike, mul

#: Arena offsets are multiples of this many bytes (a cache line; aligned SIMD loads).
ALIGN_BYTES = 64
#: Offsets into the packed weight buffer (model dtype) are multiples of this many elements.
ALIGN_ELEMENTS = 16


@dataclass(frozen=True)
class Buffer:
    node: int          # the step that writes it
    size: DimLike      # elements, possibly symbolic
    first: int         # index of the writing step
    last: int          # index of the last reading step (>= first)
    itemsize: int = 4  # bytes per element of the value's dtype


@dataclass(frozen=True)
class MemoryPlan:
    buffers: tuple          # arena buffers (Buffer), in schedule order
    outputs: tuple          # step nodes whose buffer is a graph output (allocated per call)
    root: dict              # value node -> the node whose buffer it views (alias chains)

    def sizes(self, bindings: dict) -> dict:
        """Bytes per buffer for these dim bindings."""
        return {b.node: _evaluate(b.size, bindings) * b.itemsize for b in self.buffers}


def _evaluate(size: DimLike, bindings: dict) -> int:
    return size if isinstance(size, int) else size.evaluate(bindings)


def plan_memory(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Record ``graph.graph["memory"]``: the arena buffers with their lifetimes."""
    steps = g.graph["schedule"]
    root: dict = {n: n for n in g.graph["inputs"]}
    for step in steps:
        root[step.node] = root[step.inputs[0]] if step.alias else step.node
    last_use: dict = {}
    for i, step in enumerate(steps):
        for src in step.inputs:
            last_use[root[src]] = i
    outputs = {root[n] for n in g.graph["outputs"]}
    buffers = []
    for i, step in enumerate(steps):
        if step.alias or step.node in outputs:
            continue
        shape = g.nodes[step.node]["type"].shape
        size: DimLike = 1
        for d in shape:
            size = mul(size, d)
        buffers.append(Buffer(step.node, size, i, max(i, last_use.get(step.node, i)),
                              g.nodes[step.node]["type"].dtype.itemsize))
    g.graph["memory"] = MemoryPlan(tuple(buffers), tuple(sorted(outputs - set(
        g.graph["inputs"]))), root)
    return g


def assign_offsets(buffers, sizes: dict) -> tuple[dict, int]:
    """Greedy by size: largest first, each at the lowest offset free during its lifetime.

    ``sizes`` are in bytes (``MemoryPlan.sizes``). Returns (byte offset per buffer node, arena
    size in bytes).
    """
    by_step: dict = {}
    offsets: dict = {}
    arena = 0
    for buf in sorted(buffers, key=lambda b: (-sizes[b.node], b.first)):
        size = _aligned(sizes[buf.node])
        busy = sorted({(offsets[n], offsets[n] + _aligned(sizes[n]))
                       for step in range(buf.first, buf.last + 1) for n in by_step.get(step, ())})
        offset = 0
        for start, end in busy:
            if offset + size <= start:
                break
            offset = max(offset, end)
        offsets[buf.node] = offset
        arena = max(arena, offset + size)
        for step in range(buf.first, buf.last + 1):
            by_step.setdefault(step, []).append(buf.node)
    return offsets, arena


def _aligned(n: int) -> int:
    return -(-n // ALIGN_BYTES) * ALIGN_BYTES
