"""Pooling and zero padding over NHWC; each output row is one parallel work item.

The channel axis is contiguous, so every inner loop runs over channels and vectorises. Max
pooling propagates NaN like ``np.max``; padded cells never take part (TF semantics); it starts
from a window's first cell, so int inputs are pooled in their own dtype.
"""

import math

import numpy as np
from numba import njit, prange

from compiler.ops.pooling import pool_geometry, zero_padding_amounts

from .conv import window_scalars
from .flags import JIT, PARALLEL_MIN_ELEMENTS
from .registry import Kernel, register_kernel

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}


@njit(inline="always", **_INLINE)
def _pool_row(x, out, n, oh, kh, kw, sh, sw, pt, pl, is_max):
    h, w, c_n = x.shape[1], x.shape[2], x.shape[3]
    y0 = oh * sh - pt
    ys, ye = max(y0, 0), min(y0 + kh, h)
    for ow in range(out.shape[2]):
        x0 = ow * sw - pl
        xs, xe = max(x0, 0), min(x0 + kw, w)
        acc = out[n, oh, ow]
        if not is_max:
            acc[:] = 0.0
        elif ye > ys and xe > xs:
            acc[:] = x[n, ys, xs]  # the first real cell, not -inf: ints stay exact
        else:
            acc[:] = -np.inf
        for iy in range(ys, ye):
            for ix in range(xs, xe):
                src = x[n, iy, ix]
                if is_max:
                    for c in range(c_n):
                        v = src[c]
                        # NaN wins and then sticks (v > NaN is False), as in np.max
                        if v > acc[c] or math.isnan(v):
                            acc[c] = v
                else:
                    for c in range(c_n):
                        acc[c] += src[c]
        if not is_max:
            count = (ye - ys) * (xe - xs)
            inv = 1.0 / count if count > 0 else np.nan
            for c in range(c_n):
                acc[c] = acc[c] * inv


@njit(parallel=True, **JIT)
def _pool_parallel(x, out, kh, kw, sh, sw, pt, pl, is_max):
    oh_n = out.shape[1]
    for r in prange(out.shape[0] * oh_n):
        _pool_row(x, out, r // oh_n, r % oh_n, kh, kw, sh, sw, pt, pl, is_max)


@njit(**JIT)
def _pool_serial(x, out, kh, kw, sh, sw, pt, pl, is_max):
    oh_n = out.shape[1]
    for r in range(out.shape[0] * oh_n):
        _pool_row(x, out, r // oh_n, r % oh_n, kh, kw, sh, sw, pt, pl, is_max)


# Kernels are numba functions, so generated code calls them directly (no Python launcher): the
# serial variant never starts threads; the threaded one still keeps small outputs serial.
@njit(**JIT)
def max_pool2d(x, out, kh, kw, sh, sw, pt, pl):
    _pool_serial(x, out, kh, kw, sh, sw, pt, pl, True)


@njit(**JIT)
def avg_pool2d(x, out, kh, kw, sh, sw, pt, pl):
    _pool_serial(x, out, kh, kw, sh, sw, pt, pl, False)


@njit(**JIT)
def _pool_threaded(x, out, kh, kw, sh, sw, pt, pl, is_max):
    if out.size >= PARALLEL_MIN_ELEMENTS:
        _pool_parallel(x, out, kh, kw, sh, sw, pt, pl, is_max)
    else:
        _pool_serial(x, out, kh, kw, sh, sw, pt, pl, is_max)


@njit(**JIT)
def max_pool2d_parallel(x, out, kh, kw, sh, sw, pt, pl):
    _pool_threaded(x, out, kh, kw, sh, sw, pt, pl, True)


@njit(**JIT)
def avg_pool2d_parallel(x, out, kh, kw, sh, sw, pt, pl):
    _pool_threaded(x, out, kh, kw, sh, sw, pt, pl, False)


def _pool_scalars(attrs, input_shapes, out_shape):
    geo = pool_geometry(attrs, "pooling")
    kh, kw = geo["pool_size"]
    sh, sw, pt, pl, _, _ = window_scalars(geo, input_shapes[0], out_shape, (kh, kw), "pooling")
    return kh, kw, sh, sw, pt, pl


register_kernel(Kernel("max_pool2d", max_pool2d, _pool_scalars,
                       parallel_fn=max_pool2d_parallel))
register_kernel(Kernel("avg_pool2d", avg_pool2d, _pool_scalars,
                       parallel_fn=avg_pool2d_parallel))


# -- global pooling ------------------------------------------------------------------------------
@njit(inline="always", **_INLINE)
def _global_image(x, out2d, n, is_max):
    acc = out2d[n]
    c_n = x.shape[3]
    if is_max:
        if x.shape[1] * x.shape[2] > 0:
            acc[:] = x[n, 0, 0]
        else:
            acc[:] = -np.inf
        for iy in range(x.shape[1]):
            for ix in range(x.shape[2]):
                src = x[n, iy, ix]
                for c in range(c_n):
                    v = src[c]
                    if v > acc[c] or math.isnan(v):
                        acc[c] = v
    else:
        # accumulate in float64: a 224x224 mean in float32 loses ~3 digits
        s = np.zeros(c_n, dtype=np.float64)
        for iy in range(x.shape[1]):
            for ix in range(x.shape[2]):
                src = x[n, iy, ix]
                for c in range(c_n):
                    s[c] += src[c]
        count = x.shape[1] * x.shape[2]
        inv = 1.0 / count if count > 0 else np.nan
        for c in range(c_n):
            acc[c] = s[c] * inv


@njit(parallel=True, **JIT)
def _global_parallel(x, out2d, is_max):
    for n in prange(x.shape[0]):
        _global_image(x, out2d, n, is_max)


@njit(**JIT)
def _global_serial(x, out2d, is_max):
    for n in range(x.shape[0]):
        _global_image(x, out2d, n, is_max)


@njit(**JIT)
def global_max_pool2d(x, out):
    _global_serial(x, out.reshape((x.shape[0], x.shape[3])), True)


@njit(**JIT)
def global_avg_pool2d(x, out):
    _global_serial(x, out.reshape((x.shape[0], x.shape[3])), False)


@njit(**JIT)
def _global_threaded(x, out, is_max):
    out2d = out.reshape((x.shape[0], x.shape[3]))
    if x.size >= PARALLEL_MIN_ELEMENTS and x.shape[0] > 1:
        _global_parallel(x, out2d, is_max)
    else:
        _global_serial(x, out2d, is_max)


@njit(**JIT)
def global_max_pool2d_parallel(x, out):
    _global_threaded(x, out, True)


@njit(**JIT)
def global_avg_pool2d_parallel(x, out):
    _global_threaded(x, out, False)


def _no_scalars(attrs, input_shapes, out_shape):
    return ()


register_kernel(Kernel("global_max_pool2d", global_max_pool2d, _no_scalars,
                       parallel_fn=global_max_pool2d_parallel))
register_kernel(Kernel("global_avg_pool2d", global_avg_pool2d, _no_scalars,
                       parallel_fn=global_avg_pool2d_parallel))


# -- zero padding --------------------------------------------------------------------------------
@njit(inline="always", **_INLINE)
def _pad_row(x, out, n, oy, top, left):
    h = x.shape[1]
    row = out[n, oy]
    iy = oy - top
    if iy < 0 or iy >= h:
        row[:, :] = 0.0
        return
    w = x.shape[2]
    row[:left, :] = 0.0
    row[left:left + w, :] = x[n, iy]
    row[left + w:, :] = 0.0


@njit(parallel=True, **JIT)
def _pad_parallel(x, out, top, left):
    oh_n = out.shape[1]
    for r in prange(out.shape[0] * oh_n):
        _pad_row(x, out, r // oh_n, r % oh_n, top, left)


@njit(**JIT)
def _pad_serial(x, out, top, left):
    oh_n = out.shape[1]
    for r in range(out.shape[0] * oh_n):
        _pad_row(x, out, r // oh_n, r % oh_n, top, left)


@njit(**JIT)
def zero_padding2d(x, out, top, left):
    _pad_serial(x, out, top, left)


@njit(**JIT)
def zero_padding2d_parallel(x, out, top, left):
    if out.size >= PARALLEL_MIN_ELEMENTS:
        _pad_parallel(x, out, top, left)
    else:
        _pad_serial(x, out, top, left)


def _padding_scalars(attrs, input_shapes, out_shape):
    (top, _), (left, _) = zero_padding_amounts(attrs)
    return top, left


register_kernel(Kernel("zero_padding2d", zero_padding2d, _padding_scalars,
                       parallel_fn=zero_padding2d_parallel))
