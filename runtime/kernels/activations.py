"""Scalar activation kernels, selected by an integer code so one compiled kernel serves all."""

import math

import numpy as np
from numba import njit, prange, uint64

from compiler.ops.activations import LEAKY_RELU_DEFAULT_SLOPE

from .flags import JIT, PARALLEL_MIN_ELEMENTS

LINEAR, RELU, SIGMOID, TANH, GELU, LEAKY_RELU, SOFTMAX, RELU6 = range(8)
CODES = {"linear": LINEAR, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH, "gelu": GELU,
         "leaky_relu": LEAKY_RELU, "softmax": SOFTMAX, "relu6": RELU6}

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


@njit(**JIT)
def scalar_activation(v, code, alpha):
    """One element; SOFTMAX is row-wise and handled by ``activate_row``."""
    if code == RELU:
        return v if (v > 0 or v != v) else 0.0
    if code == SIGMOID:
        return 1.0 / (1.0 + math.exp(-v))
    if code == TANH:
        return math.tanh(v)
    if code == GELU:
        return 0.5 * v * (1.0 + math.erf(v * _INV_SQRT2))
    if code == LEAKY_RELU:
        return v if v >= 0 else v * alpha
    if code == RELU6:  # NaN fails both tests and passes through, as in np.minimum/maximum
        return 0.0 if v < 0 else (6.0 if v > 6 else v)
    return v


@njit(inline="always", **{k: v for k, v in JIT.items() if k != "cache"})
def activate_span(a, r, j0, j1, code, alpha):
    """The activation over ``a[r, j0:j1]`` in place (not SOFTMAX), one loop per code, no view.

    Unsigned indices: with signed ones numba wraps negative indices around, LLVM then cannot
    vectorize and the clamps become unpredictable branches — a 1x1 conv's ReLU6 epilogue ran
    at ~6 ns per element (7.6 ms of MobileNetV2's 112x112x96 layer), 0.14 ns unsigned.
    """
    r = uint64(r)
    if code == RELU:
        for j in range(uint64(j0), uint64(j1)):
            v = a[r, j]
            a[r, j] = v if (v > 0 or v != v) else 0.0
    elif code == RELU6:  # NaN fails both tests and passes through, as in np.minimum/maximum
        for j in range(uint64(j0), uint64(j1)):
            v = a[r, j]
            a[r, j] = 0.0 if v < 0 else (6.0 if v > 6 else v)
    elif code == LEAKY_RELU:
        for j in range(uint64(j0), uint64(j1)):
            v = a[r, j]
            a[r, j] = v if v >= 0 else v * alpha
    elif code != LINEAR:
        for j in range(uint64(j0), uint64(j1)):
            a[r, j] = scalar_activation(a[r, j], code, alpha)


@njit(**JIT)
def activate_row(row, code, alpha):
    """Apply an activation in place to one row (the last axis)."""
    n = row.shape[0]
    if code == LINEAR:
        return
    if code == SOFTMAX:
        if n == 0:
            return
        m = row[0]
        for j in range(1, n):
            if row[j] > m or row[j] != row[j]:
                m = row[j]
        s = 0.0
        for j in range(n):
            e = math.exp(row[j] - m)
            row[j] = e
            s += e
        inv = 1.0 / s
        for j in range(n):
            row[j] = row[j] * inv
        return
    # a new axis, not ``reshape``: numba's reshape calls into its runtime (~40 ns, per row of
    # every dense layer: a 256-row ReLU took 12 us instead of 2)
    activate_span(row[np.newaxis, :], 0, 0, n, code, alpha)


@njit(parallel=True, **JIT)
def _activate_rows_parallel(x2d, code, alpha):
    for i in prange(x2d.shape[0]):
        activate_row(x2d[i], code, alpha)


@njit(**JIT)
def _copy_rows(x, out):
    """2-D views of ``x`` and ``out`` (rows = all but the last axis), ``x`` copied into ``out``."""
    cols = out.shape[-1]
    rows = out.size // cols
    src = x.reshape((rows, cols))
    dst = out.reshape((rows, cols))
    for i in range(rows):
        dst[i, :] = src[i]
    return dst


@njit(**JIT)
def activation_kernel(x, out, code, alpha):
    """``out = act(x)`` for C-contiguous arrays (``out`` may be ``x``); rows are the last axis."""
    if out.size == 0:
        return
    dst = _copy_rows(x, out)
    if code != LINEAR:
        for i in range(dst.shape[0]):
            activate_row(dst[i], code, alpha)


@njit(**JIT)
def activation_kernel_parallel(x, out, code, alpha):
    """``activation_kernel`` with rows spread over threads when there are enough elements."""
    if out.size == 0:
        return
    dst = _copy_rows(x, out)
    if code == LINEAR:
        return
    if out.size >= PARALLEL_MIN_ELEMENTS and dst.shape[0] > 1:
        _activate_rows_parallel(dst, code, alpha)
    else:
        for i in range(dst.shape[0]):
            activate_row(dst[i], code, alpha)


def epilogue_scalars(attrs) -> tuple:
    """``(activation code, alpha)`` of an op's fused activation, Keras' defaults filled in."""
    return (CODES[attrs.get("activation", "linear")],
            float(attrs.get("alpha", LEAKY_RELU_DEFAULT_SLOPE)))
