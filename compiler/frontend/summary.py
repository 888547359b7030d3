"""``model.summary()``: what is known about every layer, before and after initialization."""

from __future__ import annotations

from typing import Any

from ..errors import CompilerError
from ..symbolic import format_shape


def _layer_outputs(model: Any) -> dict:
    """Output type of each layer's first use, from shape propagation on the known inputs.

    A layer may lower to several nodes (a traced custom layer): its output is the last node of
    the first run of nodes it made. Custom layers are not built by a summary.
    """
    from ..lowering import lower
    from ..passes import CompileContext, propagate_shapes
    from .tracing import build_scope

    try:
        with build_scope(dry_run=True):
            graph = lower(model, model.assumed_input_types())
            propagate_shapes(graph, CompileContext())
    except CompilerError:
        return {}
    out: dict = {}
    done: set = set()
    previous = None
    for node in sorted(graph.nodes):
        data = graph.nodes[node]
        origin = data.get("origin")
        name = None if origin is None else origin.name
        if previous is not None and name != previous:
            done.add(previous)
        if name is not None and data["op"] != "param" and name not in done:
            out[name] = data["type"]
        previous = name
    return out


def render_summary(model: Any) -> str:
    outputs = _layer_outputs(model)
    rows = [("Layer (type)", "Output Shape", "Param #", "Weights")]
    known_total, unknown = 0, False
    for layer in model.layers:
        t = outputs.get(layer.name)
        shape = format_shape(t.shape) if t is not None else "?"
        count = layer.count_params()
        if count is None:
            unknown = True
            known_total += _known_part(layer)
        else:
            known_total += count
        weights = ", ".join(f"{p} {format_shape(tuple(s))}" for p, s in layer.param_shapes.items())
        rows.append((f"{layer.name} ({type(layer).__name__})", shape,
                     "?" if count is None else f"{count:,}", weights or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    inputs = ", ".join(format_shape(t.shape) for t in model.assumed_input_types())
    state = "initialized" if model.built else "not initialized (deferred)"
    total = f"? ({known_total:,} known so far)" if unknown else f"{known_total:,}"
    return "\n".join([f'Model: "{model.name}"  input: {inputs}  weights: {state}', line, body[0],
                      line, *body[1:], line, f"Total params: {total}"])


def _known_part(layer: Any) -> int:
    total = 0
    for shape in layer.param_shapes.values():
        if all(isinstance(d, int) for d in shape):
            n = 1
            for d in shape:
                n *= d
            total += n
    return total
