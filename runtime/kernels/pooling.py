"""Pooling and zero padding over NHWC; each output row is one parallel work item.

The channel axis is contiguous, so every inner loop runs over channels and vectorises. Max
pooling propagates NaN like ``np.max``; padded cells never take part (TF semantics); it starts
from a window's first cell, so int inputs are pooled in their own dtype.
"""

import numpy as np
from numba import njit, prange

from compiler.ops.pooling import pool_geometry, zero_padding_amounts

from .conv import window_scalars
from .flags import JIT, PARALLEL_MIN_ELEMENTS
from .registry import Kernel, register_kernel

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}


@njit(inline="always", **_INLINE)
def _pool_row(x, out, n, oh, kh, kw, sh, sw, pt, pl, is_max, acc):
    """One output row; ``acc`` is float64 scratch of one pixel's channels (averages sum in
    float64: a 224x224 mean in float32 loses ~3 digits)."""
    h, w, c_n = x.shape[1], x.shape[2], x.shape[3]
    y0 = oh * sh - pt
    ys, ye = max(y0, 0), min(y0 + kh, h)
    for ow in range(out.shape[2]):
        x0 = ow * sw - pl
        xs, xe = max(x0, 0), min(x0 + kw, w)
        dst = out[n, oh, ow]
        if is_max:
            if ye > ys and xe > xs:
                first = x[n, ys, xs]  # the first real cell, not -inf: ints stay exact
                for c in range(c_n):
                    dst[c] = first[c]
            else:
                for c in range(c_n):
                    dst[c] = -np.inf
            for iy in range(ys, ye):
                for ix in range(xs, xe):
                    src = x[n, iy, ix]
                    for c in range(c_n):
                        v, d = src[c], dst[c]
                        # NaN wins and then sticks (v > NaN is False), as in np.max; a select
                        # and an unconditional store, not a branch (on random data the branch
                        # mispredicted: a LeNet-sized pool 1.33 -> 0.48 ms)
                        dst[c] = v if (v > d or v != v) else d
        else:
            for c in range(c_n):
                acc[c] = 0.0
            for iy in range(ys, ye):
                for ix in range(xs, xe):
                    src = x[n, iy, ix]
                    for c in range(c_n):
                        acc[c] += src[c]
            count = (ye - ys) * (xe - xs)
            inv = 1.0 / count if count > 0 else np.nan
            for c in range(c_n):
                dst[c] = acc[c] * inv


# One compiled body for every pooling kernel: ``is_max`` is a typed int (``np.int64(1)``), not a
# literal (numba folds ``np.bool_(True)`` to one), which numba would compile once per value;
# global pooling is a window over the image.
@njit(parallel=True, **JIT)
def _pool_parallel(x, out, kh, kw, sh, sw, pt, pl, is_max):
    oh_n = out.shape[1]
    for r in prange(out.shape[0] * oh_n):
        acc = np.empty(x.shape[3], np.float64)
        _pool_row(x, out, r // oh_n, r % oh_n, kh, kw, sh, sw, pt, pl, is_max, acc)


@njit(**JIT)
def _pool_serial(x, out, kh, kw, sh, sw, pt, pl, is_max):
    oh_n = out.shape[1]
    acc = np.empty(x.shape[3], np.float64)
    for r in range(out.shape[0] * oh_n):
        _pool_row(x, out, r // oh_n, r % oh_n, kh, kw, sh, sw, pt, pl, is_max, acc)


# Kernels are numba functions, so generated code calls them directly (no Python launcher): the
# serial variant never starts threads; the threaded one still keeps small outputs serial.
@njit(**JIT)
def max_pool2d(x, out, kh, kw, sh, sw, pt, pl):
    _pool_serial(x, out, kh, kw, sh, sw, pt, pl, np.int64(1))


@njit(**JIT)
def avg_pool2d(x, out, kh, kw, sh, sw, pt, pl):
    _pool_serial(x, out, kh, kw, sh, sw, pt, pl, np.int64(0))


@njit(**JIT)
def max_pool2d_parallel(x, out, kh, kw, sh, sw, pt, pl):
    if out.size >= PARALLEL_MIN_ELEMENTS:
        _pool_parallel(x, out, kh, kw, sh, sw, pt, pl, np.int64(1))
    else:
        _pool_serial(x, out, kh, kw, sh, sw, pt, pl, np.int64(1))


@njit(**JIT)
def avg_pool2d_parallel(x, out, kh, kw, sh, sw, pt, pl):
    if out.size >= PARALLEL_MIN_ELEMENTS:
        _pool_parallel(x, out, kh, kw, sh, sw, pt, pl, np.int64(0))
    else:
        _pool_serial(x, out, kh, kw, sh, sw, pt, pl, np.int64(0))


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
# A window over the whole image (``out`` viewed as N x 1 x 1 x C): the same compiled bodies as
# windowed pooling; threads split the batch, so a single image stays serial.
@njit(inline="always", **_INLINE)
def _whole_image(x, out):
    """``out`` as N x 1 x 1 x C and the window arguments covering the image: sizes, strides
    and pads typed int64 (numba compiles a callee once per *literal* value it is passed)."""
    one, zero = np.int64(1), np.int64(0)
    return out.reshape((x.shape[0], 1, 1, x.shape[3])), x.shape[1], x.shape[2], one, zero


@njit(**JIT)
def global_max_pool2d(x, out):
    pixels, kh, kw, one, zero = _whole_image(x, out)
    _pool_serial(x, pixels, kh, kw, one, one, zero, zero, np.int64(1))


@njit(**JIT)
def global_avg_pool2d(x, out):
    pixels, kh, kw, one, zero = _whole_image(x, out)
    _pool_serial(x, pixels, kh, kw, one, one, zero, zero, np.int64(0))


@njit(**JIT)
def global_max_pool2d_parallel(x, out):
    pixels, kh, kw, one, zero = _whole_image(x, out)
    if x.size >= PARALLEL_MIN_ELEMENTS and x.shape[0] > 1:
        _pool_parallel(x, pixels, kh, kw, one, one, zero, zero, np.int64(1))
    else:
        _pool_serial(x, pixels, kh, kw, one, one, zero, zero, np.int64(1))


@njit(**JIT)
def global_avg_pool2d_parallel(x, out):
    pixels, kh, kw, one, zero = _whole_image(x, out)
    if x.size >= PARALLEL_MIN_ELEMENTS and x.shape[0] > 1:
        _pool_parallel(x, pixels, kh, kw, one, one, zero, zero, np.int64(0))
    else:
        _pool_serial(x, pixels, kh, kw, one, one, zero, zero, np.int64(0))


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
    src = x[n, iy]
    for ix in range(w):  # element loops: an array-to-slice copy makes numba compile its
        for c in range(src.shape[1]):  # string-formatting shape-mismatch error (~3 s)
            row[left + ix, c] = src[ix, c]
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
