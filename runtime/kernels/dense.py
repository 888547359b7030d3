"""Dense: ``act(x @ kernel + bias)`` over 2-D views; BLAS for the product, fused epilogue."""

import numpy as np
from numba import njit, prange

from .activations import CODES, activate_row
from .flags import JIT, PARALLEL_MIN_ELEMENTS
from .registry import Kernel, register_kernel


@njit(inline="always", **{k: v for k, v in JIT.items() if k != "cache"})
def _epilogue_row(row, bias, has_bias, code, alpha):
    if has_bias:
        for j in range(row.shape[0]):
            row[j] += bias[j]
    activate_row(row, code, alpha)


@njit(parallel=True, **JIT)
def _epilogue_parallel(y, bias, has_bias, code, alpha):
    for i in prange(y.shape[0]):
        _epilogue_row(y[i], bias, has_bias, code, alpha)


@njit(**JIT)
def _epilogue_serial(y, bias, has_bias, code, alpha):
    for i in range(y.shape[0]):
        _epilogue_row(y[i], bias, has_bias, code, alpha)


@njit(**JIT)
def dense_2d(x, kernel, bias, out, code, alpha):
    """``out[...] = act(x @ kernel + bias)``; x ``(rows, in)``, out ``(rows, units)``, C order."""
    rows = x.shape[0]
    if rows == 0:
        return
    if x.shape[1] == 0:
        out[:] = 0
    else:
        np.dot(x, kernel, out)
    has_bias = bias.shape[0] > 0
    if out.size >= PARALLEL_MIN_ELEMENTS and rows > 1:
        _epilogue_parallel(out, bias, has_bias, code, alpha)
    else:
        _epilogue_serial(out, bias, has_bias, code, alpha)


def dense(x, kernel, bias, out, code, alpha):
    """N-d launcher: folds leading axes into rows (views, no copies for C-order arrays)."""
    rows = out.size // out.shape[-1]
    dense_2d(x.reshape(rows, x.shape[-1]), kernel, bias, out.reshape(rows, out.shape[-1]),
             code, alpha)


def _dense_scalars(attrs, input_shapes, out_shape):
    return CODES[attrs.get("activation", "linear")], float(attrs.get("alpha", 0.2))


register_kernel(Kernel("dense", dense, _dense_scalars, param_names=("kernel", "bias")))
