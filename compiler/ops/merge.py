"""Merging ops: ``add`` and ``multiply`` (elementwise, equal shapes) and ``concatenate``.

Equal shapes only, no broadcasting: the Keras merge layers are used on equal branches, and a
provable mismatch is almost always a model bug worth reporting with both shapes.
"""

from __future__ import annotations

from functools import reduce

import numpy as np

from ..errors import ShapeError
from ..symbolic import add as add_dims
from ..symbolic import format_shape
from ..types import TensorType
from .registry import OpDef, register

_LAYERS = {"add": "Add", "multiply": "Multiply", "concatenate": "Concatenate"}


def _require_inputs(inputs, layer: str, minimum: int = 1) -> None:
    if len(inputs) < minimum:
        raise ShapeError(f"{layer}: expected at least {minimum} inputs, received {len(inputs)}")


def _dtype_of(inputs, layer: str):
    dtypes = {t.dtype for t in inputs}
    if len(dtypes) > 1:
        raise ShapeError(f"{layer}: inputs must share a dtype, received "
                         f"{[str(t.dtype) for t in inputs]}")
    return inputs[0].dtype


def _elementwise_shape_rule(layer: str):
    def rule(inputs, params, attrs, unify) -> TensorType:
        _require_inputs(inputs, layer)
        dtype = _dtype_of(inputs, layer)
        shape = inputs[0].shape
        for i, t in enumerate(inputs[1:], start=1):
            shape = unify.shapes(shape, t.shape, f"{layer} input {i} vs input 0")
        return TensorType(shape, dtype)
    return rule


def _elementwise_reference(op):
    def reference(inputs, params, attrs) -> np.ndarray:
        with np.errstate(invalid="ignore", over="ignore"):
            return reduce(op, inputs[1:], inputs[0].copy())
    return reference


for _name, _op in (("add", np.add), ("multiply", np.multiply)):
    register(OpDef(
        name=_name,
        shape_rule=_elementwise_shape_rule(_LAYERS[_name]),
        reference=_elementwise_reference(_op),
        kernel=_name,
        num_inputs=None,
        elementwise=True,
        doc=f"Elementwise {_name} of any number of equally shaped inputs.",
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
    shape_rule=concatenate_shape_rule,
    reference=concatenate_reference,
    kernel="concatenate",
    num_inputs=None,
    doc="Concatenation along `axis` (default -1); the other axes must agree.",
))
