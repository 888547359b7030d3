"""Merging ops: element-wise ``add subtract multiply maximum minimum average`` and ``concatenate``.

The element-wise ops broadcast NumPy-style (``compiler.broadcast``): ``(N, 4) + (N, 1)`` and
squeeze-and-excitation's ``(N, H, W, C) * (N, 1, 1, C)`` work; a provable mismatch is still an
error quoting both shapes, and sizes that are not provably equal become run-time checks. With
attr ``expand_after_batch`` (what the Keras merge layers set) inputs of lower rank gain their 1s
after the batch axis instead of in front, as Keras 3 does.
"""

from __future__ import annotations

from functools import reduce

import numpy as np

from ..broadcast import broadcast_shapes, expand_rank
from ..dtypes import promote
from ..errors import ShapeError
from ..symbolic import add as add_dims
from ..symbolic import format_shape
from ..types import TensorType
from .registry import AS_RESIDUAL, INJECTIVE, OpDef, register

#: op -> (Keras layer, NumPy binary function folded over the inputs, fixed arity or None)
ELEMENTWISE_MERGES = {
    "add": ("Add", np.add, None),
    "subtract": ("Subtract", np.subtract, 2),
    "multiply": ("Multiply", np.multiply, None),
    "maximum": ("Maximum", np.maximum, None),
    "minimum": ("Minimum", np.minimum, None),
    "average": ("Average", np.add, None),  # the sum, then divided by the number of inputs
}


def _require_inputs(inputs, layer: str, minimum: int = 1) -> None:
    if len(inputs) < minimum:
        raise ShapeError(f"{layer}: expected at least {minimum} inputs, received {len(inputs)}")


def _dtype_of(inputs, layer: str):
    """The inputs' common dtype, promoted as ``compiler.ops`` promotes (Keras 3: int32 + float32
    is float32); each input is converted to it when read (``dtypes.input_conversions``)."""
    return promote([t.dtype for t in inputs])


def _elementwise_shape_rule(layer: str):
    def rule(inputs, params, attrs, unify) -> TensorType:
        _require_inputs(inputs, layer)
        dtype = _dtype_of(inputs, layer)
        return TensorType(broadcast_shapes([t.shape for t in inputs], unify, layer,
                                           after_batch=attrs.get("expand_after_batch", False)),
                          dtype)
    return rule


def _elementwise_reference(op, average: bool = False):
    def reference(inputs, params, attrs) -> np.ndarray:
        if attrs.get("expand_after_batch", False):
            rank = max(x.ndim for x in inputs)
            inputs = [x.reshape(expand_rank(x.shape, rank, after_batch=True)) for x in inputs]
        with np.errstate(invalid="ignore", over="ignore"):
            out = reduce(op, inputs[1:], inputs[0].copy())
            if average:
                out = np.asarray(out / out.dtype.type(len(inputs)), dtype=out.dtype)
            return out
    return reference


for _name, (_layer, _op, _arity) in ELEMENTWISE_MERGES.items():
    register(OpDef(
        name=_name,
        shape_rule=_elementwise_shape_rule(_layer),
        reference=_elementwise_reference(_op, average=_name == "average"),
        kernel=_name,
        num_inputs=_arity,
        elementwise=True,
        broadcast=True,
        traits=frozenset({AS_RESIDUAL}) if _name == "add" else frozenset(),
        doc=f"Element-wise {_name} of {'two' if _arity else 'any number of'} inputs, "
            f"broadcast NumPy-style.",
    ))


def normalize_axis(axis: int, rank: int, layer: str) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"{layer}: axis {axis} is out of range for rank {rank}")
    return axis % rank


def concatenate_shape_rule(inputs, params, attrs, unify) -> TensorType:
    layer = "Concatenate"
    _require_inputs(inputs, layer)
    dtype = _dtype_of(inputs, layer)
    known = [t for t in inputs if t.shape is not None]
    if not known:
        return TensorType(None, dtype)
    rank = len(known[0].shape)
    for t in known:
        if len(t.shape) != rank:
            raise ShapeError(f"{layer}: all inputs need the same rank, received "
                             f"{[format_shape(u.shape) for u in known]}")
    axis = normalize_axis(attrs.get("axis", -1), rank, layer)
    if len(known) < len(inputs):  # the concatenated size needs every input
        shape = list(known[0].shape)
        shape[axis] = None
    else:
        shape = list(known[0].shape)
        sizes = [t.shape[axis] for t in known]
        shape[axis] = None if None in sizes else reduce(add_dims, sizes)
    for i, t in enumerate(known):
        for a in range(rank):
            if a != axis:
                shape[a] = unify.dims(shape[a], t.shape[a], f"{layer} input {i} axis {a}")
    return TensorType(tuple(shape), dtype)


def concatenate_reference(inputs, params, attrs) -> np.ndarray:
    return np.concatenate(inputs, axis=attrs.get("axis", -1))


register(OpDef(
    name="concatenate",
    traits=frozenset({INJECTIVE}),
    shape_rule=concatenate_shape_rule,
    reference=concatenate_reference,
    kernel="concatenate",
    num_inputs=None,
    doc="Concatenation along `axis` (default -1); the other axes must agree.",
))
