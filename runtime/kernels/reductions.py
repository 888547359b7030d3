"""Reductions (``sum mean max min`` over an axis set) and ``log_softmax`` along an axis.

A reduction over a run of adjacent axes views the input as ``(outer, reduce, inner)`` and
accumulates over axis 1, vectorised over ``inner``; a non-adjacent axis set is first made
adjacent by moving the reduced axes last (one copy). ``max``/``min`` propagate NaN as NumPy
does; over zero elements they raise (NumPy's error) rather than return an identity.
"""

import math

import numpy as np
from numba import njit, prange

from .along_axis import axis_scalars, run_along_axis
from .flags import JIT, PARALLEL_MIN_ELEMENTS
from .registry import Kernel, register_kernel

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}
SUM, MEAN, MAX, MIN = range(4)
CODES = {"sum": SUM, "mean": MEAN, "max": MAX, "min": MIN}


@njit(inline="always", **_INLINE)
def _reduce_slab(x3, out2, o, code):
    length, inner = x3.shape[1], x3.shape[2]
    dst = out2[o]
    if code == SUM or code == MEAN:
        dst[:] = 0.0
        for r in range(length):
            for j in range(inner):
                dst[j] += x3[o, r, j]
        if code == MEAN:
            for j in range(inner):
                dst[j] = dst[j] / length
        return
    for j in range(inner):
        dst[j] = x3[o, 0, j]
    for r in range(1, length):
        for j in range(inner):
            v, m = x3[o, r, j], dst[j]
            if code == MAX:
                if v > m or v != v:
                    dst[j] = v if m == m else m
            elif v < m or v != v:
                dst[j] = v if m == m else m


@njit(**JIT)
def reduce_serial(x3, out2, code):
    for o in range(x3.shape[0]):
        _reduce_slab(x3, out2, o, code)


@njit(parallel=True, **JIT)
def reduce_parallel(x3, out2, code):
    for o in prange(x3.shape[0]):
        _reduce_slab(x3, out2, o, code)


def _axes(attrs, rank: int) -> tuple:
    axis = attrs.get("axis")
    if axis is None:
        return tuple(range(rank))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    return tuple(sorted(a % rank for a in axes))


def _reduce_launcher(code: int):
    def launch(x, out, attrs):
        axes = _axes(attrs, x.ndim)
        if out.size == 0:
            return
        n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
        if n == 0 and code in (MAX, MIN):
            raise ValueError(f"{'max' if code == MAX else 'min'}: reduction over zero elements "
                             f"(input shape {x.shape}, axes {axes}) has no identity")
        adjacent = not axes or axes == tuple(range(axes[0], axes[0] + len(axes)))
        if not adjacent:
            keep = [a for a in range(x.ndim) if a not in axes]
            x = np.ascontiguousarray(np.transpose(x, keep + list(axes)))
            outer = int(np.prod([x.shape[i] for i in range(len(keep))], dtype=np.int64))
            shape3 = (outer, n, 1)
        else:
            x = np.ascontiguousarray(x)
            lo = axes[0] if axes else x.ndim
            hi = axes[-1] + 1 if axes else x.ndim
            outer = int(np.prod(x.shape[:lo], dtype=np.int64))
            inner = int(np.prod(x.shape[hi:], dtype=np.int64))
            shape3 = (outer, n, inner)
        out2 = out.reshape(shape3[0], shape3[2])
        if n == 0:  # sum: 0; mean: NaN (0 / 0), as NumPy
            out2[:] = 0.0 if code == SUM else np.nan
            return
        big = out.size * n >= PARALLEL_MIN_ELEMENTS and shape3[0] > 1
        (reduce_parallel if big else reduce_serial)(x.reshape(shape3), out2, code)
    return launch


def _attrs(attrs, input_shapes, out_shape):
    return (dict(attrs),)


for _name, _code in CODES.items():
    register_kernel(Kernel(_name, _reduce_launcher(_code), _attrs))


# -- log_softmax -----------------------------------------------------------------------------------
@njit(inline="always", **_INLINE)
def _log_softmax_slab(x3, out3, o, tmp, tot):
    length, inner = x3.shape[1], x3.shape[2]
    src, dst = x3[o], out3[o]
    tmp[:] = -np.inf
    for i in range(length):
        for j in range(inner):
            v = src[i, j]
            if v > tmp[j] or math.isnan(v):
                tmp[j] = v
    tot[:] = 0.0
    for i in range(length):
        for j in range(inner):
            tot[j] += math.exp(src[i, j] - tmp[j])
    for j in range(inner):
        tot[j] = math.log(tot[j])
    for i in range(length):
        for j in range(inner):
            dst[i, j] = (src[i, j] - tmp[j]) - tot[j]  # the reference's order of rounding


@njit(**JIT)
def log_softmax_serial(x3, out3):
    tmp = np.empty(x3.shape[2], dtype=x3.dtype)
    tot = np.empty(x3.shape[2], dtype=x3.dtype)
    for o in range(x3.shape[0]):
        _log_softmax_slab(x3, out3, o, tmp, tot)


@njit(parallel=True, **JIT)
def log_softmax_parallel(x3, out3):
    for o in prange(x3.shape[0]):
        tmp = np.empty(x3.shape[2], dtype=x3.dtype)
        tot = np.empty(x3.shape[2], dtype=x3.dtype)
        _log_softmax_slab(x3, out3, o, tmp, tot)


def log_softmax(x, out, axis):
    """log(softmax(x)) along ``axis``: ``x - max - log(sum(exp(x - max)))``."""
    run_along_axis(x, out, axis, log_softmax_serial, log_softmax_parallel)


register_kernel(Kernel("log_softmax", log_softmax, axis_scalars))
