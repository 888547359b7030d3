"""Layers held by another layer's attributes: Keras' most common subclassing pattern.

A custom ``Layer`` (or a subclassed ``Model``) creates layers in ``__init__`` (or ``build``) and
calls them in ``call``: ``self.dense = layers.Dense(8)``, also in lists, tuples and dicts
(``self.blocks = [Dense(8), Dense(8)]``), in public or private attributes (``self._proj``).
They are found in the order they were assigned and named uniquely among their siblings
(``dense``, ``dense_1``); their weights are keyed under the owner (``"my_block/dense/kernel"``)
and count as the owner's weights (``weights``, ``get_weights``, ``set_weights``,
``count_params``), own weights first, as in Keras.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import CompilerError, ShapeError
from .layers import Layer

#: Attributes the framework itself sets that may hold layers (a model's layer list, the eager
#: models some layers cache): never a user's sub-layers.
FRAMEWORK_ATTRS = frozenset({"_layers", "_calls", "_inputs", "_outputs", "_eager_model",
                             "_eager_models"})


def tracked_layers(owner: Any) -> list[Layer]:
    """The layers in ``owner``'s attributes, public or private (also inside lists, tuples and
    dict values, nested), once each, in assignment order; as Keras 3's tracker finds them."""
    found: dict[int, Layer] = {}

    def visit(value: Any) -> None:
        if isinstance(value, Layer):
            if value is not owner:
                found.setdefault(id(value), value)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)

    for attr, value in vars(owner).items():
        if attr not in FRAMEWORK_ATTRS:
            visit(value)
    return list(found.values())


def name_uniquely(owner: str, layers: Sequence[Layer],
                  renamable: Callable[[Layer], bool]) -> None:
    """Give unnamed layers unique Keras-style names among ``layers``; refuse two layers with one
    name. A layer named automatically for which ``renamable`` holds is renamed when a sibling
    already has its name (as Keras' global name counters would have named it)."""
    rename = {id(x) for x in layers if x._auto_named and renamable(x)}
    taken: set = {x._name for x in layers if x._name is not None and id(x) not in rename}
    for layer in layers:
        if id(layer) in rename:
            if layer._name in taken:
                layer._name = None
            else:
                taken.add(layer._name)
                continue
        if layer._name is None:
            layer._assign_name(taken)
            taken.add(layer.name)
    counts = Counter(x.name for x in layers)
    dupes = sorted(n for n, c in counts.items() if c > 1)
    if dupes:
        raise CompilerError(f"{owner}: layer names must be unique, {dupes} appear more than "
                            f"once")


def sublayers(layer: Any) -> list[Layer]:
    """A custom layer's sub-layers, named uniquely among themselves; ``[]`` for a built-in
    layer (cheap: lowering a 10,000-layer model asks once per layer)."""
    if not layer._traced:
        return []
    found = tracked_layers(layer)
    if found:
        ids = [id(x) for x in found]
        if layer.__dict__.get("_named_sublayers") != ids:
            name_uniquely(f"layer '{layer.name}' ({type(layer).__name__})", found,
                          lambda x: True)
            layer.__dict__["_named_sublayers"] = ids
    return found


def all_weights(layer: Any) -> list:
    """``(layer, parameter)`` for the layer's own weights, then its sub-layers', each once."""
    out: list = []
    seen: set = set()

    def walk(x: Any) -> None:
        if x.is_model:
            for inner in x.layers:
                walk(inner)
            return
        for p in x.param_names:
            var = x.variable(p)
            if id(var) not in seen:
                seen.add(id(var))
                out.append((x, p))
        for sub in sublayers(x):
            walk(sub)

    walk(layer)
    return out


def composite_built(layer: Any) -> bool:
    return all(sub.built for sub in sublayers(layer))


def set_composite_weights(layer: Any, weights: Sequence[np.ndarray]) -> None:
    """``set_weights`` of a layer with sub-layers, in ``get_weights`` order; all-or-nothing."""
    entries = all_weights(layer)
    weights = list(weights)
    if len(weights) != len(entries):
        raise ShapeError(f"layer '{layer.name}' ({type(layer).__name__}) has {len(entries)} "
                         f"weight arrays (with its sub-layers'), received {len(weights)}")
    for (owner, p), w in zip(entries, weights):
        var = owner.variable(p)
        if var.value is None:
            raise CompilerError(f"layer '{layer.name}': weight '{owner.name}/{p}' does not "
                                f"exist yet; call the layer (or its model) on data first")
        if np.shape(w) != var.value.shape:
            raise ShapeError(f"layer '{layer.name}': weight '{owner.name}/{p}' expects shape "
                             f"{var.value.shape}, received {np.shape(w)}")
        if np.asarray(w).dtype.kind not in "fiu":
            raise CompilerError(f"layer '{layer.name}': weight '{owner.name}/{p}' must be "
                                f"numeric, received dtype {np.asarray(w).dtype}")
    for (owner, p), w in zip(entries, weights):
        with owner._lock:
            owner.variable(p)._set(np.asarray(w), in_place=True)
