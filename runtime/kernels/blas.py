"""Strided, accumulating GEMM callable from inside numba kernels.

``np.dot`` in numba wants contiguous operands and cannot accumulate; ``gemm`` here calls the
same BLAS (scipy's OpenBLAS) on strided views, so a kernel can write one group's or panel's
product straight into its output. Kernels parallelise with ``prange``; BLAS itself must stay on
the calling thread, or its spinning workers starve numba's (measured: ~50x slower). The runtime
sets that BLAS to one thread (``runtime.threads``); as a second line of defence, products are cut
into calls of at most ``GEMM_CALL_MAX_MNK`` multiply-adds, far above the size where call overhead
matters.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload
from numba.np.linalg import _BLAS, get_blas_kind

from .flags import JIT

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}

#: Largest product per BLAS call; big enough that per-call packing overhead is negligible.
GEMM_CALL_MAX_MNK = 1 << 24

_NO_TRANSPOSE = ord("N")
# numba's own BLAS bridge (the one ``np.dot`` uses): resolved by symbol name, so kernels that
# call it can still be cached on disk, unlike ctypes function pointers.
_XXGEMM = {dt: _BLAS().numba_xxgemm(dt) for dt in (types.float32, types.float64)}


def _gemm_call(m, n, k, a, lda, b, ldb, c, ldc, beta):
    """``c = a @ b + beta * c`` on row-major views (leading dims ``ld*``); jit-only."""
    raise NotImplementedError


@overload(_gemm_call, jit_options=_INLINE)
def _gemm_call_impl(m, n, k, a, lda, b, ldb, c, ldc, beta):
    xxgemm = _XXGEMM[c.dtype]
    kind = ord(get_blas_kind(c.dtype))

    def impl(m, n, k, a, lda, b, ldb, c, ldc, beta):
        scal = np.empty(2, c.dtype)
        scal[0], scal[1] = 1.0, beta
        # Row-major C = A @ B is column-major C^T = B^T @ A^T: swap operands, no transposes.
        xxgemm(kind, _NO_TRANSPOSE, _NO_TRANSPOSE, n, m, k, scal[0:].ctypes, b.ctypes, ldb,
               a.ctypes, lda, scal[1:].ctypes, c.ctypes, ldc)

    return impl


@njit(**JIT)
def gemm(a, b, c, accumulate):
    """``c = a @ b`` (or ``c += a @ b``) for 2-D views whose last axis is contiguous.

    The views may be column slices of larger arrays (their leading strides become ``ld*``),
    so a kernel can write one group's or panel's result straight into its output.
    """
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        if not accumulate:
            c[:, :] = 0
        return
    item = c.itemsize
    # a one-row view may report any leading stride; BLAS only needs ld >= the row length
    lda = max(a.strides[0] // item, k) if m > 1 else k
    ldb = max(b.strides[0] // item, n) if k > 1 else n
    ldc = max(c.strides[0] // item, n) if m > 1 else n
    # Split rows before depth: a depth split re-reads and re-writes ``c`` once per chunk.
    nb = min(n, 256)
    kb = min(k, 512)
    mb = max(1, min(m, GEMM_CALL_MAX_MNK // (nb * kb)))
    for i0 in range(0, m, mb):
        i1 = min(m, i0 + mb)
        for j0 in range(0, n, nb):
            j1 = min(n, j0 + nb)
            for k0 in range(0, k, kb):
                k1 = min(k, k0 + kb)
                beta = 1.0 if (accumulate or k0 > 0) else 0.0
                _gemm_call(i1 - i0, j1 - j0, k1 - k0, a[i0:i1, k0:k1], lda,
                           b[k0:k1, j0:j1], ldb, c[i0:i1, j0:j1], ldc, beta)
