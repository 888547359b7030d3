"""Depthwise 2-D convolution in NHWC with fused bias and activation.

Each output pixel needs only ``kh * kw`` multiply-adds per channel, so the kernel is bound by
loads and loop overhead, not arithmetic. The channel axis is contiguous in the input, the kernel
and the output, so every inner loop runs over channels and vectorises. For the common 3x3
multiplier-1 layer (MobileNet) an interior pixel is one pass over its channels that sums all nine
taps in registers and stores once; pixels touching the padding, other kernel sizes and depth
multipliers accumulate tap by tap into the output row, skipping out-of-image taps (zero padding,
explicit or ``same``). Work items are output rows (``n, oh``), spread over threads when large.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from compiler.ops.conv import pair

from ..threads import machine_busy
from .activations import activate_span, epilogue_scalars
from .conv import window_scalars
from .flags import JIT, PARALLEL_MIN_ELEMENTS
from .registry import Kernel, register_kernel

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}


@njit(inline="always", **_INLINE)
def _pixel_3x3(dst, r0, r1, r2, i0, dw, k9, bias):
    """All nine taps of one interior pixel in one pass over the channels; ``i0`` is the leftmost
    input column, ``r0..r2`` the three input rows ``(W, C)``."""
    i1, i2 = i0 + dw, i0 + 2 * dw
    # 1-D views indexed from 0 by an unsigned counter: the loop's addresses are then plain
    # strides from nine bases (see ``conv._winograd_rows``)
    a0, a1, a2, b0, b1, b2 = r0[i0], r0[i1], r0[i2], r1[i0], r1[i1], r1[i2]
    c0, c1, c2 = r2[i0], r2[i1], r2[i2]
    k0, k1, k2, k3, k4, k5, k6, k7, k8 = (k9[0], k9[1], k9[2], k9[3], k9[4], k9[5], k9[6],
                                          k9[7], k9[8])
    for c in range(uint64(dst.shape[0])):
        acc = bias[c] + a0[c] * k0[c] + a1[c] * k1[c] + a2[c] * k2[c]
        acc += b0[c] * k3[c] + b1[c] * k4[c] + b2[c] * k5[c]
        acc += c0[c] * k6[c] + c1[c] * k7[c] + c2[c] * k8[c]
        dst[c] = acc


@njit(inline="always", **_INLINE)
def _pixel_taps(dst, x, kflat, bias, n, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw, mult):
    """One pixel, tap by tap, skipping taps outside the image (any size, any multiplier)."""
    h, w, c_n = x.shape[1], x.shape[2], x.shape[3]
    for j in range(dst.shape[0]):
        dst[j] = bias[j]
    for ky in range(kh):
        ih = oh * sh - pt + ky * dh
        if ih < 0 or ih >= h:
            continue
        for kx in range(kw):
            iw = ow * sw - pl + kx * dw
            if iw < 0 or iw >= w:
                continue
            src = x[n, ih, iw]
            k = kflat[ky * kw + kx]
            if mult == 1:
                for c in range(c_n):
                    dst[c] += src[c] * k[c]
            else:
                for c in range(c_n):
                    v = src[c]
                    for m in range(mult):
                        dst[c * mult + m] += v * k[c * mult + m]


# Called, not inlined, by both drivers: compiled once, and the parallel driver's parfor passes
# only see a call (numba's compile time grows with the size of a prange body).
@njit(**_INLINE)
def _depthwise_row(x, kflat, bias, out, n, oh, kh, kw, sh, sw, pt, pl, dh, dw, code, alpha):
    """Output row ``(n, oh)``."""
    h, w = x.shape[1], x.shape[2]
    mult = kflat.shape[1] // x.shape[3]
    ow_n = out.shape[2]
    orow = out[n, oh]
    ih0 = oh * sh - pt
    fast = (kh == 3 and kw == 3 and mult == 1 and ih0 >= 0 and ih0 + 2 * dh < h)
    if fast:
        r0, r1, r2 = x[n, ih0], x[n, ih0 + dh], x[n, ih0 + 2 * dh]
        # interior columns: the whole 3-wide window inside the row
        lo = min(ow_n, max(0, -(-pl // sw)))
        hi = max(lo, min(ow_n, (w - 1 - 2 * dw + pl) // sw + 1))
    else:
        r0 = r1 = r2 = x[n, 0]
        lo = hi = 0
    for ow in range(ow_n):
        dst = orow[ow]
        if lo <= ow < hi:
            _pixel_3x3(dst, r0, r1, r2, ow * sw - pl, dw, kflat, bias)
        else:
            _pixel_taps(dst, x, kflat, bias, n, oh, ow, kh, kw, sh, sw, pt, pl, dh,
                        dw, mult)
        # on the row as it is (2-D): a reshape per pixel calls into numba's runtime and cost
        # more than the pixel's arithmetic
        activate_span(orow, ow, 0, orow.shape[1], code, alpha)


@njit(parallel=True, **JIT)
def _depthwise_parallel(x, kflat, bias, out, kh, kw, sh, sw, pt, pl, dh, dw, code, alpha):
    oh_n = out.shape[1]
    for r in prange(out.shape[0] * oh_n):
        _depthwise_row(x, kflat, bias, out, r // oh_n, r % oh_n, kh, kw, sh, sw, pt, pl, dh, dw,
                       code, alpha)


@njit(**JIT)
def _depthwise_serial(x, kflat, bias, out, kh, kw, sh, sw, pt, pl, dh, dw, code, alpha):
    oh_n = out.shape[1]
    for r in range(out.shape[0] * oh_n):
        _depthwise_row(x, kflat, bias, out, r // oh_n, r % oh_n, kh, kw, sh, sw, pt, pl, dh, dw,
                       code, alpha)


def depthwise_conv2d(x, kernel, bias, out, sh, sw, pt, pl, dh, dw, code, alpha):
    """``out[..., c*mult + m] = act(sum x[..., c] * kernel[ky, kx, c, m] + bias)``."""
    if out.size == 0:
        return
    kh, kw, c_n, mult = kernel.shape
    # (taps, C*mult): a view of the stored kernel (C-contiguous), so nothing is copied per call
    kflat = np.ascontiguousarray(kernel).reshape(kh * kw, c_n * mult)
    if bias.size == 0:  # a zero bias keeps one specialization and no branch per channel
        bias = np.zeros(c_n * mult, dtype=out.dtype)
    parallel = out.size >= PARALLEL_MIN_ELEMENTS and not machine_busy()
    run = _depthwise_parallel if parallel else _depthwise_serial
    run(x, kflat, bias, out, kh, kw, sh, sw, pt, pl, dh, dw, code, float(alpha))


def _depthwise_scalars(attrs, input_shapes, out_shape):
    k = pair(attrs["kernel_size"], "kernel_size", "depthwise_conv2d")
    return window_scalars(attrs, input_shapes[0], out_shape, k) + epilogue_scalars(attrs)


register_kernel(Kernel("depthwise_conv2d", depthwise_conv2d, _depthwise_scalars,
                       param_names=("kernel", "bias"), optional_params=frozenset({"bias"})))
