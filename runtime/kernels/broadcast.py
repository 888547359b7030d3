"""NumPy broadcasting for the element-wise kernels (``elementwise_ops``, ``merge``): one layout
of the operands over ``out``'s coalesced axes, and each operand's offset of an ``out`` row.

Operands are taken as C-contiguous and right-aligned to ``out``; a broadcast axis gets element
stride 0. Axes of size 1 are dropped and neighbours whose strides chain are merged, so
``(N, H, W, C) * (N, 1, 1, C)`` runs as ``(N, H*W, C) * (N, 1, C)`` and the inner loop is as
long as possible.
"""

import functools

import numpy as np
from numba import njit

from .flags import JIT

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}


@functools.lru_cache(maxsize=512)  # a plan calls with the same few shapes over and over
def layout(out_shape: tuple, *shapes: tuple):
    """``(sizes, strides)``: int64 arrays, ``strides[k, d]`` the element stride of operand
    ``k`` along coalesced axis ``d`` of ``out`` (0 where it broadcasts)."""
    rank = len(out_shape)
    per = []
    for shape in shapes:
        padded = (1,) * (rank - len(shape)) + tuple(shape)
        st, step = [0] * rank, 1
        for d in range(rank - 1, -1, -1):
            st[d] = step if padded[d] != 1 else 0
            step *= padded[d]
        per.append(st)
    dims = [(out_shape[d], tuple(st[d] for st in per)) for d in range(rank) if out_shape[d] != 1]
    merged: list = []
    for size, strides in dims:
        if merged:
            psize, pstrides = merged[-1]
            if all(p == s * size for p, s in zip(pstrides, strides)):
                merged[-1] = (psize * size, strides)
                continue
        merged.append((size, strides))
    if not merged:
        merged = [(1, (0,) * len(shapes))]
    sizes = np.array([m[0] for m in merged], np.int64)
    strides = np.array([m[1] for m in merged], np.int64).T.copy()
    sizes.flags.writeable = strides.flags.writeable = False
    return sizes, strides


@njit(inline="always", **_INLINE)
def row_offsets(r, sizes, strides, offs):
    """Each operand's offset of row ``r`` (all axes but the last)."""
    rank = sizes.shape[0]
    offs[:] = 0
    rem = r
    for d in range(rank - 2, -1, -1):
        idx = rem % sizes[d]
        rem //= sizes[d]
        for k in range(offs.shape[0]):
            offs[k] += idx * strides[k, d]
