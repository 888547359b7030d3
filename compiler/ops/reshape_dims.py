"""``reshape_dims``: ONNX's Reshape — target entries ``0`` copy the input's size on that axis,
one ``-1`` is inferred.

``reshape_array`` (NumPy's reshape) needs every size but one known when the graph is built; an
imported ONNX model with a dynamic batch and dynamic sides reshapes ``(N, C, H, W)`` to
``(N, g, C/g, H, W)``, so the sizes that are only known at run time are copied by axis instead.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..symbolic import floordiv, format_shape, is_concrete, mul
from ..types import TensorType
from .registry import INJECTIVE, OpDef, register


def _resolve(in_shape: tuple, target: tuple, unify=None) -> tuple:
    """The output dims: copies filled in, the ``-1`` inferred (symbolically if need be)."""
    out = []
    for i, d in enumerate(target):
        if d == 0:
            if i >= len(in_shape):
                raise ShapeError(f"reshape_dims: entry {i} copies input axis {i}, but the input "
                                 f"{format_shape(in_shape)} has rank {len(in_shape)}")
            out.append(in_shape[i])
        else:
            out.append(d)
    if -1 not in out:
        return tuple(out)
    # what is left of the input once the copied axes are taken out, over the known sizes
    copied = {i for i, d in enumerate(target) if d == 0}
    rest = [d for i, d in enumerate(in_shape) if i not in copied]
    known = math.prod(d for i, d in enumerate(out) if d != -1 and i not in copied)
    remaining = 1
    for d in rest:
        remaining = mul(remaining, d)
    if is_concrete(remaining):
        if known == 0 or remaining % known:
            raise ShapeError(f"reshape_dims: cannot reshape {format_shape(in_shape)} into "
                             f"{target}")
        inferred = remaining // known
    else:
        inferred = floordiv(remaining, known)
        if unify is not None:
            unify.dims(mul(inferred, known), remaining, f"reshape to {target}: element count")
    return tuple(inferred if d == -1 else d for d in out)


def _rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    target = tuple(int(d) for d in attrs["shape"])
    if sum(1 for d in target if d == -1) > 1 or any(d < -1 for d in target):
        raise ShapeError(f"reshape_dims: shape may hold one -1 and sizes >= 0, received {target}")
    if x.shape is None:
        return x.with_shape(None)
    return x.with_shape(_resolve(tuple(x.shape), target, unify))


def _reference(inputs, params, attrs) -> np.ndarray:
    x = inputs[0]
    return np.reshape(x, _resolve(x.shape, tuple(int(d) for d in attrs["shape"])))


register(OpDef(
    name="reshape_dims", shape_rule=_rule, reference=_reference, kernel="numpy:reshape_dims",
    traits=frozenset({INJECTIVE}), extras={"primitive": True},
    doc="ONNX Reshape: attr `shape`, 0 copies the input's size on that axis, one -1 inferred."))
