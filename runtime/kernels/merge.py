"""Merging kernels (``add``, ``multiply``, ``concatenate``) and ``softmax`` along any axis.

``add``/``multiply``/``concatenate`` take any number of inputs: ``fn(*inputs, out, *scalars)``.
"""

import math

import numpy as np
from numba import njit, prange

from .flags import JIT, PARALLEL_MIN_ELEMENTS
from .registry import Kernel, register_kernel

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}
_ADD, _MUL = 0, 1
_CHUNK = 1 << 14  # elements per parallel work item of the flat elementwise loops


@njit(inline="always", **_INLINE)
def _combine_chunk(a, b, out, lo, hi, op):
    if op == _ADD:
        for i in range(lo, hi):
            out[i] = a[i] + b[i]
    else:
        for i in range(lo, hi):
            out[i] = a[i] * b[i]


@njit(parallel=True, **JIT)
def _combine_parallel(a, b, out, op):
    n = out.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        _combine_chunk(a, b, out, c * _CHUNK, min(n, (c + 1) * _CHUNK), op)


@njit(**JIT)
def _combine_serial(a, b, out, op):
    _combine_chunk(a, b, out, 0, out.shape[0], op)


def _fold(arrays, op):
    *inputs, out = arrays
    if out.size == 0:
        return
    flat = out.reshape(-1)
    if len(inputs) == 1:
        np.copyto(out, inputs[0])
        return
    run = _combine_parallel if out.size >= PARALLEL_MIN_ELEMENTS else _combine_serial
    run(inputs[0].reshape(-1), inputs[1].reshape(-1), flat, op)
    for x in inputs[2:]:  # ``out`` may be read and written in place elementwise
        run(flat, x.reshape(-1), flat, op)


def add(*arrays):
    """``out = x0 + x1 + ...`` (equal shapes, C order)."""
    _fold(arrays, _ADD)


def multiply(*arrays):
    """``out = x0 * x1 * ...`` (equal shapes, C order)."""
    _fold(arrays, _MUL)


def _no_scalars(attrs, input_shapes, out_shape):
    return ()


register_kernel(Kernel("add", add, _no_scalars))
register_kernel(Kernel("multiply", multiply, _no_scalars))


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


def _concat_scalars(attrs, input_shapes, out_shape):
    return (attrs.get("axis", -1) % len(out_shape),)


register_kernel(Kernel("concatenate", concatenate, _concat_scalars))


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
    if out.size == 0:
        return
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    shape3 = (outer, x.shape[axis], inner)
    big = out.size >= PARALLEL_MIN_ELEMENTS and outer > 1
    (_softmax_parallel if big else _softmax_serial)(x.reshape(shape3), out.reshape(shape3))


def _softmax_scalars(attrs, input_shapes, out_shape):
    return (attrs.get("axis", -1) % len(out_shape),)


register_kernel(Kernel("softmax", softmax, _softmax_scalars))
