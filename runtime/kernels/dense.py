"""Dense: ``act(x @ kernel + bias)``; BLAS for the product, bias + activation fused per row block.

Two entry points with one calling convention: ``dense`` (serial, cheap to compile, for
latency-bound batches) and ``dense_parallel``, which splits large problems into one row block per
thread (``prange``); each block runs its own single-threaded BLAS product, then its epilogue while
the rows are still in cache. The plan picks the variant per input size, so a process that only
ever sees small batches never compiles a parallel region.
"""

import numba
import numpy as np
from numba import njit, prange

from .activations import activate_row, epilogue_scalars
from .flags import JIT
from .registry import Kernel, register_kernel

#: Below this many multiply-adds a product runs serially (threads cost more than they save):
#: the threshold for kernels that hand work to threads through ``split_work`` (convs, matmul).
PARALLEL_MIN_MACS = 1 << 21
#: The same for dense layers, whose ``prange`` region starts in a few microseconds: two threads
#: broke even at 256k multiply-adds and were 1.1-1.3x faster at 512k, 1.9x at 655k-1.3M (Zen 5,
#: AVX-512 and AVX2 BLAS kernels alike; the seed MLP's 256x20x256 layer 36 -> 17 us).
DENSE_PARALLEL_MIN_MACS = 1 << 19
#: Blocks for the parallel path: one per thread numba may use (a compile-time constant, so the
#: kernel stays cacheable; with fewer active threads the blocks simply run in turn).
_BLOCKS = max(1, numba.config.NUMBA_NUM_THREADS)


@njit(**JIT)
def _rows(x, kernel, bias, out, r0, r1, code, alpha):
    if x.shape[1] == 0:
        out[r0:r1] = 0
    else:
        np.dot(x[r0:r1], kernel, out[r0:r1])
    has_bias = bias.shape[0] > 0
    for i in range(r0, r1):
        row = out[i]
        if has_bias:
            for j in range(row.shape[0]):
                row[j] += bias[j]
        activate_row(row, code, alpha)


@njit(parallel=True, **JIT)
def _blocks_parallel(x, kernel, bias, out, code, alpha, blocks):
    rows = x.shape[0]
    step = (rows + blocks - 1) // blocks
    for b in prange(blocks):
        r0 = b * step
        r1 = min(rows, r0 + step)
        if r0 < r1:
            _rows(x, kernel, bias, out, r0, r1, code, alpha)


@njit(**JIT)
def dense(x, kernel, bias, out, code, alpha):
    """``out = act(x @ kernel + bias)`` over the last axis (leading axes folded into rows)."""
    rows = out.size // out.shape[-1]
    if rows:
        # np.int64(0), not 0: a literal would compile ``_rows`` once more (Literal[int](0))
        _rows(x.reshape((rows, x.shape[-1])), kernel, bias, out.reshape((rows, out.shape[-1])),
              np.int64(0), rows, code, alpha)


@njit(**JIT)
def dense_parallel(x, kernel, bias, out, code, alpha):
    """``dense``, with one row block per thread when the product is large enough."""
    rows = out.size // out.shape[-1]
    if rows == 0:
        return
    x2 = x.reshape((rows, x.shape[-1]))
    out2 = out.reshape((rows, out.shape[-1]))
    if _BLOCKS > 1 and rows >= 2 * _BLOCKS and rows * x2.shape[1] * out2.shape[1] >= \
            DENSE_PARALLEL_MIN_MACS:
        _blocks_parallel(x2, kernel, bias, out2, code, alpha, _BLOCKS)
    else:
        _rows(x2, kernel, bias, out2, np.int64(0), rows, code, alpha)


def _dense_scalars(attrs, input_shapes, out_shape):
    return epilogue_scalars(attrs)


register_kernel(Kernel("dense", dense, _dense_scalars, param_names=("kernel", "bias"),
                       optional_params=frozenset({"bias"}), parallel_fn=dense_parallel))
