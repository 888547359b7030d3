"""Mask ops and the 1-D global poolings: ``sequence_mask``, ``masking``, ``global_avg_pool1d``
(plain and masked) and ``global_max_pool1d``, as jitted loops (they ran their NumPy references).

Masks hold 1 (keep) / 0 (skip) in the mask value's dtype (``compiler/ops/sequence.py``). The
average accumulates in float64 as the reference does; an all-masked row is 0/0 = NaN, as Keras.
"""

import numpy as np
from numba import njit

from .flags import JIT
from .registry import Kernel, register_kernel


@njit(**JIT)
def _not_equal_rows(x2, out2, value, reduce_last):
    """``out = x != value`` per element, or (``reduce_last``) any over each row."""
    for i in range(x2.shape[0]):
        if reduce_last:
            keep = False
            for j in range(x2.shape[1]):
                if x2[i, j] != value:
                    keep = True
                    break
            out2[i, 0] = 1 if keep else 0
        else:
            for j in range(x2.shape[1]):
                out2[i, j] = 1 if x2[i, j] != value else 0


def sequence_mask(x, out, mask_value, reduce_last) -> None:
    if x.size == 0:
        return
    width = x.shape[-1] if x.ndim else 1
    x2 = np.ascontiguousarray(x).reshape(-1, width)
    out2 = out.reshape(x2.shape[0], 1 if reduce_last else width)
    _not_equal_rows(x2, out2, x.dtype.type(mask_value) if x.dtype.kind == "f" else mask_value,
                    reduce_last)


@njit(**JIT)
def _masking_rows(x2, out2, value):
    for i in range(x2.shape[0]):
        keep = False
        for j in range(x2.shape[1]):
            if x2[i, j] != value:
                keep = True
                break
        for j in range(x2.shape[1]):
            out2[i, j] = x2[i, j] if keep else 0


def masking(x, out, mask_value) -> None:
    if x.size == 0:
        return
    x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    _masking_rows(x2, out.reshape(x2.shape), x.dtype.type(mask_value))


@njit(**JIT)
def _avg_steps(x, mask, out2, masked):
    n, t, c = x.shape
    acc = np.zeros(c)
    for b in range(n):
        acc[:] = 0.0
        count = 0.0
        for s in range(t):
            if masked and mask[b, s] == 0:
                continue
            count += 1.0
            for k in range(c):
                acc[k] += x[b, s, k]
        for k in range(c):
            out2[b, k] = acc[k] / count if count > 0 else np.nan


def global_avg_pool1d(*args) -> None:
    *inputs, out, keepdims, masked = args
    x = inputs[0]
    mask = inputs[1] if masked and len(inputs) > 1 else np.zeros((0, 0), x.dtype)
    out2 = out.reshape(x.shape[0], x.shape[2])
    if x.shape[1] == 0:  # NumPy's mean of nothing
        out2[...] = np.nan
        return
    _avg_steps(x, mask, out2, bool(masked and len(inputs) > 1))


@njit(**JIT)
def _max_steps(x, out2):
    n, t, c = x.shape
    for b in range(n):
        for k in range(c):
            m = x[b, 0, k]
            for s in range(1, t):
                v = x[b, s, k]
                if m == m and (v > m or v != v):  # NaN wins and stays, as np.max
                    m = v
            out2[b, k] = m


def global_max_pool1d(x, out, keepdims) -> None:
    if x.shape[1] == 0:
        raise ValueError("GlobalMaxPooling1D: input axis 1 (steps) is empty: no maximum")
    _max_steps(x, out.reshape(x.shape[0], x.shape[2]))


def _flag_scalars(*names):
    return lambda attrs, shapes, out: tuple(bool(attrs.get(n, False)) for n in names)


register_kernel(Kernel("sequence_mask", sequence_mask, lambda attrs, shapes, out: (
    float(attrs.get("mask_value", 0.0)), bool(attrs.get("reduce_last", False)))))
register_kernel(Kernel("masking", masking, lambda attrs, shapes, out: (
    float(attrs.get("mask_value", 0.0)),)))
register_kernel(Kernel("global_avg_pool1d", global_avg_pool1d,
                       _flag_scalars("keepdims", "masked")))
register_kernel(Kernel("global_max_pool1d", global_max_pool1d, _flag_scalars("keepdims")))
