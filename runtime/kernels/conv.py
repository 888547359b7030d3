"""2-D convolutions in NHWC with fused bias, residual and activation.

Three algorithms, picked per call from the shapes:

* 3x3, stride 1, dilation 1, ungrouped with enough channels and tiles: Winograd F(2x2, 3x3). It
  does 2.25x fewer multiplications than a direct convolution and turns the rest into 16 BLAS
  GEMMs. Work items are blocks of tile rows; a small image also splits its output channels.
* 1x1 stride 1 without padding: the convolution *is* a GEMM over the ``(N*H*W, C)`` view.
* everything else: im2col over chunks of output rows (patches stay in cache) + one GEMM per chunk
  and group, written straight into ``out``.

The epilogue ``act(y + bias + residual)`` runs on each chunk while it is still in cache.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, uint64

from compiler.ops.conv import pair, window_pads

from ..threads import get_num_threads, machine_busy, split_work
from .activations import (
    LEAKY_RELU,
    LINEAR,
    RELU,
    RELU6,
    SOFTMAX,
    activate_row,
    activate_span,
    epilogue_scalars,
    scalar_activation,
)
from .blas import gemm
from .dense import PARALLEL_MIN_MACS
from .flags import JIT
from .registry import Kernel, register_kernel

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}
#: Output pixels per parallel im2col block and tiles per Winograd block: small enough that a
#: block's patches/transforms stay in L2 and that there are many blocks to balance over threads.
_GEMM_ROWS = 256
_GEMM_PANEL = 256
_WINOGRAD_TILES = 64
#: Winograd needs this many 2x2 tiles per call: its transformed filter is 16/9 the size of the
#: plain one and is read once per call, so a small image is bound by that read (Zen 5, batch 1,
#: two threads: ResNet's 7x7x512 layers, 16 tiles, 1.2x slower than im2col; 14x14x256, 49
#: tiles, 1.5x faster; 28x28x128 and 56x56x64 1.7-1.8x faster).
_WINOGRAD_MIN_TILES = 40
#: Fewest output channels per Winograd panel when a small image splits its channels over threads.
_WINOGRAD_MIN_PANEL = 32
#: Winograd only pays once the GEMMs dominate the transforms.
_WINOGRAD_MIN_CHANNELS = 16


# -- epilogue ------------------------------------------------------------------------------------
@njit(inline="always", **_INLINE)
def _finish_row(row, bias, residual_row, has_bias, has_residual, code, alpha):
    if has_bias:
        for j in range(row.shape[0]):
            row[j] += bias[j]
    if has_residual:
        for j in range(row.shape[0]):
            row[j] += residual_row[j]
    activate_row(row, code, alpha)



@njit(**_INLINE)
def _finish_block(out2d, bias, res2d, r0, r1, j0, j1, code, alpha):
    """Bias, residual and activation over a block, element by element: with few columns (6
    filters in LeNet) a view and a call per row cost more than the arithmetic (measured 4x)."""
    has_bias = bias.shape[0] > 0
    has_res = res2d.shape[0] > 0
    if code == SOFTMAX:  # row-wise: needs whole rows
        for r in range(r0, r1):
            row = out2d[r, j0:j1]
            for j in range(j1 - j0):
                row[j] += (bias[j0 + j] if has_bias else 0.0) + (
                    res2d[r, j0 + j] if has_res else 0.0)
            activate_row(row, code, alpha)
        return
    for r in range(r0, r1):
        ru = uint64(r)  # unsigned: no wraparound check, so the loops vectorize
        if has_bias:
            for j in range(uint64(j0), uint64(j1)):
                out2d[ru, j] += bias[j]
        if has_res:
            for j in range(uint64(j0), uint64(j1)):
                out2d[ru, j] += res2d[ru, j]
        activate_span(out2d, r, j0, j1, code, alpha)


# -- im2col + GEMM -------------------------------------------------------------------------------
@njit(inline="always", **_INLINE)
def _fill_patch_row(x, xrows, prow, n, oh, ow, c0, cg, kh, kw, sh, sw, pt, pl, dh, dw):
    """One im2col row: the receptive field of output pixel (n, oh, ow), channels c0..c0+cg.

    ``xrows`` is ``x`` viewed as ``(N, H, W*C)``, made once by the caller (a reshape per row
    calls into numba's runtime: it cost more than the copy)."""
    h, w, c_n = x.shape[1], x.shape[2], x.shape[3]
    iw0 = ow * sw - pl
    if dw == 1 and cg == c_n and iw0 >= 0 and iw0 + kw <= w:
        # all kx in the image, all channels: each filter row's taps are one contiguous run of
        # the input row (kw * C floats), one copy loop per filter row instead of one per tap
        # (a 3-channel 7x7 stem filled its patches ~5x faster; what is left is per-row overhead)
        span = uint64(kw * c_n)
        base = uint64(iw0 * c_n)
        col = uint64(0)
        for ky in range(kh):
            ih = oh * sh - pt + ky * dh
            if 0 <= ih < h:
                src = xrows[n, ih]
                for j in range(span):
                    prow[col + j] = src[base + j]
            else:
                for j in range(span):
                    prow[col + j] = 0.0
            col += span
        return
    col = 0
    for ky in range(kh):
        ih = oh * sh - pt + ky * dh
        for kx in range(kw):
            iw = ow * sw - pl + kx * dw
            if 0 <= ih < h and 0 <= iw < w:
                if cg == 1:  # single-channel images (LeNet): skip the channel loop
                    prow[col] = x[n, ih, iw, c0]
                else:
                    src = x[n, ih, iw]
                    for c in range(cg):
                        prow[col + c] = src[c0 + c]
            else:
                for c in range(cg):
                    prow[col + c] = 0.0
            col += cg


# Called, not inlined, by the driver: compiled once; inlined into a former ``prange`` body it
# made numba's parfor passes run over the whole block (the largest share of a cold start).
@njit(**_INLINE)
def _im2col_block(x, kmats, bias, res2d, out2d, r0, r1, j0, j1, oh_n, ow_n, sh, sw, pt, pl,
                  dh, dw, kh, kw, direct, code, alpha):
    """Output rows ``r0..r1`` (flattened ``n, oh, ow``) and columns ``j0..j1`` (ungrouped
    only; grouped layers pass all columns): patches, one GEMM per group, then the epilogue."""
    groups, kdim, og = kmats.shape
    cg = kdim // (kh * kw)
    m = r1 - r0
    if direct:  # 1x1 stride-1 unpadded: the input rows are the patches
        gemm(x.reshape(-1, x.shape[3])[r0:r1], kmats[0][:, j0:j1], out2d[r0:r1, j0:j1], False)
    else:
        patches = np.empty((m, kdim), dtype=x.dtype)
        xrows = x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        for g in range(groups):
            # walk (n, oh, ow) incrementally: three integer divisions per row cost more than
            # copying a small receptive field
            ow = r0 % ow_n
            oh = (r0 // ow_n) % oh_n
            n = r0 // (ow_n * oh_n)
            for i in range(m):
                _fill_patch_row(x, xrows, patches[i], n, oh, ow, g * cg, cg, kh, kw, sh, sw, pt, pl,
                                dh, dw)
                ow += 1
                if ow == ow_n:
                    ow = 0
                    oh += 1
                    if oh == oh_n:
                        oh = 0
                        n += 1
            if groups == 1:
                gemm(patches, kmats[0][:, j0:j1], out2d[r0:r1, j0:j1], False)
            else:
                gemm(patches, kmats[g][:, :], out2d[r0:r1, g * og:(g + 1) * og], False)
    _finish_block(out2d, bias, res2d, r0, r1, j0, j1, code, alpha)


@njit(**JIT)
def _conv_gemm_items(x, kmats, bias, res2d, out2d, block, panel, oh_n, ow_n, sh, sw, pt, pl,
                     dh, dw, kh, kw, direct, code, alpha, lo, hi):
    """Work items ``lo:hi`` of (row block, column panel): small images still spread over
    threads (``split_work``)."""
    rows, cols = out2d.shape
    panels = (cols + panel - 1) // panel
    for item in range(lo, hi):
        b, p = item // panels, item % panels
        _im2col_block(x, kmats, bias, res2d, out2d, b * block, min(rows, (b + 1) * block),
                      p * panel, min(cols, (p + 1) * panel), oh_n, ow_n, sh, sw, pt, pl, dh, dw,
                      kh, kw, direct, code, alpha)


# -- Winograd F(2x2, 3x3) ------------------------------------------------------------------------
@njit(**JIT)  # serial: O(16*C*O) work; a parallel region cost ~10 s of compilation
def _winograd_weights(kernel):
    """``U[e] = (G g G^T)`` flattened over the 4x4 tile: ``(16, C, O)``; inner loops over O."""
    c_n, o_n = kernel.shape[2], kernel.shape[3]
    u = np.empty((16, c_n, o_n), dtype=kernel.dtype)
    for c in range(c_n):
        t = np.empty((4, 3, o_n), dtype=np.float64)
        for j in range(3):
            for o in range(o_n):
                g0, g1, g2 = kernel[0, j, c, o], kernel[1, j, c, o], kernel[2, j, c, o]
                t[0, j, o] = g0
                t[1, j, o] = 0.5 * (g0 + g1 + g2)
                t[2, j, o] = 0.5 * (g0 - g1 + g2)
                t[3, j, o] = g2
        for i in range(4):
            for o in range(o_n):
                u[4 * i + 0, c, o] = t[i, 0, o]
                u[4 * i + 1, c, o] = 0.5 * (t[i, 0, o] + t[i, 1, o] + t[i, 2, o])
                u[4 * i + 2, c, o] = 0.5 * (t[i, 0, o] - t[i, 1, o] + t[i, 2, o])
                u[4 * i + 3, c, o] = t[i, 2, o]
    return u


@njit(inline="always", **_INLINE)
def _bt_1d(a, b, c, d, o0, o1, o2, o3, n):
    """``B^T`` of F(2x2, 3x3) on four length-``n`` vectors: ``(a - c, b + c, c - b, b - d)``;
    one loop per output (two loads and a store each), views indexed from 0 (see below)."""
    for j in range(n):
        o0[j] = a[j] - c[j]
    for j in range(n):
        o1[j] = b[j] + c[j]
    for j in range(n):
        o2[j] = c[j] - b[j]
    for j in range(n):
        o3[j] = b[j] - d[j]


@njit(inline="always", **_INLINE)
def _winograd_rows(src, r0, r1, r2, r3, t, lo, width):
    """``t = B^T d`` along H for one tile row: four contiguous row combinations.

    ``src`` rows ``r0..r3`` are the tile row's input rows flattened to ``W*C``; they land in
    ``t[:, lo:lo + width]`` (``lo`` = left padding * C). Returns NaN iff a cell is NaN/inf.
    One loop per output keeps each loop at two loads and a store, which LLVM vectorises when
    every operand is a view indexed from 0 by an unsigned counter: offsets added inside the loop
    (signed: wraparound selects; unsigned: possible overflow) left these transforms scalar, and
    they cost as much as the 16 GEMMs.
    """
    n = uint64(width)
    # row first, then a slice of it: numba types ``src[r, :w]`` as any-layout (strided, not
    # vectorized) and ``src[r][:w]`` as contiguous
    a, b, c, d = src[r0][:width], src[r1][:width], src[r2][:width], src[r3][:width]
    t0, t1, t2, t3 = (t[0][lo:lo + width], t[1][lo:lo + width], t[2][lo:lo + width],
                      t[3][lo:lo + width])
    _bt_1d(a, b, c, d, t0, t1, t2, t3, n)
    # t0 and t3 read all four rows; (sum) * 0 is NaN iff one was NaN/inf (an overflowing sum
    # only costs a fallback). Not ``v - v``: the reassoc flag folds that to 0.
    probe = t.dtype.type(0)
    for j in range(n):
        probe += (t0[j] + t3[j]) * 0
    return probe


@njit(inline="always", **_INLINE)
def _winograd_cols(t, v, k0, tiles_w, c_n):
    """``V = (B^T d) B`` along W for every tile of the row: ``v[e, k0 + tw, :]``."""
    n = uint64(c_n)
    for tw in range(tiles_w):
        k = k0 + tw
        b = 2 * tw * c_n
        for i in range(4):  # views indexed from 0: see ``_winograd_rows`` (4x faster)
            ti = t[i]
            q0, q1 = ti[b:b + c_n], ti[b + c_n:b + 2 * c_n]
            q2, q3 = ti[b + 2 * c_n:b + 3 * c_n], ti[b + 3 * c_n:b + 4 * c_n]
            d0, d1, d2, d3 = v[4 * i, k], v[4 * i + 1, k], v[4 * i + 2, k], v[4 * i + 3, k]
            _bt_1d(q0, q1, q2, q3, d0, d1, d2, d3, n)


@njit(inline="always", **_INLINE)
def _winograd_input_row(x2, edge, t, v, k0, n, th, h, w, c_n, tiles_w, pt, pl):
    """Transform tile row ``th`` of image ``n`` into ``v[:, k0:k0 + tiles_w]``; NaN if bad."""
    h0 = 2 * th - pt
    base = n * h
    t[:, :] = 0  # zero columns are the left/right padding
    width = min(w, t.shape[1] // c_n - pl) * c_n
    if h0 >= 0 and h0 + 3 < h:
        probe = _winograd_rows(x2, base + h0, base + h0 + 1, base + h0 + 2, base + h0 + 3, t,
                               pl * c_n, width)
    else:  # top/bottom padding: gather the in-image rows next to zero rows
        for i in range(4):
            if 0 <= h0 + i < h:
                edge[i, :] = x2[base + h0 + i]
            else:
                edge[i, :] = 0
        probe = _winograd_rows(edge, 0, 1, 2, 3, t, pl * c_n, width)
    _winograd_cols(t, v, k0, tiles_w, c_n)
    return probe


@njit(inline="always", **_INLINE)
def _act(y, code, alpha):
    if code == RELU:
        return y if (y > 0 or math.isnan(y)) else 0.0
    if code == LINEAR:
        return y
    if code == RELU6:  # selects, not a call per element (see ``activate_span``)
        return 0.0 if y < 0 else (6.0 if y > 6 else y)
    if code == LEAKY_RELU:
        return y if y >= 0 else y * alpha
    return scalar_activation(y, code, alpha)


@njit(inline="always", **_INLINE)
def _store_pixel(out2, res2, bias, y, q, row, j0, code, alpha):
    """``out2[row, j0:] = act(y[q] + bias + residual)`` over ``y``'s channels: a copy, then the
    im2col epilogue (``_finish_block``) on that one row."""
    dst = out2[row][j0:j0 + y.shape[1]]
    src = y[q]
    for o in range(uint64(y.shape[1])):
        dst[o] = src[o]
    _finish_block(out2, bias, res2, row, row + 1, j0, j0 + y.shape[1], code, alpha)


@njit(inline="always", **_INLINE)
def _winograd_output_tile(m, k, out2, res2, bias, y, oh_n, ow_n, n, th, tw, j0, code, alpha):
    """One 2x2 output tile of channels ``j0..j0 + m.shape[2]``: ``act(A^T M A + bias +
    residual)`` (edges clipped); ``out2``/``res2`` are the NHWC arrays as ``(pixels, O)``.

    ``A^T M A`` goes to the scratch ``y`` (4, channels) first: one loop writing one array
    vectorizes, where writing four output pixels (which may alias at clipped edges) with the
    epilogue inside did not (the inverse transform cost ~2/3 of the GEMMs).
    """
    o_n = uint64(m.shape[2])
    ku = uint64(k)
    for o in range(o_n):
        s0 = m[0, ku, o] + m[4, ku, o] + m[8, ku, o]
        s1 = m[1, ku, o] + m[5, ku, o] + m[9, ku, o]
        s2 = m[2, ku, o] + m[6, ku, o] + m[10, ku, o]
        s3 = m[3, ku, o] + m[7, ku, o] + m[11, ku, o]
        p0 = m[4, ku, o] - m[8, ku, o] - m[12, ku, o]
        p1 = m[5, ku, o] - m[9, ku, o] - m[13, ku, o]
        p2 = m[6, ku, o] - m[10, ku, o] - m[14, ku, o]
        p3 = m[7, ku, o] - m[11, ku, o] - m[15, ku, o]
        y[0, o] = s0 + s1 + s2
        y[1, o] = s1 - s2 - s3
        y[2, o] = p0 + p1 + p2
        y[3, o] = p1 - p2 - p3
    y0, x0 = 2 * th, 2 * tw
    y1, x1 = min(y0 + 1, oh_n - 1), min(x0 + 1, ow_n - 1)
    base = n * oh_n
    # Clipped cells alias a real one; they are written first, so the real value wins.
    _store_pixel(out2, res2, bias, y, 3, (base + y1) * ow_n + x1, j0, code, alpha)
    _store_pixel(out2, res2, bias, y, 2, (base + y1) * ow_n + x0, j0, code, alpha)
    _store_pixel(out2, res2, bias, y, 1, (base + y0) * ow_n + x1, j0, code, alpha)
    _store_pixel(out2, res2, bias, y, 0, (base + y0) * ow_n + x0, j0, code, alpha)


@njit(inline="always", **_INLINE)
def _direct_pixel(x, kernel, bias, res, out, n, oy, ox, sh, sw, pt, pl, dh, dw, j0, j1, code,
                  alpha):
    """Plain convolution of one output pixel, channels ``j0..j1``; the exact path for NaN/inf
    tiles."""
    h, w = x.shape[1], x.shape[2]
    kh, kw, c_n = kernel.shape[0], kernel.shape[1], kernel.shape[2]
    for o in range(j0, j1):
        acc = 0.0
        for ky in range(kh):
            ih = oy * sh - pt + ky * dh
            if ih < 0 or ih >= h:
                continue
            for kx in range(kw):
                iw = ox * sw - pl + kx * dw
                if iw < 0 or iw >= w:
                    continue
                for c in range(c_n):
                    acc += x[n, ih, iw, c] * kernel[ky, kx, c, o]
        if bias.shape[0] > 0:
            acc += bias[o]
        if res.shape[0] > 0:
            acc += res[n, oy, ox, o]
        out[n, oy, ox, o] = _act(acc, code, alpha)


# Called, not inlined (see ``_im2col_block``): the parallel driver compiled in ~20x less time.
@njit(**_INLINE)
def _winograd_block(x, kernel, u, bias, res, out, row0, row1, j0, j1, tiles_h, tiles_w, pt, pl,
                    code, alpha):
    """Tile rows ``row0..row1`` (over ``n * tiles_h``), output channels ``j0..j1``: transform,
    16 GEMMs, inverse + epilogue."""
    n_img, h, w, c_n = x.shape
    nb = (row1 - row0) * tiles_w
    x2 = x.reshape(n_img * h, w * c_n)
    t = np.empty((4, max(2 * tiles_w + 2, w + pl) * c_n), dtype=x.dtype)
    edge = np.empty((4, w * c_n), dtype=x.dtype)
    v = np.empty((16, nb, c_n), dtype=x.dtype)
    m = np.empty((16, nb, j1 - j0), dtype=x.dtype)
    bad = np.zeros(row1 - row0, dtype=np.bool_)
    for r in range(row0, row1):
        probe = _winograd_input_row(x2, edge, t, v, (r - row0) * tiles_w, r // tiles_h,
                                    r % tiles_h, h, w, c_n, tiles_w, pt, pl)
        bad[r - row0] = math.isnan(probe)
    for e in range(16):  # [:, :] views: the one gemm specialization (C, A, A) im2col uses
        gemm(v[e], u[e][:, j0:j1], m[e][:, :], False)
    oh_n, ow_n, o_n = out.shape[1], out.shape[2], out.shape[3]
    out2 = out.reshape(-1, o_n)
    res2 = res.reshape(-1, o_n) if res.shape[0] > 0 else res.reshape(0, 0)
    y = np.empty((4, j1 - j0), dtype=out.dtype)
    for r in range(row0, row1):
        n, th = r // tiles_h, r % tiles_h
        for tw in range(tiles_w):
            if bad[r - row0]:
                # Winograd mixes neighbouring cells (inf - inf = NaN): recompute exactly.
                for oy in range(2 * th, min(2 * th + 2, oh_n)):
                    for ox in range(2 * tw, min(2 * tw + 2, ow_n)):
                        _direct_pixel(x, kernel, bias, res, out, n, oy, ox, 1, 1, pt, pl, 1,
                                      1, j0, j1, code, alpha)
            else:
                _winograd_output_tile(m, (r - row0) * tiles_w + tw, out2, res2, bias, y, oh_n,
                                      ow_n, n, th, tw, j0, code, alpha)


@njit(**JIT)
def _conv_winograd_blocks(x, kernel, u, bias, res, out, per, panel, pt, pl, code, alpha, lo,
                          hi):
    """Work items ``lo:hi`` of (block of ``per`` tile rows, panel of ``panel`` output channels)
    (``split_work`` spreads them over threads; a small image splits its channels)."""
    tiles_h, tiles_w = (out.shape[1] + 1) // 2, (out.shape[2] + 1) // 2
    rows = x.shape[0] * tiles_h
    o_n = out.shape[3]
    panels = (o_n + panel - 1) // panel
    for item in range(lo, hi):
        b, p = item // panels, item % panels
        _winograd_block(x, kernel, u, bias, res, out, b * per, min(rows, (b + 1) * per),
                        p * panel, min(o_n, (p + 1) * panel), tiles_h, tiles_w, pt, pl, code,
                        alpha)


# -- launchers -----------------------------------------------------------------------------------
def _empty(dtype, ndim: int) -> np.ndarray:
    return np.zeros((0,) * ndim, dtype=dtype)


def conv_algorithm(kernel_shape, out_shape, strides, dilation, groups) -> str:
    """``"winograd"`` or ``"gemm"`` (im2col, or a plain GEMM for 1x1): which path a layer takes.

    Non-finite weights also force ``"gemm"`` at run time (Winograd would turn inf into NaN).
    """
    kh, kw, cg, o_n = kernel_shape
    tiles = out_shape[0] * ((out_shape[1] + 1) // 2) * ((out_shape[2] + 1) // 2)
    if (kh == 3 and kw == 3 and tuple(strides) == (1, 1) and tuple(dilation) == (1, 1)
            and groups == 1 and cg >= _WINOGRAD_MIN_CHANNELS and o_n >= _WINOGRAD_MIN_CHANNELS
            and tiles >= _WINOGRAD_MIN_TILES):
        return "winograd"
    return "gemm"


def conv2d_nhwc(x, kernel, bias, residual, out, sh, sw, pt, pl, dh, dw, groups, code, alpha,
                prepared=None):
    """``out = act(conv(x, kernel) + bias + residual)``; ``residual`` may be empty.

    ``prepared``: the Winograd-transformed filter ``(16, C, O)`` the compiler prepared once per
    weights version (``prepare_conv``; NaN in ``[0, 0, 0]`` marks a non-finite filter), or
    empty/None to transform it here.
    """
    if out.size == 0:
        return
    kh, kw, cg, o_n = kernel.shape
    alpha = float(alpha)  # float64, as generated code passes it: one specialization of the epilogue
    # threads pay off by work (multiply-adds), not by output size: a 7x7x512 output is small
    # but each of its pixels costs 4608 multiply-adds
    parallel = out.size * kh * kw * cg >= PARALLEL_MIN_MACS and not machine_busy()
    threads = get_num_threads() if parallel else 1
    winograd = conv_algorithm(kernel.shape, out.shape, (sh, sw), (dh, dw), groups) == "winograd"
    if winograd and prepared is not None and prepared.size:
        u = prepared.reshape(16, cg, o_n)
        winograd = not math.isnan(u[0, 0, 0])
    elif winograd:
        winograd = bool(np.isfinite(kernel).all())
        u = _winograd_weights(kernel) if winograd else None
    if winograd:
        # viewed as (pixels, O) inside: a strided residual is copied once
        res4 = np.ascontiguousarray(residual) if residual.size else _empty(out.dtype, 4)
        tiles_w = (out.shape[2] + 1) // 2
        per = max(1, _WINOGRAD_TILES // tiles_w)  # tile rows per block
        blocks = -(-x.shape[0] * ((out.shape[1] + 1) // 2) // per)
        panel = o_n
        # too few blocks to balance: threads split the channels too (not for a row-wise softmax)
        if blocks < 2 * threads and code != SOFTMAX:
            panel = max(_WINOGRAD_MIN_PANEL, -(-o_n // (2 * threads)))
        panels = -(-o_n // panel)
        split_work(_conv_winograd_blocks, blocks * panels, x, kernel, u, bias, res4, out, per,
                   panel, pt, pl, code, alpha, threads=threads)
        return
    og = o_n // groups
    kmats = np.ascontiguousarray(kernel.reshape(kh * kw * cg, groups, og).transpose(1, 0, 2))
    direct = (kh == 1 and kw == 1 and sh == 1 and sw == 1 and pt == 0 and pl == 0
              and groups == 1 and x.shape[1:3] == out.shape[1:3])
    # Row-wise softmax needs whole rows; grouped GEMMs already split the columns.
    # one thread takes whole rows (one GEMM per row block)
    panel = o_n if (groups > 1 or code == SOFTMAX or threads == 1) else _GEMM_PANEL
    rows = out.size // o_n
    row_blocks = (rows + _GEMM_ROWS - 1) // _GEMM_ROWS
    if panel == _GEMM_PANEL and row_blocks < threads:
        # few row blocks (small images): split the columns so every thread gets work
        panel = max(32, -(-o_n // threads))
    split_work(_conv_gemm_items, row_blocks * ((o_n + panel - 1) // panel), x, kmats, bias,
               _res2d(residual, o_n), out.reshape(-1, o_n), _GEMM_ROWS, panel, out.shape[1],
               out.shape[2], sh, sw, pt, pl, dh, dw, kh, kw, direct, code, alpha,
               threads=threads)


def _res2d(residual: np.ndarray, channels: int) -> np.ndarray:
    return residual.reshape(-1, channels) if residual.size else _empty(residual.dtype, 2)


_N_CONV_SCALARS = 9


def conv_operands(args: tuple) -> tuple:
    """A conv kernel call ``(x, [residual], kernel, bias, prepared, out, *scalars)`` as
    ``(x, residual, kernel, bias, prepared, out, scalars)``, an empty residual when none is fused
    (one place for the convention every conv launcher reads)."""
    arrays, scalars = args[:-_N_CONV_SCALARS], args[-_N_CONV_SCALARS:]
    if len(arrays) == 6:
        x, residual, kernel, bias, prepared, out = arrays
    else:
        x, kernel, bias, prepared, out = arrays
        residual = _empty(out.dtype, 4)
    return x, residual, kernel, bias, prepared, out, scalars


def conv2d(*args):
    """Kernel-convention launcher: ``(x, [residual], kernel, bias, prepared, out, *scalars)``."""
    x, residual, kernel, bias, prepared, out, scalars = conv_operands(args)
    conv2d_nhwc(x, kernel, bias, residual, out, *scalars, prepared=prepared)


def window_scalars(attrs, x_shape, out_shape, k, what: str = "conv2d") -> tuple:
    """``(sh, sw, pad_top, pad_left, dh, dw)`` for a sliding window over NHWC (the padding
    arithmetic is the compiler's, ``compiler.ops.conv.window_pads``)."""
    sh, sw = pair(attrs.get("strides", (1, 1)), "strides", what)
    dh, dw = pair(attrs.get("dilation", (1, 1)), "dilation", what)
    (pt, _), (pl, _) = window_pads(x_shape, out_shape[1:3], k, (sh, sw), (dh, dw),
                                   attrs.get("padding", "valid"))
    return sh, sw, pt, pl, dh, dw


def _conv_scalars(attrs, input_shapes, out_shape):
    k = pair(attrs["kernel_size"], "kernel_size", "conv2d")
    geometry = window_scalars(attrs, input_shapes[0], out_shape, k)
    return geometry + (int(attrs.get("groups", 1)), *epilogue_scalars(attrs))


register_kernel(Kernel("conv2d", conv2d, _conv_scalars,
                       param_names=("kernel", "bias", "prepared"),
                       optional_params=frozenset({"bias", "prepared"})))
