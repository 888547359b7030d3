"""``model.summary()``: what is known about every layer, before and after initialization."""

from __future__ import annotations

from typing import Any

from ..errors import CompilerError
from ..symbolic import format_shape


def _layer_outputs(model: Any) -> dict:
    """Output type of each layer's first use, from shape propagation on the known inputs."""
    from ..lowering import lower
    from ..passes import CompileContext, propagate_shapes

    graph = lower(model, model.assumed_input_types())
    try:
        propagate_shapes(graph, CompileContext())
    except CompilerError:
        return {}
    out: dict = {}
    for node, data in graph.nodes(data=True):
        origin = data.get("origin")
        if origin is not None and data["op"] != "param":
            out.setdefault(origin.name, data["type"])
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
