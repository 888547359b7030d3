"""Small dense products without BLAS: ``act(x @ kernel + bias)`` as plain jitted loops.

A BLAS call costs a few microseconds of fixed overhead (argument checks, packing, its own
dispatch), more than the whole product of a tiny layer (the seed MLP's 20→256→10 at batch 2).
These loops have none: LLVM vectorizes them, and the weight they read was prepared once per
weights version at plan build (``compiler/passes/prepare_dense.py``):

- *rows* (short inputs, ``in`` < 32): each output row starts as the bias and gains
  ``x[i, k] * kernel[k]`` for every ``k`` (the kernel as it is, nothing prepared);
- *dots* (otherwise): each output is a dot product of an input row with a row of the
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

#: Above this many multiply-adds per call, BLAS' blocked microkernels win over our loops
#: (measured on Zen 3 / AVX2, CPU time: at 32x64x64 BLAS is already ahead; with fewer than
#: ``NARROW_UNITS`` outputs BLAS is inefficient and the dot-product form stays ahead far longer).
WIDE_MAX_MACS = 1 << 16
NARROW_MAX_MACS = 1 << 20
NARROW_UNITS = 16


@njit(**JIT)
def _use_blas(rows, depth, units):
    return rows * depth * units > (NARROW_MAX_MACS if units < NARROW_UNITS else WIDE_MAX_MACS)


@njit(**JIT)
def _rows_update(x, kernel, bias, out):
    """``out = x @ kernel + bias`` by row updates (the inner loop runs along an output row)."""
    rows, depth = x.shape
    units = out.shape[1]
    has_bias = bias.shape[0] > 0
    for i in range(rows):
        o = out[i]
        if has_bias:
            for j in range(units):
                o[j] = bias[j]
        else:
            o[:] = 0
        for k in range(depth):
            w = kernel[k]
            a = x[i, k]
            for j in range(units):
                o[j] += a * w[j]


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
