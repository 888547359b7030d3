"""Strided region copies: the one loop behind ``transpose``, ``slice`` and ``pad``.

Each of those ops copies a box of elements from one flat array to another; only the element
strides and the base offsets differ (a transpose permutes the source strides, a slice offsets
the source, a pad offsets the destination). ``copy_region`` walks the box row by row (every
axis but the last), so the parallel variant splits rows over threads. The helpers work on any
rank (a rank-0 box is one element) and any dtype: numba specializes on the arrays' types.
"""

import numpy as np
from numba import njit, prange

from .flags import JIT

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}
_ROWS_PER_TASK = 64


@njit(inline="always", **_INLINE)
def shape_of(x):
    """``x.shape`` as an int64 array of at least one entry (a rank-0 array is ``[1]``)."""
    s = np.ones(max(x.ndim, 1), np.int64)
    for d in range(x.ndim):
        s[d] = x.shape[d]
    return s


@njit(inline="always", **_INLINE)
def natural_strides(shape):
    """Element strides of a C-contiguous array of ``shape``."""
    st = np.empty(shape.shape[0], np.int64)
    step = 1
    for d in range(shape.shape[0] - 1, -1, -1):
        st[d] = step
        step *= shape[d]
    return st


@njit(inline="always", **_INLINE)
def _rows(src, sbase, sstr, dst, dbase, dstr, box, r0, r1):
    rank = box.shape[0]
    inner = box[rank - 1]
    si, di = sstr[rank - 1], dstr[rank - 1]
    for r in range(r0, r1):
        rem, so, do = r, sbase, dbase
        for d in range(rank - 2, -1, -1):
            idx = rem % box[d]
            rem //= box[d]
            so += idx * sstr[d]
            do += idx * dstr[d]
        if si == 1 and di == 1:
            for j in range(inner):
                dst[do + j] = src[so + j]
        else:
            for j in range(inner):
                dst[do + j * di] = src[so + j * si]


@njit(inline="always", **_INLINE)
def _row_count(box):
    """Rows of ``box`` (every axis but the last); 0 when the box is empty."""
    rows = 1
    for d in range(box.shape[0] - 1):
        rows *= box[d]
    return rows if box[box.shape[0] - 1] > 0 else 0


@njit(**JIT)
def copy_region(src, sbase, sstr, dst, dbase, dstr, box):
    """``dst[dbase + i·dstr] = src[sbase + i·sstr]`` for every index ``i`` of ``box``."""
    _rows(src, sbase, sstr, dst, dbase, dstr, box, 0, _row_count(box))


@njit(parallel=True, **JIT)
def copy_region_parallel(src, sbase, sstr, dst, dbase, dstr, box):
    """``copy_region``, rows spread over threads."""
    rows = _row_count(box)
    tasks = (rows + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK
    for t in prange(tasks):
        _rows(src, sbase, sstr, dst, dbase, dstr, box, t * _ROWS_PER_TASK,
              min(rows, (t + 1) * _ROWS_PER_TASK))
