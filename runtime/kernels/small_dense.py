"""Small dense products without BLAS: ``act(x @ kernel + bias)`` as plain jitted loops.

A BLAS call from jitted code has a fixed cost (argument checks, packing) of ~0.2 µs on Zen 4
with scipy's OpenBLAS, and it is inefficient for narrow outputs (the seed MLP's 256→10). These
loops have no fixed cost: LLVM vectorizes them, and the weight they read was prepared once per
weights version at plan build (``compiler/passes/prepare_dense.py``):

- *rows* (``NARROW_UNITS`` outputs or more): each output row starts as the bias and gains
  ``x[i, k] * kernel[k]`` for every ``k``, two rows and four ``k`` per pass (the kernel as it
  is, nothing prepared);
- *dots* (narrow layers): each output is a dot product of an input row with a row of the
  transposed kernel ``packed`` (``(units, in)``, contiguous), in 2x2 blocks.

The bias and activation stay fused (applied while the row is in cache). Above
``WIDE_MAX_MACS`` / ``NARROW_MAX_MACS`` multiply-adds (a large batch) the kernel hands the call to
the BLAS dense kernel, so one plan serves every batch size; the choice is one comparison per call.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .activations import activate_row, epilogue_scalars
from .dense import _rows, dense_parallel
from .flags import JIT
from .registry import Kernel, register_kernel

#: Above this many multiply-adds per call, BLAS wins over our loops. Measured (Zen 4, scipy's
#: OpenBLAS 0.3, calls from jitted code, so no dispatch cost): a BLAS call costs ~0.2 µs, not
#: microseconds, so with ``NARROW_UNITS`` outputs or more it is ahead from ~1k multiply-adds on
#: (2x20x256: 0.32 µs vs 0.55 µs for row updates); with fewer outputs BLAS is inefficient and
#: the dot-product form stays ahead far longer (2x256x10: 0.23 µs vs 0.35 µs).
WIDE_MAX_MACS = 1 << 10
NARROW_MAX_MACS = 1 << 20
NARROW_UNITS = 16


@njit(**JIT)
def _use_blas(rows, depth, units):
    return rows * depth * units > (NARROW_MAX_MACS if units < NARROW_UNITS else WIDE_MAX_MACS)


@njit(**JIT)
def _start_rows(bias, out, r0, r1):
    """Rows ``r0:r1`` of ``out`` start as the bias (or zero)."""
    if bias.shape[0] > 0:
        for i in range(r0, r1):
            for j in range(out.shape[1]):
                out[i, j] = bias[j]
    else:
        out[r0:r1] = 0


@njit(**JIT)
def _rows_update(x, kernel, bias, out):
    """``out = x @ kernel + bias`` by row updates, two output rows at a time, four kernel rows
    per pass: one load of a kernel element feeds both rows, one load and store of an output
    element covers four multiply-adds. Everything is indexed on the 2-D arrays themselves: row
    views (``out[i]``) look like separate pointers to LLVM, and past a few of them it gives up
    vectorizing the loop (measured: 5x slower)."""
    rows, depth = x.shape
    units = out.shape[1]
    _start_rows(bias, out, 0, rows)
    for i in range(0, rows - 1, 2):
        k = 0
        while k + 4 <= depth:
            a0, a1, a2, a3 = x[i, k], x[i, k + 1], x[i, k + 2], x[i, k + 3]
            c0, c1, c2, c3 = x[i + 1, k], x[i + 1, k + 1], x[i + 1, k + 2], x[i + 1, k + 3]
            for j in range(units):
                w0, w1 = kernel[k, j], kernel[k + 1, j]
                w2, w3 = kernel[k + 2, j], kernel[k + 3, j]
                out[i, j] += a0 * w0 + a1 * w1 + a2 * w2 + a3 * w3
                out[i + 1, j] += c0 * w0 + c1 * w1 + c2 * w2 + c3 * w3
            k += 4
        while k < depth:
            a0, c0 = x[i, k], x[i + 1, k]
            for j in range(units):
                out[i, j] += a0 * kernel[k, j]
                out[i + 1, j] += c0 * kernel[k, j]
            k += 1
    if rows % 2:
        i = rows - 1
        for k in range(depth):
            a0 = x[i, k]
            for j in range(units):
                out[i, j] += a0 * kernel[k, j]


@njit(**JIT)
def _dots(x, packed, bias, out):
    """``out = x @ packed.T + bias``: dot products on the transposed kernel, in 2x2 blocks
    (two input rows by two kernel rows: four loads feed four multiply-adds)."""
    rows, depth = x.shape
    units = out.shape[1]
    has_bias = bias.shape[0] > 0
    zero = out.dtype.type(0)
    i = 0
    while i < rows:
        i1 = i + 1 if i + 1 < rows else i  # an odd last row is computed twice, written once
        x0, x1 = x[i], x[i1]
        j = 0
        while j < units:
            j1 = j + 1 if j + 1 < units else j
            w0, w1 = packed[j], packed[j1]
            s00 = s01 = s10 = s11 = zero
            for k in range(depth):
                a0, a1, b0, b1 = x0[k], x1[k], w0[k], w1[k]
                s00 += a0 * b0
                s01 += a0 * b1
                s10 += a1 * b0
                s11 += a1 * b1
            if has_bias:
                s00 += bias[j]
                s01 += bias[j1]
                s10 += bias[j]
                s11 += bias[j1]
            out[i, j] = s00
            out[i, j1] = s01
            out[i1, j] = s10
            out[i1, j1] = s11
            j += 2
        i += 2


@njit(**JIT)
def _small(x2, kernel, bias, packed, out2, code, alpha):
    if packed.shape[0] > 0:
        _dots(x2, packed.reshape((out2.shape[1], x2.shape[1])), bias, out2)
    else:
        _rows_update(x2, kernel, bias, out2)
    if code != 0:
        for i in range(out2.shape[0]):
            activate_row(out2[i], code, alpha)


@njit(**JIT)
def dense_small(x, kernel, bias, packed, out, code, alpha):
    """``out = act(x @ kernel + bias)``; ``packed`` is the transposed kernel (or empty: use
    row updates on ``kernel``). Large calls go to BLAS."""
    units = out.shape[-1]
    rows = out.size // units if units else 0
    if rows == 0:
        return
    depth = x.shape[-1]
    x2 = x.reshape((rows, depth))
    out2 = out.reshape((rows, units))
    if _use_blas(rows, depth, units):
        _rows(x2, kernel, bias, out2, np.int64(0), rows, code, alpha)
    else:
        _small(x2, kernel, bias, packed, out2, code, alpha)


@njit(**JIT)
def dense_small_parallel(x, kernel, bias, packed, out, code, alpha):
    """``dense_small``, with BLAS row blocks over threads for large batches."""
    units = out.shape[-1]
    rows = out.size // units if units else 0
    if rows == 0:
        return
    depth = x.shape[-1]
    if _use_blas(rows, depth, units):
        dense_parallel(x, kernel, bias, out, code, alpha)
    else:
        _small(x.reshape((rows, depth)), kernel, bias, packed, out.reshape((rows, units)),
               code, alpha)


def _scalars(attrs, input_shapes, out_shape):
    return epilogue_scalars(attrs)


register_kernel(Kernel("dense_small", dense_small, _scalars,
                       param_names=("kernel", "bias", "packed"),
                       optional_params=frozenset({"bias", "packed"}),
                       parallel_fn=dense_small_parallel))
