"""Dense: ``act(x @ kernel + bias)``; BLAS for the product, bias + activation fused per row block.

Large problems split the rows into one block per thread (``prange``); each block runs its own
single-threaded BLAS product and then its epilogue while the rows are still in cache. Small
problems (latency-bound, like batch 2) take the serial path and spawn no threads.
"""

import numba
import numpy as np
from numba import njit, prange

from .activations import CODES, activate_row
from .flags import JIT
from .registry import Kernel, register_kernel

#: Below this many multiply-adds a product runs serially (threads cost more than they save).
PARALLEL_MIN_MACS = 1 << 18
#: Up to this many rows a plain vectorised loop beats a BLAS call (latency-bound batches).
SMALL_ROWS = 8
#: Blocks for the parallel path: one per thread numba may use (a compile-time constant, so the
#: kernel stays cacheable; with fewer active threads the blocks simply run in turn).
_BLOCKS = max(1, numba.config.NUMBA_NUM_THREADS)


@njit(inline="always", **{k: v for k, v in JIT.items() if k != "cache"})
def _rows(x, kernel, bias, out, r0, r1, code, alpha):
    if r1 - r0 <= SMALL_ROWS:
        _small_product(x, kernel, out, r0, r1)
    else:
        np.dot(x[r0:r1], kernel, out[r0:r1])
    has_bias = bias.shape[0] > 0
    for i in range(r0, r1):
        row = out[i]
        if has_bias:
            for j in range(row.shape[0]):
                row[j] += bias[j]
        activate_row(row, code, alpha)


@njit(inline="always", **{k: v for k, v in JIT.items() if k != "cache"})
def _small_product(x, kernel, out, r0, r1):
    """``out[r0:r1] = x[r0:r1] @ kernel`` as rank-1 updates; the inner loop vectorises."""
    units = kernel.shape[1]
    for i in range(r0, r1):
        row = out[i]
        row[:] = 0
        for k in range(kernel.shape[0]):
            xv = x[i, k]
            krow = kernel[k]
            for j in range(units):
                row[j] += xv * krow[j]


@njit(parallel=True, **JIT)
def _dense_parallel(x, kernel, bias, out, code, alpha, blocks):
    rows = x.shape[0]
    step = (rows + blocks - 1) // blocks
    for b in prange(blocks):
        r0 = b * step
        r1 = min(rows, r0 + step)
        if r0 < r1:
            _rows(x, kernel, bias, out, r0, r1, code, alpha)


@njit(**JIT)
def dense_2d(x, kernel, bias, out, code, alpha):
    """``out[...] = act(x @ kernel + bias)``; x ``(rows, in)``, out ``(rows, units)``, C order."""
    rows, fan_in = x.shape
    if rows == 0:
        return
    if fan_in == 0:
        out[:] = 0
        for i in range(rows):
            row = out[i]
            for j in range(row.shape[0]):
                row[j] += bias[j] if bias.shape[0] > 0 else 0
            activate_row(row, code, alpha)
        return
    if _BLOCKS > 1 and rows >= 2 * _BLOCKS and rows * fan_in * out.shape[1] >= PARALLEL_MIN_MACS:
        _dense_parallel(x, kernel, bias, out, code, alpha, _BLOCKS)
    else:
        _rows(x, kernel, bias, out, 0, rows, code, alpha)


@njit(**JIT)
def dense(x, kernel, bias, out, code, alpha):
    """N-d entry point: folds leading axes into rows (views, no copies for C-order arrays)."""
    rows = out.size // out.shape[-1]
    dense_2d(x.reshape((rows, x.shape[-1])), kernel, bias, out.reshape((rows, out.shape[-1])),
             code, alpha)


def _dense_scalars(attrs, input_shapes, out_shape):
    return CODES[attrs.get("activation", "linear")], float(attrs.get("alpha", 0.2))


register_kernel(Kernel("dense", dense, _dense_scalars, param_names=("kernel", "bias")))
