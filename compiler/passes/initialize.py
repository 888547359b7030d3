"""Initialization: create exactly the weights whose shapes shape propagation made concrete.

New arrays go to ``ctx.new_weights`` and to the param nodes' ``value``; the layers receive them
only after the whole pipeline succeeded (``commit_weights``).
"""

from __future__ import annotations

import networkx as nx

from ..errors import DeferredInitializationError, ShapeError
from ..frontend.initializers import parameter_rng
from ..ir import layer_name
from ..symbolic import Dim, format_shape

_SPATIAL_HINT = ("; or make the layer independent of them, e.g. GlobalAveragePooling2D instead of "
                 "Flatten before a Dense layer")


def initialize(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Attach a ``value`` to every param node, allocating the missing ones (seeded)."""
    from .. import random as deferc_random

    for node, data in g.nodes(data=True):
        if data["op"] != "param":
            continue
        layer, pname, t = data["layer"], data["param"], data["type"]
        existing = layer._weights.get(pname)
        if existing is not None:
            if tuple(existing.shape) != tuple(t.shape):
                raise ShapeError(f"layer '{layer.name}': weight {pname} has shape "
                                 f"{existing.shape}, the model needs {format_shape(t.shape)}")
            if existing.dtype != t.dtype:  # weights set before the model's dtype was known
                existing = existing.astype(t.dtype)
                ctx.new_weights[(layer, pname)] = existing
            data["value"] = existing
            continue
        _require_concrete(g, node, layer, pname, t)
        init = layer.initializer(pname)
        seed = init.seed if init.seed is not None else (
            ctx.seed if ctx.seed is not None else deferc_random.get_seed())
        rng = parameter_rng(seed, layer.name, pname)
        value = init(t.shape, layer.dtype or t.dtype, rng)
        ctx.new_weights[(layer, pname)] = value
        data["value"] = value
    return g


def _require_concrete(g, node, layer, pname, t) -> None:
    if t.shape is None or any(d is None for d in t.shape):
        raise DeferredInitializationError(
            f"layer '{layer.name}': cannot create {pname} {format_shape(t.shape)}, its input "
            f"size is unknown. Call the model on data, or build it with an input shape, e.g. "
            f"net.build((None, 20)).")
    symbolic = sorted({s for d in t.shape if isinstance(d, Dim) for s in d.free_symbols})
    if symbolic:
        user = next(iter(g.successors(node)), None)
        where = f" (used by '{layer_name(g, user)}')" if user is not None else ""
        hint = _SPATIAL_HINT if any(s[0] in "HW" for s in symbolic) else ""
        raise DeferredInitializationError(
            f"layer '{layer.name}'{where}: {pname} would have shape {format_shape(t.shape)}, which"
            f" depends on input dims {', '.join(symbolic)} that are only known at run time. "
            f"Give those dims concrete sizes in the input shape{hint}.")
