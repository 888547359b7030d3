"""Scalar activation kernels, selected by an integer code so one compiled kernel serves all."""

import math

from numba import njit, prange

from .flags import FASTMATH, JIT, PARALLEL_MIN_ELEMENTS

LINEAR, RELU, SIGMOID, TANH, GELU, LEAKY_RELU, SOFTMAX = range(7)
CODES = {"linear": LINEAR, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH, "gelu": GELU,
         "leaky_relu": LEAKY_RELU, "softmax": SOFTMAX}

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


@njit(inline="always", fastmath=FASTMATH)
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
    return v


@njit(inline="always", fastmath=FASTMATH)
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
    if code == RELU:
        for j in range(n):
            v = row[j]
            row[j] = v if (v > 0 or v != v) else 0.0
        return
    for j in range(n):
        row[j] = scalar_activation(row[j], code, alpha)


@njit(parallel=True, **JIT)
def _activate_rows_parallel(x2d, code, alpha):
    for i in prange(x2d.shape[0]):
        activate_row(x2d[i], code, alpha)


@njit(**JIT)
def _activate_rows_serial(x2d, code, alpha):
    for i in range(x2d.shape[0]):
        activate_row(x2d[i], code, alpha)


@njit(**JIT)
def activate_rows(x2d, code, alpha):
    """In place over a C-contiguous 2-D view, in parallel when the work is large enough."""
    if x2d.size >= PARALLEL_MIN_ELEMENTS and x2d.shape[0] > 1:
        _activate_rows_parallel(x2d, code, alpha)
    else:
        _activate_rows_serial(x2d, code, alpha)


@njit(**JIT)
def activation_kernel(x, out, code, alpha):
    """``out = act(x)`` for C-contiguous arrays (``out`` may be ``x``); rows are the last axis."""
    if out.size == 0:
        return
    cols = out.shape[-1]
    rows = out.size // cols
    src = x.reshape((rows, cols))
    dst = out.reshape((rows, cols))
    for i in range(rows):
        dst[i, :] = src[i]
    if code != LINEAR:
        activate_rows(dst, code, alpha)
