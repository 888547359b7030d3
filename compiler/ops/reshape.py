"""Ops that only rearrange: ``flatten`` and ``reshape`` (C order, the batch axis kept)."""

from __future__ import annotations

import math

from ..errors import ShapeError
from ..symbolic import DimLike, floordiv, format_shape, mul
from .registry import INJECTIVE, OpDef, register, require_rank


def _product(dims) -> DimLike | None:
    total: DimLike = 1
    for d in dims:
        if d is None:
            return None
        total = mul(total, d)
    return total


def infer_target(size: DimLike | None, target: tuple, unify, what: str, shown: str) -> tuple:
    """``target`` with its ``-1`` (if any) resolved so that it holds ``size`` elements.

    The one place for both reshapes (the ``Reshape`` layer's target excludes the batch axis,
    the ``reshape`` primitive's does not). Concrete sizes must divide, else a ``ShapeError``
    ``cannot reshape {shown} ...``; symbolic ones are unified (a provable mismatch raises now,
    an undecided one, e.g. ``3*S`` into ``(-1, 2)``, becomes a run-time check named ``what``).
    Callers add the layer name or the node to the message.
    """
    known = _product([d for d in target if d != -1])
    if -1 not in target:
        unify.dims(size, known, f"{what}: element count of {shown}")
        return target
    if size is None:
        inferred = None
    elif isinstance(size, int) and isinstance(known, int):
        if known == 0 or size % known:
            raise ShapeError(f"{what}: cannot reshape {shown} ({size} elements) into {target}")
        inferred = size // known
    else:
        inferred = floordiv(size, known) if isinstance(known, int) and known > 0 else None
        if inferred is not None:
            unify.dims(mul(inferred, known), size, f"{what}: element count of {shown}")
    return tuple(inferred if d == -1 else d for d in target)


def concrete_target(count: int, target: tuple) -> tuple:
    """``target`` with its ``-1`` resolved for ``count`` elements (NumPy cannot infer a -1
    next to a size-0 axis, so the references resolve it themselves)."""
    if -1 not in target:
        return target
    known = math.prod(d for d in target if d != -1)
    return tuple(count // known if d == -1 else d for d in target)


def flatten_shape_rule(inputs, params, attrs, unify):
    x = inputs[0]
    require_rank(x, 1, "Flatten")
    if x.shape is None:
        return x.with_shape(None)
    if len(x.shape) == 1:  # Keras flattens (N,) to (N, 1)
        return x.with_shape((x.shape[0], 1))
    return x.with_shape((x.shape[0], _product(x.shape[1:])))


def flatten_reference(inputs, params, attrs):
    x = inputs[0]
    # explicit sizes, not -1: NumPy cannot infer a -1 next to an empty batch axis
    return x.reshape(x.shape[0], math.prod(x.shape[1:]) if x.ndim > 1 else 1)


register(OpDef(
    name="flatten",
    shape_rule=flatten_shape_rule,
    reference=flatten_reference,
    kernel="reshape",
    traits=frozenset({INJECTIVE}),
    doc="Keeps the batch axis, flattens the rest in C order.",
))


def reshape_shape_rule(inputs, params, attrs, unify):
    """Keras ``Reshape(target_shape)``: target excludes the batch axis; one entry may be -1."""
    x = inputs[0]
    target = tuple(attrs["target_shape"])
    if x.shape is None:
        return x.with_shape(None)
    require_rank(x, 1, "Reshape")
    shown = ", ".join(map(str, target))
    out = infer_target(_product(x.shape[1:]), target, unify, f"Reshape to (N, {shown})",
                       f"{format_shape(x.shape)} without its batch axis")
    return x.with_shape((x.shape[0],) + out)


def reshape_reference(inputs, params, attrs):
    x = inputs[0]
    return x.reshape((x.shape[0],) + concrete_target(math.prod(x.shape[1:]),
                                                     tuple(attrs["target_shape"])))


register(OpDef(
    name="reshape",
    shape_rule=reshape_shape_rule,
    reference=reshape_reference,
    kernel="reshape",
    traits=frozenset({INJECTIVE}),
    doc="Keras Reshape: target shape excludes the batch axis.",
))


