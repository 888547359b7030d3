"""``model.summary()``: what is known about every layer, before and after initialization."""

from __future__ import annotations

import math
from typing import Any

from ..errors import CompilerError
from ..symbolic import format_shape


def _layer_outputs(model: Any) -> dict:
    """Output type of each top-level layer's first use (a nested model's too), from shape
    propagation on the known inputs.

    A layer may lower to several nodes (a traced custom layer, a nested model): its output is
    what its ``lower`` returned. Custom layers are not built by a summary (a dry-run build).
    """
    from ..lowering import lower
    from ..passes import CompileContext, propagate_shapes
    from .tracing import build_scope

    outputs: dict = {}
    try:
        with build_scope(dry_run=True):
            graph = lower(model, model.assumed_input_types(), layer_outputs=outputs)
            propagate_shapes(graph, CompileContext())
    except CompilerError:
        return {}
    return {name: graph.nodes[nodes[0]]["type"] for name, nodes in outputs.items() if nodes}


def _typed(t: Any, model_dtype: Any) -> str:
    """A value's shape, with its dtype when that is not the model's (``(N, 5) int32``)."""
    shape = format_shape(t.shape)
    return shape if t.dtype == model_dtype else f"{shape} {t.dtype}"


def render_summary(model: Any) -> str:
    outputs = _layer_outputs(model)
    rows = [("Layer (type)", "Output Shape", "Param #", "Weights")]
    for layer in model.layers:
        t = outputs.get(layer.name)
        shape = _typed(t, model.dtype) if t is not None else "?"
        count = layer.count_params()
        if layer.is_model:
            n = len(layer._weight_entries())
            weights = f"{n} weight{'s' if n != 1 else ''} (nested)" if n else "-"
        else:
            weights = ", ".join(f"{p} {format_shape(tuple(s))}"
                                for p, s in layer.param_shapes.items())
        rows.append((f"{layer.name} ({type(layer).__name__})", shape,
                     "?" if count is None else f"{count:,}", weights or "-"))
    # Totals count every weight once, however many layers or nested models share it.
    known_total, unknown = 0, False
    for _, layer, pname in model._weight_entries():
        shape = layer.param_shapes.get(pname, ())
        if all(isinstance(d, int) for d in shape):
            known_total += math.prod(shape)
        else:
            unknown = True
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    inputs = ", ".join(_typed(t, model.dtype) for t in model.assumed_input_types())
    state = "initialized" if model.built else "not initialized (deferred)"
    total = f"? ({known_total:,} known so far)" if unknown else f"{known_total:,}"
    return "\n".join([f'Model: "{model.name}"  input: {inputs}  weights: {state}', line, body[0],
                      line, *body[1:], line, f"Total params: {total}"])
