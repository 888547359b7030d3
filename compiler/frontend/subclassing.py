"""Subclassed models, the Keras way: ``Model()`` with no arguments, layers as attributes, and a
``call`` that is traced on symbolic tensors each time the model is lowered.

Sub-layers are found from the model's attributes (a layer, or a list/tuple of layers), in the
order they were assigned; they are the model's layers (weights, names, ``get_weights`` order).
"""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import CompilerError
from .layers import Layer
from .tracing import emit_traced, input_types, run_call


def init_subclassed(model: Any, name: str | None, dtype: Any) -> None:
    if not callable(getattr(type(model), "call", None)):
        raise CompilerError(f"{type(model).__name__}: Model() without inputs and outputs is the "
                            f"subclassing form; define call(self, inputs)")
    model._init_common(name, dtype)  # no name: ``my_model``, like any layer
    model._subclassed = True
    model._single_output = True
    model._layers = []
    model._inputs = [None] * _positional_arity(type(model).call)
    model._outputs = []


def _positional_arity(call: Any) -> int:
    params = list(inspect.signature(call).parameters.values())[1:]
    return max(1, sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                      and p.default is p.empty))


def tracked_layers(model: Any) -> list[Layer]:
    """The layers held by the model's public attributes (also in lists and tuples), once each."""
    found: dict[int, Layer] = {}
    for attr, value in vars(model).items():
        if attr.startswith("_"):
            continue
        items = value if isinstance(value, (list, tuple)) else (value,)
        for item in items:
            if isinstance(item, Layer):
                found.setdefault(id(item), item)
    return list(found.values())


def refresh_layers(model: Any) -> None:
    layers = tracked_layers(model)
    if [id(x) for x in layers] != [id(x) for x in model._layers]:
        model._layers = layers
        model._name_layers()


def lower_subclassed(model: Any, builder: Any, input_nodes: list[int]) -> list[int]:
    """Trace ``model.call`` on the input types and emit its layer calls and ops."""
    refresh_layers(model)
    types = input_types(builder, input_nodes)  # inferred so far: it may be nested in a model
    tensors, out = run_call(model, types, builder.dtype)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    model._single_output = not isinstance(out, (list, tuple))
    return emit_traced(builder, tensors, input_nodes, outs, owner=None)
