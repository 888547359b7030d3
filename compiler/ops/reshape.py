"""Ops that only rearrange: ``flatten`` and ``reshape`` (C order, the batch axis kept)."""

from __future__ import annotations

import math

from ..errors import ShapeError
from ..symbolic import DimLike, definitely_equal, floordiv, format_shape, mul
from .registry import INJECTIVE, OpDef, register, require_rank


def _product(dims) -> DimLike | None:
    total: DimLike = 1
    for d in dims:
        if d is None:
            return None
        total = mul(total, d)
    return total


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
    size = _product(x.shape[1:])
    known = _product([d for d in target if d != -1])
    if -1 in target:
        if size is None:
            inferred = None
        elif isinstance(size, int) and isinstance(known, int):
            if known == 0 or size % known:
                raise ShapeError(f"Reshape: cannot reshape {format_shape(x.shape)} into "
                                 f"(N, {', '.join(map(str, target))})")
            inferred = size // known
        else:
            inferred = floordiv(size, known) if isinstance(known, int) and known > 0 else None
            if inferred is not None and definitely_equal(mul(inferred, known), size) is not True:
                unify.runtime_checks.append((mul(inferred, known), size,
                                             "Reshape: element count"))
        out = tuple(inferred if d == -1 else d for d in target)
    else:
        out = target
        unify.dims(size, _product(out),
                   f"Reshape to {target}: element count of {format_shape(x.shape)}")
    return x.with_shape((x.shape[0],) + out)


def reshape_reference(inputs, params, attrs):
    x = inputs[0]
    target = tuple(attrs["target_shape"])
    if -1 in target:  # resolved here: NumPy cannot infer it next to an empty batch axis
        known = math.prod(d for d in target if d != -1)
        target = tuple(math.prod(x.shape[1:]) // known if d == -1 else d for d in target)
    return x.reshape((x.shape[0],) + target)


register(OpDef(
    name="reshape",
    shape_rule=reshape_shape_rule,
    reference=reshape_reference,
    kernel="reshape",
    traits=frozenset({INJECTIVE}),
    doc="Keras Reshape: target shape excludes the batch axis.",
))


