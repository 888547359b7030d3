"""``clamped_slice``: NumPy/ONNX slicing ``x[start:end:step]`` on one axis, clamped to it.

``slice`` (Keras' ``ops.slice``) takes a start and a size that must fit the input. An ONNX
``Slice`` on an axis whose size is only known at run time (``dim_param`` "T") may start or end
past it, count from its end, or step backwards; ONNX then clamps, as Python slicing does, and a
start beyond the end gives an empty result. Here every bound is clamped at run time against the
axis' actual size, so the output's length is a ``min``/``max`` expression of the symbolic size.
An ``end`` of ``None`` is a size known only at run time: axis ``like_axis`` of the second input
``like`` (an ONNX end computed by ``Shape`` of another input); ``like`` is ``x`` itself when no
end needs it.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..symbolic import add, ceildiv, format_shape, is_concrete, maximum, minimum
from ..types import TensorType
from .registry import INJECTIVE, OpDef, register

#: a bound at least this large (in size) lies beyond any axis: exporters write INT32/64 max
BEYOND = 2 ** 31 - 1


def _bound(v, d, step: int, start: bool):
    """A start or end clamped as ONNX says (``d`` may be symbolic): into ``[0, d]`` for positive
    steps; a start into ``[0, d-1]``, an end into ``[-1, d-1]`` for negative steps. (Python's
    slicing, and so ``onnx.reference``, sends a start before the axis to -1 instead: empty
    where ONNX Runtime and the spec take element 0.)"""
    lo, hi = (0, d) if step > 0 else (0 if start else -1, add(d, -1))
    if is_concrete(v) and v >= BEYOND:
        out = hi
    elif is_concrete(v) and v <= -BEYOND:
        out = lo
    elif is_concrete(v) and v < 0:
        out = maximum(add(d, v), lo)
    else:
        out = minimum(v, hi)
    return minimum(out, hi) if step < 0 and start else out  # d = 0: nothing to start from


def slice_range(d, start: int, end, step: int) -> tuple:
    """``(first, length)`` of ONNX's ``start:end:step`` on an axis of size ``d`` (ints or
    Dims): the picked indices are ``first + step * i`` for ``i < length``."""
    s, e = _bound(start, d, step, True), _bound(end, d, step, False)
    span = add(e, -1 * s) if step > 0 else add(s, -1 * e)
    return s, ceildiv(maximum(span, 0), abs(step))


def clamped_length(d, start: int, end, step: int):
    """How many elements ONNX's ``start:end:step`` picks on an axis of size ``d``."""
    return slice_range(d, start, end, step)[1]


def _rule(inputs, params, attrs, unify) -> TensorType:
    x, like = inputs
    if x.shape is None or like.shape is None:
        return x.with_shape(None)
    axis, s, e, st = (attrs[k] for k in ("axis", "start", "end", "step"))
    if not 0 <= axis < len(x.shape) or int(st) == 0:
        raise ShapeError(f"clamped_slice: axis {axis} (of {format_shape(x.shape)}) and step "
                         f"{st} (not 0) are out of range")
    if e is None:
        la = attrs["like_axis"]
        if not 0 <= la < len(like.shape):
            raise ShapeError(f"clamped_slice: like_axis {la} is out of range for like "
                             f"{format_shape(like.shape)}")
        e = like.shape[la]
    out = list(x.shape)
    out[axis] = clamped_length(x.shape[axis], int(s), e, int(st))
    return x.with_shape(tuple(out))


def run_time_bounds(attrs: dict, x_shape: tuple, like_shape: tuple) -> tuple[int, int, int]:
    """``(first, step, length)`` on the sliced axis for concrete shapes."""
    e = attrs["end"]
    e = like_shape[attrs["like_axis"]] if e is None else e
    step = int(attrs["step"])
    first, n = slice_range(int(x_shape[attrs["axis"]]), int(attrs["start"]), int(e), step)
    return (first if n else 0), step, n


def _reference(inputs, params, attrs) -> np.ndarray:
    x, like = np.asarray(inputs[0]), np.asarray(inputs[1])
    first, step, n = run_time_bounds(attrs, x.shape, like.shape)
    return np.take(x, first + step * np.arange(n, dtype=np.int64), axis=attrs["axis"])


register(OpDef(
    name="clamped_slice", shape_rule=_rule, reference=_reference, kernel="clamped_slice",
    num_inputs=2, traits=frozenset({INJECTIVE}), extras={"primitive": True},
    doc="x[start:end:step] on attr `axis`, clamped to the axis at run time (ONNX Slice); an end "
        "None is like's size on axis `like_axis`."))
