"""Direct 2-D convolution in NHWC for few input channels, with fused bias, residual, activation.

With few channels per group (LeNet's 1->6 and 6->16, an RGB stem) an im2col GEMM has a short
reduction axis, so filling the patch matrix costs more than the arithmetic. Here each image is
first copied once into zero-padded, channel-major *phase planes* (one per channel and stride
phase), laid out so that every tap of the filter is a contiguous window of them. One output
channel's plane is then ``sum over taps of weight * shifted window``: the inner loop runs over
contiguous output positions (a "wide" row that includes a few discarded columns), four output
channels and four taps at a time, which LLVM vectorises with four window loads and four
accumulator stores per sixteen multiply-adds (two channels at a time managed eight). The bias
seeds the accumulators; ReLU runs along them; the store to NHWC is then a plain transposing copy
(calling the activation per element between branches had cost more than the arithmetic).

The prepared weight ``(filters, taps)`` (taps ordered channel, ky, kx) is prepared by the compiler
once per weights version (``compiler/passes/prepare_conv.py``). Work items are (image, block of
output channels); each item builds its image's planes, so batches spread over threads and a
single image over its filters.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..threads import get_num_threads, machine_busy, split_work
from .activations import LINEAR, RELU, SOFTMAX
from .conv import _act, conv2d_nhwc, conv_operands
from .dense import PARALLEL_MIN_MACS
from .flags import JIT
from .registry import Kernel, register_kernel

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}
#: Most wide output positions per pass: four tap windows of this many floats and the
#: accumulators (``_ACC_FLOATS``) fit in L1 together.
_CHUNK = 768
#: Float lanes of a vector (AVX2 as numba targets it); passes cover whole vectors.
_LANES = 8
#: Most accumulator floats per pass (all of an item's filters over a run of rows): 24 KiB.
_ACC_FLOATS = 6144


@njit(inline="always", **_INLINE)
def _whole_vectors(m):
    return -(-m // _LANES) * _LANES


@njit(inline="always", **_INLINE)
def _wide_geometry(oh_n, ow_n, kh, kw, sh, sw, dh, dw):
    """``(rows, width, plane)`` of one phase plane; output ``(oh, ow)`` is wide index
    ``oh * width + ow`` and tap ``(ky, kx)`` reads it shifted by ``(ky*dh//sh, kx*dw//sw)``."""
    width = ow_n + ((kw - 1) * dw) // sw
    rows = oh_n + ((kh - 1) * dh) // sh
    # the last wide row's discarded columns read up to (kw-1)*dw//sw past the plane's end
    return rows, width, rows * width + ((kw - 1) * dw) // sw + 1


@njit(inline="always", **_INLINE)
def _fill_planes(x, n, xp, rows, width, plane, sh, sw, pt, pl):
    """Image ``n`` into ``xp`` (zeroed): padded pixel ``(r, q)`` of channel ``c`` goes to phase
    ``(r % sh, q % sw)`` at ``(r // sh, q // sw)``. Phases are stepped, not divided: a division
    per pixel cost more than LeNet's whole first conv."""
    h, w, c_n = x.shape[1], x.shape[2], x.shape[3]
    i, a = pt // sh, pt % sh
    j0, b0 = pl // sw, pl % sw
    for ih in range(h):
        if i >= rows:
            break
        j, b = j0, b0
        row = (a * sw) * plane + i * width
        for iw in range(w):
            if j >= width:
                break
            src = x[n, ih, iw]
            base = row + b * plane + j
            for c in range(c_n):
                xp[c * sh * sw * plane + base] = src[c]
            b += 1
            if b == sw:
                b = 0
                j += 1
        a += 1
        if a == sh:
            a = 0
            i += 1


@njit(inline="always", **_INLINE)
def _tap_offsets(offs, c_n, kh, kw, sh, sw, dh, dw, width, plane):
    """Start of tap ``(c, ky, kx)`` (index ``(c*kh + ky)*kw + kx``) in the flattened planes."""
    for c in range(c_n):
        for ky in range(kh):
            a, i = (ky * dh) % sh, (ky * dh) // sh
            for kx in range(kw):
                b, j = (kx * dw) % sw, (kx * dw) // sw
                offs[(c * kh + ky) * kw + kx] = ((c * sh + a) * sw + b) * plane + i * width + j


@njit(inline="always", **_INLINE)
def _accumulate_quad(xp, offs, t0, p0, w, o, acc, r):
    """Rows ``r..r+3`` of ``acc`` += filters ``o..o+3`` of ``w`` (the packed filter) . taps
    ``t0..`` for wide positions ``p0..p0 + acc.shape[1]``: sixteen multiply-adds per four window
    loads and four accumulator stores (a pair managed eight)."""
    taps = w.shape[1]
    m = acc.shape[1]
    r0, r1, r2, r3 = acc[r], acc[r + 1], acc[r + 2], acc[r + 3]
    t = 0
    while t + 4 <= taps:
        f0, f1, f2, f3 = (offs[t0 + t] + p0, offs[t0 + t + 1] + p0, offs[t0 + t + 2] + p0,
                          offs[t0 + t + 3] + p0)
        x0, x1, x2, x3 = xp[f0:f0 + m], xp[f1:f1 + m], xp[f2:f2 + m], xp[f3:f3 + m]
        a0, a1, a2, a3 = w[o, t], w[o, t + 1], w[o, t + 2], w[o, t + 3]
        b0, b1, b2, b3 = w[o + 1, t], w[o + 1, t + 1], w[o + 1, t + 2], w[o + 1, t + 3]
        c0, c1, c2, c3 = w[o + 2, t], w[o + 2, t + 1], w[o + 2, t + 2], w[o + 2, t + 3]
        d0, d1, d2, d3 = w[o + 3, t], w[o + 3, t + 1], w[o + 3, t + 2], w[o + 3, t + 3]
        for p in range(m):
            v0, v1, v2, v3 = x0[p], x1[p], x2[p], x3[p]
            r0[p] += a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3
            r1[p] += b0 * v0 + b1 * v1 + b2 * v2 + b3 * v3
            r2[p] += c0 * v0 + c1 * v1 + c2 * v2 + c3 * v3
            r3[p] += d0 * v0 + d1 * v1 + d2 * v2 + d3 * v3
        t += 4
    while t < taps:
        f0 = offs[t0 + t] + p0
        x0 = xp[f0:f0 + m]
        a0, b0, c0, d0 = w[o, t], w[o + 1, t], w[o + 2, t], w[o + 3, t]
        for p in range(m):
            v0 = x0[p]
            r0[p] += a0 * v0
            r1[p] += b0 * v0
            r2[p] += c0 * v0
            r3[p] += d0 * v0
        t += 1


@njit(inline="always", **_INLINE)
def _accumulate_pair(xp, offs, t0, p0, w, o0, o1, acc0, acc1):
    """``acc0 += w[o0] . taps``, ``acc1 += w[o1] . taps`` (``w``: the packed filter) over taps
    ``t0..t0+T`` for wide positions ``p0..p0 + len(acc0)``."""
    taps = w.shape[1]
    m = acc0.shape[0]
    t = 0
    while t + 4 <= taps:
        f0, f1, f2, f3 = (offs[t0 + t] + p0, offs[t0 + t + 1] + p0, offs[t0 + t + 2] + p0,
                          offs[t0 + t + 3] + p0)
        x0, x1, x2, x3 = xp[f0:f0 + m], xp[f1:f1 + m], xp[f2:f2 + m], xp[f3:f3 + m]
        a0, a1, a2, a3 = w[o0, t], w[o0, t + 1], w[o0, t + 2], w[o0, t + 3]
        b0, b1, b2, b3 = w[o1, t], w[o1, t + 1], w[o1, t + 2], w[o1, t + 3]
        for p in range(m):
            v0, v1, v2, v3 = x0[p], x1[p], x2[p], x3[p]
            acc0[p] += a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3
            acc1[p] += b0 * v0 + b1 * v1 + b2 * v2 + b3 * v3
        t += 4
    while t < taps:
        f0 = offs[t0 + t] + p0
        x0 = xp[f0:f0 + m]
        a0, b0 = w[o0, t], w[o1, t]
        for p in range(m):
            v0 = x0[p]
            acc0[p] += a0 * v0
            acc1[p] += b0 * v0
        t += 1


@njit(inline="always", **_INLINE)
def _store_rows(acc, n_rows, row0, o_lo, width, out, res, n, code, alpha):
    """``out[n, row0 + i, :, o_lo + r] = act(acc[r, i*width : i*width + ow] + residual)`` for
    ``i < n_rows`` (the bias is already in ``acc``): the discarded columns skipped.

    Without a residual the activation runs along ``acc``'s contiguous rows first (a select
    that vectorises, NaN kept), leaving a plain transposing copy; the store was most of the
    kernel's time when it called the activation per element between branches."""
    o_k, ow_n = acc.shape[0], out.shape[2]
    if res.shape[0] == 0:
        if code == RELU:
            for r in range(o_k):
                row = acc[r]
                for p in range(row.shape[0]):
                    v = row[p]
                    row[p] = 0.0 if v < 0 else v
        elif code != LINEAR:
            for r in range(o_k):
                row = acc[r]
                for p in range(row.shape[0]):
                    row[p] = _act(row[p], code, alpha)
        for i in range(n_rows):
            dst = out[n, row0 + i]
            for ow in range(ow_n):
                p = i * width + ow
                for r in range(o_k):
                    dst[ow, o_lo + r] = acc[r, p]
        return
    for i in range(n_rows):
        oh = row0 + i
        for ow in range(ow_n):
            p = i * width + ow
            for r in range(o_k):
                out[n, oh, ow, o_lo + r] = _act(acc[r, p] + res[n, oh, ow, o_lo + r], code,
                                                alpha)


# Called, not inlined, by both drivers (numba's parfor passes then only see a call).
@njit(**_INLINE)
def _direct_item(x, prepared, bias, res, out, n, o_lo, o_hi, kh, kw, sh, sw, pt, pl, dh, dw,
                 groups, code, alpha):
    """Output channels ``o_lo..o_hi`` of image ``n``."""
    c_n = x.shape[3]
    oh_n, ow_n, o_n = out.shape[1], out.shape[2], out.shape[3]
    rows, width, plane = _wide_geometry(oh_n, ow_n, kh, kw, sh, sw, dh, dw)
    # _LANES - 1 floats of slack: a pass's last vector may run past its positions
    xp = np.zeros(c_n * sh * sw * plane + _LANES - 1, dtype=x.dtype)
    _fill_planes(x, n, xp, rows, width, plane, sh, sw, pt, pl)
    offs = np.empty(c_n * kh * kw, dtype=np.int64)
    _tap_offsets(offs, c_n, kh, kw, sh, sw, dh, dw, width, plane)
    og = o_n // groups
    taps = prepared.shape[1]
    # whole output rows per pass: their accumulators and windows stay in L1
    rows_per = max(1, min(_CHUNK, _ACC_FLOATS // (o_hi - o_lo)) // width)
    m_max = _whole_vectors(min(oh_n, rows_per) * width)
    buf = np.empty((o_hi - o_lo) * m_max, dtype=x.dtype)
    spare = np.zeros(m_max, dtype=x.dtype)
    for oh0 in range(0, oh_n, rows_per):
        n_rows = min(rows_per, oh_n - oh0)
        # whole vectors: no scalar remainder loop (LeNet's second conv has 140 positions)
        m = _whole_vectors(n_rows * width)
        p0 = oh0 * width
        acc = buf[:(o_hi - o_lo) * m].reshape((o_hi - o_lo, m))
        for r in range(o_hi - o_lo):
            b = bias[o_lo + r] if bias.shape[0] > 0 else 0.0
            for p in range(m):
                acc[r, p] = b
        o = o_lo
        while o < o_hi:
            # blocks stay inside a group; an unpaired channel gets a throwaway partner row
            g = o // og
            if o + 3 < o_hi and (o + 3) // og == g:
                _accumulate_quad(xp, offs, g * taps, p0, prepared, o, acc, o - o_lo)
                o += 4
            elif o + 1 < o_hi and (o + 1) // og == g:
                _accumulate_pair(xp, offs, g * taps, p0, prepared, o, o + 1, acc[o - o_lo],
                                 acc[o + 1 - o_lo])
                o += 2
            else:
                _accumulate_pair(xp, offs, g * taps, p0, prepared, o, o, acc[o - o_lo],
                                 spare[:m])
                o += 1
        _store_rows(acc, n_rows, oh0, o_lo, width, out, res, n, code, alpha)


@njit(**JIT)
def _direct_items(x, prepared, bias, res, out, blocks, kh, kw, sh, sw, pt, pl, dh, dw, groups,
                  code, alpha, lo, hi):
    """Work items ``lo:hi`` of (image, block of filters); ``split_work`` spreads them."""
    o_n = out.shape[3]
    per = -(-o_n // blocks)
    per += per % 2  # whole pairs per block
    for item in range(lo, hi):
        n, b = item // blocks, item % blocks
        first = b * per
        if first < o_n:
            _direct_item(x, prepared, bias, res, out, n, first, min(o_n, first + per), kh, kw,
                         sh, sw, pt, pl, dh, dw, groups, code, alpha)


def pack_direct(kernel: np.ndarray) -> np.ndarray:
    """``(kh, kw, cg, filters)`` -> ``(filters, cg*kh*kw)``, taps ordered channel, ky, kx (the
    compiler prepares the same array once per weights version: ``prepare_conv``)."""
    kh, kw, cg, o_n = kernel.shape
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1).reshape(o_n, cg * kh * kw))


def conv2d_direct_nhwc(x, kernel, bias, residual, prepared, out, sh, sw, pt, pl, dh, dw, groups,
                       code, alpha):
    """``out = act(conv(x, kernel) + bias + residual)``; ``residual`` and ``prepared`` may be
    empty (``prepared`` is then computed here)."""
    if out.size == 0:
        return
    if code == SOFTMAX:  # needs whole pixels (all channels) at once: the im2col path has them
        conv2d_nhwc(x, kernel, bias, residual, out, sh, sw, pt, pl, dh, dw, groups, code, alpha)
        return
    kh, kw, cg, o_n = kernel.shape
    if prepared.size == 0:
        prepared = pack_direct(kernel)
    prepared = prepared.reshape(o_n, cg * kh * kw)
    res = residual if residual.size else np.zeros((0, 0, 0, 0), dtype=out.dtype)
    n = out.shape[0]
    threads = 1
    if out.size * kh * kw * cg >= PARALLEL_MIN_MACS and not machine_busy():
        threads = get_num_threads()
    # images spread over threads; too few images and the filters are split as well
    blocks = 1 if threads == 1 or n >= 2 * threads else min(-(-o_n // 2), -(-2 * threads // n))
    split_work(_direct_items, n * blocks, x, prepared, bias, res, out, blocks, kh, kw, sh, sw,
               pt, pl, dh, dw, groups, code, float(alpha), threads=threads)


def conv2d_direct(*args):
    """Kernel-convention launcher: ``(x, [residual], kernel, bias, prepared, out, *scalars)``."""
    x, residual, kernel, bias, prepared, out, scalars = conv_operands(args)
    conv2d_direct_nhwc(x, kernel, bias, residual, prepared, out, *scalars)


def _scalars(attrs, input_shapes, out_shape):
    from .conv import _conv_scalars

    return _conv_scalars(attrs, input_shapes, out_shape)


register_kernel(Kernel("conv2d_direct", conv2d_direct, _scalars,
                       param_names=("kernel", "bias", "prepared"),
                       optional_params=frozenset({"bias", "prepared"})))
