"""Merging kernels (element-wise ``add subtract multiply maximum minimum average``,
``concatenate``) and ``softmax`` along any axis.

The element-wise kernels take any number of inputs, ``fn(*inputs, out, expand_after_batch)``
(the flag: the op attr of that name, 0 or 1), and broadcast them
NumPy-style to ``out``'s shape: inputs of ``out``'s shape take a flat loop (the fast path every
equal-shape model used before broadcasting existed); others are folded pairwise through a strided
loop over ``out``'s rows, after the axes are coalesced (``broadcast.py``: ``(N, H, W, C) *
(N, 1, 1, C)`` runs as ``(N, H*W, C) * (N, 1, C)``). ``out`` accumulates in place, which is
safe element by element.
"""

import math

import numpy as np
from numba import njit, prange

from .along_axis import axis_scalars, run_along_axis
from .broadcast import layout, row_offsets
from .flags import JIT, PARALLEL_MIN_ELEMENTS
from .registry import Kernel, register_kernel

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}
ADD, SUBTRACT, MULTIPLY, MAXIMUM, MINIMUM = range(5)
_CHUNK = 1 << 14  # elements per parallel work item of the element-wise loops


# -- element-wise, equal shapes: flat loops ------------------------------------------------------
@njit(inline="always", **_INLINE)
def _combine_chunk(a, b, out, lo, hi, op):
    """``out[lo:hi] = a[lo:hi] op b[lo:hi]``; one loop per op so each one vectorizes."""
    if op == ADD:
        for i in range(lo, hi):
            out[i] = a[i] + b[i]
    elif op == SUBTRACT:
        for i in range(lo, hi):
            out[i] = a[i] - b[i]
    elif op == MULTIPLY:
        for i in range(lo, hi):
            out[i] = a[i] * b[i]
    elif op == MAXIMUM:  # NaN wins, as in np.maximum
        for i in range(lo, hi):
            x, y = a[i], b[i]
            out[i] = x if (x >= y or x != x) else y
    else:
        for i in range(lo, hi):
            x, y = a[i], b[i]
            out[i] = x if (x <= y or x != x) else y


@njit(parallel=True, **JIT)
def _combine_parallel(a, b, out, op):
    n = out.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        _combine_chunk(a, b, out, c * _CHUNK, min(n, (c + 1) * _CHUNK), op)


@njit(**JIT)
def _combine_serial(a, b, out, op):
    _combine_chunk(a, b, out, 0, out.shape[0], op)


# -- element-wise, broadcasting: strided rows ----------------------------------------------------
@njit(inline="always", **_INLINE)
def _combine_scalar(a, y, out, op):
    """``out = a op y`` for a scalar ``y``."""
    if op == ADD:
        for i in range(out.shape[0]):
            out[i] = a[i] + y
    elif op == SUBTRACT:
        for i in range(out.shape[0]):
            out[i] = a[i] - y
    elif op == MULTIPLY:
        for i in range(out.shape[0]):
            out[i] = a[i] * y
    elif op == MAXIMUM:
        for i in range(out.shape[0]):
            x = a[i]
            out[i] = x if (x >= y or x != x) else y
    else:
        for i in range(out.shape[0]):
            x = a[i]
            out[i] = x if (x <= y or x != x) else y


@njit(inline="always", **_INLINE)
def _scalar_combine(x, b, out, op):
    """``out = x op b`` for a scalar ``x``."""
    if op == ADD:
        for i in range(out.shape[0]):
            out[i] = x + b[i]
    elif op == SUBTRACT:
        for i in range(out.shape[0]):
            out[i] = x - b[i]
    elif op == MULTIPLY:
        for i in range(out.shape[0]):
            out[i] = x * b[i]
    elif op == MAXIMUM:
        for i in range(out.shape[0]):
            y = b[i]
            out[i] = x if (x >= y or x != x) else y
    else:
        for i in range(out.shape[0]):
            y = b[i]
            out[i] = x if (x <= y or x != x) else y


@njit(inline="always", **_INLINE)
def _broadcast_rows(a, b, out, sizes, strides, op, r0, r1):
    """Rows ``r0..r1`` of ``out`` viewed as ``(rows, sizes[-1])`` (``broadcast.layout``).

    The innermost stride of each operand is 1 or 0 (broadcast): the row is a contiguous slice
    or one scalar, and each case has its own per-op loop over slices, so the loops vectorize
    (indexing with ``i * stride`` instead ran 6x slower than NumPy).
    """
    rank = sizes.shape[0]
    inner = sizes[rank - 1]
    sa, sb = strides[0, rank - 1], strides[1, rank - 1]
    offs = np.zeros(2, np.int64)
    for r in range(r0, r1):
        row_offsets(r, sizes, strides, offs)
        ao, bo = offs[0], offs[1]
        row = out[r * inner:(r + 1) * inner]
        if sa == 1 and sb == 1:
            _combine_chunk(a[ao:ao + inner], b[bo:bo + inner], row, 0, inner, op)
        elif sa == 0 and sb == 0:  # both broadcast (a fold's out outgrew them): one value
            _combine_chunk(a[ao:ao + 1], b[bo:bo + 1], row, 0, 1, op)
            row[1:] = row[0]
        elif sb == 0:
            _combine_scalar(a[ao:ao + inner], b[bo], row, op)
        else:
            _scalar_combine(a[ao], b[bo:bo + inner], row, op)


@njit(parallel=True, **JIT)
def _broadcast_parallel(a, b, out, sizes, strides, op):
    inner = sizes[sizes.shape[0] - 1]
    rows = out.shape[0] // inner
    per = max(1, _CHUNK // inner)
    for c in prange((rows + per - 1) // per):
        _broadcast_rows(a, b, out, sizes, strides, op, c * per, min(rows, (c + 1) * per))


@njit(**JIT)
def _broadcast_serial(a, b, out, sizes, strides, op):
    inner = sizes[sizes.shape[0] - 1]
    _broadcast_rows(a, b, out, sizes, strides, op, 0, out.shape[0] // inner)


@njit(parallel=True, **JIT)
def _divide_parallel(x, n):
    size = x.shape[0]
    for c in prange((size + _CHUNK - 1) // _CHUNK):
        for i in range(c * _CHUNK, min(size, (c + 1) * _CHUNK)):
            x[i] = x[i] / n


@njit(**JIT)
def _divide_serial(x, n):
    for i in range(x.shape[0]):
        x[i] = x[i] / n


def _combine(a, b, out, op) -> None:
    """``out = a op b`` over flat C-order views, broadcasting ``a`` and ``b`` to ``out``."""
    flat = out.reshape(-1)
    big = out.size >= PARALLEL_MIN_ELEMENTS
    if a.shape == out.shape and b.shape == out.shape:
        (_combine_parallel if big else _combine_serial)(a.reshape(-1), b.reshape(-1), flat, op)
        return
    sizes, strides = layout(out.shape, a.shape, b.shape)
    (_broadcast_parallel if big else _broadcast_serial)(
        np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1), flat, sizes,
        strides, op)


def _fold(arrays, op) -> None:
    *inputs, out, after_batch = arrays
    if out.size == 0:
        return
    if after_batch:  # Keras merge layers: lower ranks gain their 1s after the batch axis
        inputs = [x if x.ndim == out.ndim else x.reshape(
            x.shape[:1] + (1,) * (out.ndim - x.ndim) + x.shape[1:]) for x in inputs]
    if len(inputs) == 1:
        np.copyto(out, inputs[0])  # one input (Keras 3 allows it), broadcast if need be
        return
    _combine(inputs[0], inputs[1], out, op)
    for x in inputs[2:]:  # ``out`` is read and written in place, element by element
        _combine(out, x, out, op)


def add(*arrays):
    """``out = x0 + x1 + ...`` (broadcast)."""
    _fold(arrays, ADD)


def subtract(*arrays):
    """``out = x0 - x1`` (broadcast)."""
    _fold(arrays, SUBTRACT)


def multiply(*arrays):
    """``out = x0 * x1 * ...`` (broadcast)."""
    _fold(arrays, MULTIPLY)


def maximum(*arrays):
    """``out = max(x0, x1, ...)`` element-wise, NaN propagating (broadcast)."""
    _fold(arrays, MAXIMUM)


def minimum(*arrays):
    """``out = min(x0, x1, ...)`` element-wise, NaN propagating (broadcast)."""
    _fold(arrays, MINIMUM)


def average(*arrays):
    """``out = (x0 + x1 + ...) / n`` (broadcast): the sum, then one division pass."""
    _fold(arrays, ADD)
    out = arrays[-2]
    n = len(arrays) - 2
    if out.size and n > 1:
        flat = out.reshape(-1)
        big = out.size >= PARALLEL_MIN_ELEMENTS
        (_divide_parallel if big else _divide_serial)(flat, flat.dtype.type(n))


def _merge_scalars(attrs, input_shapes, out_shape):
    return (int(bool(attrs.get("expand_after_batch", False))),)


for _kernel in (add, subtract, multiply, maximum, minimum, average):
    register_kernel(Kernel(_kernel.__name__, _kernel, _merge_scalars))


# -- concatenate ---------------------------------------------------------------------------------
@njit(parallel=True, **JIT)
def _copy_block_parallel(src, dst, offset):
    """``dst[:, offset:offset + src.shape[1]] = src`` over 2-D ``(outer, span)`` views."""
    span = src.shape[1]
    for i in prange(src.shape[0]):
        dst[i, offset:offset + span] = src[i]


@njit(**JIT)
def _copy_block_serial(src, dst, offset):
    span = src.shape[1]
    for i in range(src.shape[0]):
        dst[i, offset:offset + span] = src[i]


def concatenate(*args):
    """``(*inputs, out, axis)``: each input is a column block of ``out`` viewed as 2-D."""
    *inputs, out, axis = args
    if out.size == 0:
        return
    outer = int(np.prod(out.shape[:axis], dtype=np.int64))
    dst = out.reshape(outer, -1)
    offset = 0
    for x in inputs:
        if x.size == 0:
            continue
        src = x.reshape(outer, -1)
        run = _copy_block_parallel if x.size >= PARALLEL_MIN_ELEMENTS else _copy_block_serial
        run(src, dst, offset)
        offset += src.shape[1]


register_kernel(Kernel("concatenate", concatenate, axis_scalars))


# -- softmax along an axis -----------------------------------------------------------------------
@njit(inline="always", **_INLINE)
def _softmax_slab(x3, out3, o, tmp):
    """Softmax over axis 1 of ``x3[o]`` (``(length, inner)``), vectorised over ``inner``."""
    length, inner = x3.shape[1], x3.shape[2]
    src, dst = x3[o], out3[o]
    tmp[:] = -np.inf
    for i in range(length):
        row = src[i]
        for j in range(inner):
            v = row[j]
            if v > tmp[j] or math.isnan(v):
                tmp[j] = v
    for i in range(length):
        for j in range(inner):
            dst[i, j] = math.exp(src[i, j] - tmp[j])
    tmp[:] = 0.0
    for i in range(length):
        for j in range(inner):
            tmp[j] += dst[i, j]
    for j in range(inner):
        tmp[j] = 1.0 / tmp[j]
    for i in range(length):
        for j in range(inner):
            dst[i, j] *= tmp[j]


@njit(parallel=True, **JIT)
def _softmax_parallel(x3, out3):
    for o in prange(x3.shape[0]):
        tmp = np.empty(x3.shape[2], dtype=x3.dtype)
        _softmax_slab(x3, out3, o, tmp)


@njit(**JIT)
def _softmax_serial(x3, out3):
    tmp = np.empty(x3.shape[2], dtype=x3.dtype)
    for o in range(x3.shape[0]):
        _softmax_slab(x3, out3, o, tmp)


def softmax(x, out, axis):
    """Softmax along ``axis``: views ``x`` as ``(outer, length, inner)``."""
    run_along_axis(x, out, axis, _softmax_serial, _softmax_parallel)


register_kernel(Kernel("softmax", softmax, axis_scalars))
