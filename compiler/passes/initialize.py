"""Initialization: create exactly the weights whose shapes shape propagation made concrete.

Weights are found by key through ``ctx.weights`` (this run's pending weights over the model's
store). New arrays go to the pending layer and to the param nodes' ``value``; the store receives
them only after the whole pipeline succeeded (``commit_weights``).
"""

from __future__ import annotations

import functools
import os

import networkx as nx
import numpy as np

from ..errors import CompilerError, DeferredInitializationError, ShapeError
from ..frontend.initializers import parameter_rng
from ..ir import layer_name
from ..symbolic import Dim, format_shape

_SPATIAL_HINT = ("; or make the layer independent of them, e.g. GlobalAveragePooling2D instead of "
                 "Flatten before a Dense layer")


def initialize(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Attach a ``value`` to every param node, allocating the missing ones (seeded)."""
    from .. import random as deferc_random

    unseeded = None  # one generator for every unseeded parameter of this run
    for node, data in g.nodes(data=True):
        if data["op"] != "param" or "derived" in data:  # derived (folded) values are final
            continue
        # a custom layer's weights all have the role "value"; ``weight`` is their own name
        key, pname, t = data["key"], data.get("weight", data["param"]), data["type"]
        where = layer_name(g, node)
        existing = ctx.weights.get(key)
        if existing is None and data.get("value") is not None:
            continue  # bound earlier in this graph's pipeline (e.g. a pass run again)
        if existing is not None:
            if tuple(existing.shape) != tuple(t.shape):
                raise ShapeError(f"layer '{where}': weight {pname} has shape "
                                 f"{existing.shape}, the model needs {format_shape(t.shape)}")
            if existing.dtype != t.dtype:  # weights set before the model's dtype was known
                existing = existing.astype(t.dtype)
                ctx.weights.put(key, existing)
            data["value"] = existing
            continue
        init = data["init"]
        dtype = init.dtype or t.dtype
        _require_concrete(g, node, where, pname, t)
        _require_allocatable(where, pname, t.shape, np.dtype(dtype))
        initializer = init.initializer
        seed = getattr(initializer, "seed", None)
        seed = seed if seed is not None else (
            ctx.seed if ctx.seed is not None else deferc_random.get_seed())
        if seed is None:
            unseeded = unseeded or np.random.default_rng()
            rng = unseeded
        else:
            rng = parameter_rng(seed, where, pname)
        value = initializer.generate(t.shape, dtype, rng)
        ctx.weights.put(key, value)
        data["value"] = value
    return g


def _require_concrete(g, node, layer: str, pname, t) -> None:
    if t.shape is None or any(d is None for d in t.shape):
        raise DeferredInitializationError(
            f"layer '{layer}': cannot create {pname} {format_shape(t.shape)}, its input "
            f"size is unknown. Call the model on data, or build it with an input shape, e.g. "
            f"net.build((None, 20)).")
    symbolic = sorted({s for d in t.shape if isinstance(d, Dim) for s in d.free_symbols})
    if symbolic:
        user = next(iter(g.successors(node)), None)
        where = (f" (used by '{layer_name(g, user)}')"
                 if user is not None and layer_name(g, user) != layer else "")
        hint = _SPATIAL_HINT if any(s[0] in "HW" for s in symbolic) else ""
        raise DeferredInitializationError(
            f"layer '{layer}'{where}: {pname} would have shape {format_shape(t.shape)}, which"
            f" depends on input dims {', '.join(symbolic)} that are only known at run time. "
            f"Give those dims concrete sizes in the input shape{hint}.")


@functools.cache  # physical memory does not change while we run; asked once per weight
def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _require_allocatable(layer: str, pname, shape, dtype: np.dtype) -> None:
    """Refuse empty weights and weights larger than the machine's memory before allocating.

    An input width of 0 would otherwise build a model that can never take real data, and a huge
    declared size would die in the allocator (or the OOM killer) instead of raising.
    """
    if any(d == 0 for d in shape):
        raise ShapeError(f"layer '{layer}': {pname} would have shape {format_shape(shape)}; "
                         f"a weight cannot have a size-0 axis (does an input have a size-0 "
                         f"feature axis?)")
    nbytes = dtype.itemsize
    for d in shape:
        nbytes *= int(d)  # Python ints: no overflow for absurd sizes
    limit = _memory_bytes()
    if limit is not None and nbytes > limit:
        raise CompilerError(f"layer '{layer}': {pname} {format_shape(shape)} {dtype} needs "
                            f"{nbytes / 2**30:.3g} GiB, more than this machine's "
                            f"{limit / 2**30:.3g} GiB of memory")
