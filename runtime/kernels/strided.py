"""Strided region copies: the one loop behind ``transpose``, ``slice`` and ``pad``.

Each of those ops copies a box of elements from one flat array to another; only the element
strides and the base offsets differ (a transpose permutes the source strides, a slice offsets
the source, a pad offsets the destination). ``copy_region`` walks the box row by row (every
axis but the last, or the last two when the last is short), so the parallel variant splits rows
over threads. The helpers work on any
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


#: A last axis shorter than this is walked together with the one before it (see ``_row_axes``).
_SHORT_INNER = 16


@njit(inline="always", **_INLINE)
def _row_axes(box):
    """How many leading axes index the rows: all but the last, or all but the last two when
    the last is short. An NCHW -> NHWC transpose of a 3-channel image has rows of 3 elements,
    and the per-row index arithmetic (a division per axis) cost ~4 ns per element (0.58 ms for
    a 224x224 input); walking (W, C) as two loops leaves that arithmetic once per image row."""
    rank = box.shape[0]
    return rank - 2 if rank >= 2 and box[rank - 1] < _SHORT_INNER else rank - 1


@njit(inline="always", **_INLINE)
def _rows(src, sbase, sstr, dst, dbase, dstr, box, r0, r1):
    rank = box.shape[0]
    outer = _row_axes(box)
    inner = box[rank - 1]
    si, di = sstr[rank - 1], dstr[rank - 1]
    if outer < rank - 1:  # the axis before the last is walked here too
        mid, sm, dm = box[rank - 2], sstr[rank - 2], dstr[rank - 2]
    else:
        mid, sm, dm = 1, 0, 0
    for r in range(r0, r1):
        rem, so, do = r, sbase, dbase
        for d in range(outer - 1, -1, -1):
            idx = rem % box[d]
            rem //= box[d]
            so += idx * sstr[d]
            do += idx * dstr[d]
        for _ in range(mid):
            if si == 1 and di == 1:
                for j in range(inner):
                    dst[do + j] = src[so + j]
            else:
                for j in range(inner):
                    dst[do + j * di] = src[so + j * si]
            so += sm
            do += dm


@njit(inline="always", **_INLINE)
def _row_count(box):
    """Rows of ``box`` (its first ``_row_axes`` axes); 0 when the box is empty."""
    rows = 1
    for d in range(_row_axes(box)):
        rows *= box[d]
    for d in range(box.shape[0]):
        if box[d] == 0:
            return 0
    return rows


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
