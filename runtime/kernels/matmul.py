"""``matmul``: NumPy's batched matrix product, the batch axes broadcast, rank-1 operands as in
NumPy (a vector is a one-row / one-column matrix whose axis is dropped from the result).

Each output batch is one 2-D product ``(M, K) @ (K, N)`` of contiguous blocks of the operands:
BLAS (``np.dot``) when the three arrays share a float dtype, a plain loop otherwise (integers,
mixed dtypes). The parallel variant spreads (batch, row block) pairs over threads once the
product is large; BLAS itself stays single-threaded (see ``blas.py``).
"""

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .dense import PARALLEL_MIN_MACS
from .flags import JIT
from .registry import Kernel, register_kernel
from .strided import shape_of

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}
_BLOCKS = max(1, numba.config.NUMBA_NUM_THREADS)


def _block(a2, b2, o2):
    """``o2 = a2 @ b2`` for 2-D contiguous blocks; jit-only."""
    raise NotImplementedError


@overload(_block, jit_options=_INLINE)
def _block_impl(a2, b2, o2):
    blas = (a2.dtype == b2.dtype == o2.dtype and
            isinstance(o2.dtype, types.Float))
    if blas:
        def impl(a2, b2, o2):
            if a2.shape[1] == 0:
                o2[:, :] = 0
            else:
                np.dot(a2, b2, o2)
        return impl

    def loop(a2, b2, o2):
        for i in range(o2.shape[0]):
            for j in range(o2.shape[1]):
                acc = 0
                for k in range(a2.shape[1]):
                    acc += a2[i, k] * b2[k, j]
                o2[i, j] = acc
    return loop


@njit(inline="always", **_INLINE)
def _batch_strides(shape, nb, nbo, size):
    """One operand's block stride per output batch axis (0 where it broadcasts); widens
    ``size`` (the output's batch sizes) to the operand's."""
    strides = np.zeros(max(nbo, 1), np.int64)
    step = 1
    for d in range(nb - 1, -1, -1):
        od = d + nbo - nb
        if shape[d] != 1:
            strides[od] = step
        size[od] = max(size[od], shape[d])
        step *= shape[d]
    return strides


@njit(inline="always", **_INLINE)
def _geometry(a, b, out):
    """``(m, k, n, batches, a_offsets, b_offsets)``: the element offset of each output batch's
    block in ``a`` and ``b`` (broadcast batch axes repeat a block)."""
    sa, sb = shape_of(a), shape_of(b)
    ra, rb = a.ndim, b.ndim
    m = 1 if ra == 1 else sa[ra - 2]
    k = sa[ra - 1]
    n = 1 if rb == 1 else sb[rb - 1]
    nba = max(ra - 2, 0)
    nbb = max(rb - 2, 0)
    nbo = max(nba, nbb)
    # per output batch axis: size, and each operand's block stride (0 where it broadcasts)
    size = np.ones(max(nbo, 1), np.int64)
    stra = _batch_strides(sa, nba, nbo, size)
    strb = _batch_strides(sb, nbb, nbo, size)
    batches = 1
    for d in range(nbo):
        batches *= size[d]
    aoff = np.empty(batches, np.int64)
    boff = np.empty(batches, np.int64)
    for t in range(batches):
        rem, ia, ib = t, 0, 0
        for d in range(nbo - 1, -1, -1):
            idx = rem % size[d]
            rem //= size[d]
            ia += idx * stra[d]
            ib += idx * strb[d]
        aoff[t] = ia * m * k
        boff[t] = ib * k * n
    return m, k, n, batches, aoff, boff


@njit(inline="always", **_INLINE)
def _product(af, bf, of, m, k, n, t, aoff, boff, r0, r1):
    a2 = af[aoff[t] + r0 * k:aoff[t] + r1 * k].reshape((r1 - r0, k))
    b2 = bf[boff[t]:boff[t] + k * n].reshape((k, n))
    o2 = of[(t * m + r0) * n:(t * m + r1) * n].reshape((r1 - r0, n))
    _block(a2, b2, o2)


@njit(**JIT)
def matmul(a, b, out):
    """``out = a @ b`` (NumPy ``matmul`` semantics; ``out`` has the broadcast result shape)."""
    if out.size == 0:
        return
    m, k, n, batches, aoff, boff = _geometry(a, b, out)
    _serial(a.ravel(), b.ravel(), out.reshape(-1), m, k, n, batches, aoff, boff)


@njit(inline="always", **_INLINE)
def _serial(af, bf, of, m, k, n, batches, aoff, boff):
    for t in range(batches):
        _product(af, bf, of, m, k, n, t, aoff, boff, 0, m)


@njit(parallel=True, **JIT)
def _matmul_tasks(af, bf, of, m, k, n, batches, aoff, boff, blocks):
    per = (m + blocks - 1) // blocks
    for task in prange(batches * blocks):
        t, blk = task // blocks, task % blocks
        r0 = blk * per
        r1 = min(m, r0 + per)
        if r0 < r1:
            _product(af, bf, of, m, k, n, t, aoff, boff, r0, r1)


@njit(**JIT)
def matmul_parallel(a, b, out):
    """``matmul``, (batch, row block) pairs over threads when the product is large."""
    if out.size == 0:
        return
    m, k, n, batches, aoff, boff = _geometry(a, b, out)
    af, bf, of = a.ravel(), b.ravel(), out.reshape(-1)
    if _BLOCKS == 1 or batches * m * k * n < PARALLEL_MIN_MACS:
        _serial(af, bf, of, m, k, n, batches, aoff, boff)
        return
    blocks = 1 if batches >= _BLOCKS else min(m, max(1, _BLOCKS // batches))
    _matmul_tasks(af, bf, of, m, k, n, batches, aoff, boff, blocks)


register_kernel(Kernel("matmul", matmul, lambda attrs, shapes, out: (),
                       parallel_fn=matmul_parallel))
