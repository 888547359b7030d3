"""Subclassed models, the Keras way: ``Model()`` with no arguments, layers as attributes, and a
``call`` that is traced on symbolic tensors each time the model is lowered.

Sub-layers are found from the model's attributes (a layer, or a list/tuple of layers), in the
order they were assigned; they are the model's layers (weights, names, ``get_weights`` order).
"""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import CompilerError
from .sublayers import tracked_layers
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


# -- configs (Keras: a subclassed model's architecture is its class + its get_config) ----------
def defines_get_config(model: Any) -> bool:
    """Does the model's own class (not ``Model``/``Sequential``) define ``get_config``?"""
    from .models import Model

    return type(model).get_config is not Model.get_config


def subclassed_to_config(model: Any) -> dict:
    """``{"class_name", "config"}`` of a subclassed model, from its class's ``get_config``
    (what ``__init__`` takes); Keras refuses without one, and so do we."""
    cls = type(model).__name__
    if not defines_get_config(model):
        raise CompilerError(
            f"model '{model.name}' is a subclassed Model ({cls}) without get_config(): its "
            f"architecture is its Python class, and Keras needs get_config() returning the "
            f"arguments of {cls}.__init__ to save it. Define get_config, or save the weights with "
            f"save_weights and rebuild it with {cls}(...)")
    config = model.get_config()
    if not isinstance(config, dict):
        raise CompilerError(f"{cls}.get_config() must return a dict of __init__ arguments, "
                            f"received {type(config).__name__}")
    return {"class_name": cls, "config": dict(config), "subclassed": True}


def subclassed_from_config(cls: type, config: dict) -> Any:
    """A new ``cls`` from its ``get_config`` output (Keras: ``cls(**config)``), fresh weights."""
    try:
        return cls(**config)
    except TypeError as e:
        raise CompilerError(f"{cls.__name__}(**config) failed ({e}); its get_config() must "
                            f"return exactly the arguments of {cls.__name__}.__init__") from None
