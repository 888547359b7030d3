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


def _bound(v, d, step: int):
    """A start or end clamped like Python's ``slice.indices`` (``d`` may be symbolic)."""
    lo, hi = (0, d) if step > 0 else (-1, add(d, -1))
    if is_concrete(v) and v >= BEYOND:
        return hi
    if is_concrete(v) and v <= -BEYOND:
        return lo
    if is_concrete(v) and v < 0:
        return maximum(add(d, v), lo)
    return minimum(v, hi)


def clamped_length(d, start: int, end, step: int):
    """How many elements ``x[start:end:step]`` has on an axis of size ``d`` (int or Dim)."""
    if is_concrete(d) and is_concrete(end):
        return len(range(*slice(start, end, step).indices(d)))
    s, e = _bound(start, d, step), _bound(end, d, step)
    span = add(e, -1 * s) if step > 0 else add(s, -1 * e)
    return ceildiv(maximum(span, 0), abs(step))


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
    """``(first, step, length)`` on the sliced axis for concrete shapes (Python's clamping)."""
    e = attrs["end"]
    e = like_shape[attrs["like_axis"]] if e is None else e
    bounds = slice(int(attrs["start"]), int(e), int(attrs["step"])).indices(
        int(x_shape[attrs["axis"]]))
    n = len(range(*bounds))
    return (bounds[0] if n else 0), bounds[2], n


def _reference(inputs, params, attrs) -> np.ndarray:
    x, like = np.asarray(inputs[0]), np.asarray(inputs[1])
    e = like.shape[attrs["like_axis"]] if attrs["end"] is None else attrs["end"]
    index = [slice(None)] * x.ndim
    index[attrs["axis"]] = slice(attrs["start"], e, attrs["step"])
    return x[tuple(index)]


register(OpDef(
    name="clamped_slice", shape_rule=_rule, reference=_reference, kernel="clamped_slice",
    num_inputs=2, traits=frozenset({INJECTIVE}), extras={"primitive": True},
    doc="x[start:end:step] on attr `axis`, clamped to the axis at run time (ONNX Slice); an end "
        "None is like's size on axis `like_axis`."))
