"""``take`` (gather): ``x`` indexed by integer indices along one axis (or flattened).

Indices arrive in whatever dtype the arena holds (floats today: ``3.0``); each is truncated
toward zero as NumPy's ``astype(int64)`` does, a negative one counts from the end, and one out
of range (or NaN) stops the kernel before it reads anything: the launcher raises ``IndexError``
naming the axis, its size and the bad index. Never an out-of-bounds read.
"""

import numpy as np
from numba import njit, prange

from .flags import JIT, PARALLEL_MIN_ELEMENTS
from .registry import Kernel, register_kernel

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}


@njit(**JIT)
def check_indices(idx, n, resolved):
    """Resolve ``idx`` into ``resolved`` (in ``[0, n)``); the position of the first bad index,
    or -1 when all are valid."""
    for j in range(idx.shape[0]):
        v = idx[j]
        if v != v or v >= n or v <= -n - 1:
            return j
        i = np.int64(v)
        if i < 0:
            i += n
        if i < 0 or i >= n:
            return j
        resolved[j] = i
    return -1


@njit(inline="always", **_INLINE)
def _gather_slab(x3, resolved, out3, o):
    for j in range(resolved.shape[0]):
        out3[o, j, :] = x3[o, resolved[j], :]


@njit(**JIT)
def gather_serial(x3, resolved, out3):
    for o in range(x3.shape[0]):
        _gather_slab(x3, resolved, out3, o)


@njit(parallel=True, **JIT)
def gather_parallel(x3, resolved, out3):
    for o in prange(x3.shape[0]):
        _gather_slab(x3, resolved, out3, o)


def take(x, idx, out, axis):
    """``out = np.take(x, idx, axis)`` (``axis`` -1: ``x`` flattened)."""
    if axis < 0:
        outer, n, inner = 1, x.size, 1
    else:
        outer = int(np.prod(x.shape[:axis], dtype=np.int64))
        n = x.shape[axis]
        inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    flat = np.ascontiguousarray(idx).reshape(-1)
    resolved = np.empty(flat.shape[0], np.int64)
    bad = check_indices(flat, n, resolved) if flat.size else -1
    if bad >= 0:
        where = "the flattened input" if axis < 0 else f"axis {axis}"
        raise IndexError(f"take: index {flat[bad].item()!r} (at position {bad} of the indices) "
                         f"is out of range for {where} of size {n} (input shape {x.shape}); valid "
                         f"indices are {-n}..{n - 1}")
    if out.size == 0:
        return
    x3 = np.ascontiguousarray(x).reshape(outer, n, inner)
    out3 = out.reshape(outer, flat.shape[0], inner)
    big = out.size >= PARALLEL_MIN_ELEMENTS and outer > 1
    (gather_parallel if big else gather_serial)(x3, resolved, out3)


def _take_scalars(attrs, input_shapes, out_shape) -> tuple:
    axis = attrs.get("axis")
    if axis is None:
        return (-1,)
    return (axis % len(input_shapes[0]),)


register_kernel(Kernel("take", take, _take_scalars))
