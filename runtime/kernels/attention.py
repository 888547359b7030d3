"""Multi-head attention: BLAS projections around a fused scaled-dot-product kernel.

The projections are the ``dense`` kernel on ``(N*T, dim) @ (dim, heads*key_dim)`` views of
Keras' ``(dim, heads, key_dim)`` kernels, so ``q``, ``k`` and ``v`` come out as ``(N, T, heads,
d)`` without a transpose. Attention then runs per (batch, head, block of query rows) as one
parallel work item: ``scores = q_blk @ k^T`` (BLAS on strided views), scale + mask + softmax
row by row while the block is in cache, ``context_blk = probs @ v`` written straight into the
``(N, Tq, heads, dv)`` context. A block of ``_BLOCK_ROWS`` rows keeps one head's scores at
``_BLOCK_ROWS * Tv`` floats (64 KiB for Tv = 256 in float32). The causal mask is never built:
a block only multiplies the keys its last row may see, and each row stops at its diagonal.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from compiler.ops.attention import MASKED_SCORE, input_roles

from .activations import LINEAR
from .blas import gemm
from .dense import dense_parallel
from .flags import JIT
from .registry import Kernel, register_kernel

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}
#: query rows per work item: the block's scores (rows x Tv) should stay in L2
_BLOCK_ROWS = 64
#: below this many score entries (N*heads*Tq*Tv) one thread does everything
_PARALLEL_MIN_SCORES = 1 << 15
_PARAMS = ("query_kernel", "query_bias", "key_kernel", "key_bias", "value_kernel", "value_bias",
           "output_kernel", "output_bias")


# Cephes' expf: exp(t) = 2**k * p(r), r = t - k*ln2 split in two parts, p a degree-7 minimax
# polynomial (about 1 ulp in float32). Plain arithmetic plus a bit-built 2**k, so LLVM vectorizes
# the loop; scalar ``math.exp`` made the softmax cost as much as both GEMMs together.
_LOG2E = np.float32(1.44269504088896341)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_P0, _P1, _P2 = (np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3))
_P3, _P4, _P5 = (np.float32(c) for c in (4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
#: below this 2**k would leave the normal range; exp(-87) ~ 1.6e-38 is 0 next to the row's 1
_EXP_MIN = np.float32(-87.0)


@njit(inline="always", **_INLINE)
def _softmax_exact(row, lim):
    """Softmax of ``row[:lim]`` with ``math.exp``: float64 models, and rows holding NaN/inf."""
    m = -np.inf
    for j in range(lim):
        if row[j] > m or math.isnan(row[j]):
            m = row[j]
    total = 0.0
    for j in range(lim):
        e = math.exp(row[j] - m)
        row[j] = e
        total += e
    inv = 1.0 / total
    for j in range(lim):
        row[j] *= inv


@njit(inline="always", **_INLINE)
def _softmax_fast(row, lim, pow2_bits, pow2):
    """Softmax of a finite float32 ``row[:lim]``; ``pow2_bits``/``pow2`` are one scratch buffer
    seen as int32 and float32."""
    m = row[0]
    for j in range(1, lim):
        m = max(m, row[j])
    for j in range(lim):
        t = row[j] - m
        t = t if t > _EXP_MIN else _EXP_MIN
        k = np.floor(t * _LOG2E + np.float32(0.5))
        r = t - k * _LN2_HI
        r = r - k * _LN2_LO
        p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
        row[j] = p * (r * r) + r + np.float32(1.0)
        pow2_bits[j] = (np.int32(k) + np.int32(127)) << np.int32(23)
    total = np.float32(0.0)
    for j in range(lim):
        e = row[j] * pow2[j]
        row[j] = e
        total += e
    inv = np.float32(1.0) / total
    for j in range(lim):
        row[j] *= inv


@njit(inline="always", **_INLINE)
def _attend_block(q, kt, v, mask, ctx, n, h, r0, r1, scale, causal, has_mask, fast, scores,
                  pow2_bits, pow2):
    """Rows ``r0:r1`` of head ``h`` of sample ``n``: ``ctx[n, r0:r1, h] = softmax(q k^T) v``."""
    tv = kt.shape[3]
    rows = r1 - r0
    # causal without a user mask: keys past the block's last row are never seen, and each row
    # stops at its diagonal (the rest of its scores are exact zeros)
    trim = causal and not has_mask
    cols = min(tv, r1) if trim else tv
    if cols == 0:
        ctx[n, r0:r1, h, :] = 0.0
        return
    s = scores[:rows, :cols]
    gemm(q[n, r0:r1, h, :], kt[n, h, :, :cols], s, False)
    for i in range(rows):
        row = s[i]
        t = r0 + i
        lim = min(cols, t + 1) if trim else cols
        finite = 0.0
        if has_mask:
            for j in range(lim):
                keep = mask[n, t, j] > 0.5 and not (causal and j > t)
                row[j] = row[j] * scale if keep else MASKED_SCORE
                finite += row[j] * 0.0
        else:
            for j in range(lim):
                row[j] *= scale
                finite += row[j] * 0.0
        if fast and finite == 0.0:  # no NaN or inf in the row
            _softmax_fast(row, lim, pow2_bits, pow2)
        else:
            _softmax_exact(row, lim)
        for j in range(lim, cols):
            row[j] = 0.0
    gemm(s, v[n, :cols, h, :], ctx[n, r0:r1, h, :], False)


@njit(parallel=True, **JIT)
def _attention_parallel(q, kt, v, mask, ctx, scale, causal, has_mask, fast):
    n_batch, tq, heads = q.shape[0], q.shape[1], q.shape[2]
    blocks = (tq + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for item in prange(n_batch * heads * blocks):
        n = item // (heads * blocks)
        h = (item // blocks) % heads
        r0 = (item % blocks) * _BLOCK_ROWS
        scores = np.empty((_BLOCK_ROWS, kt.shape[3]), q.dtype)
        pow2_bits = np.empty(kt.shape[3], np.int32)
        _attend_block(q, kt, v, mask, ctx, n, h, r0, min(tq, r0 + _BLOCK_ROWS), scale, causal,
                      has_mask, fast, scores, pow2_bits, pow2_bits.view(np.float32))


@njit(**JIT)
def _attention_serial(q, kt, v, mask, ctx, scale, causal, has_mask, fast):
    n_batch, tq, heads = q.shape[0], q.shape[1], q.shape[2]
    scores = np.empty((_BLOCK_ROWS, kt.shape[3]), q.dtype)
    pow2_bits = np.empty(kt.shape[3], np.int32)
    pow2 = pow2_bits.view(np.float32)
    for n in range(n_batch):
        for h in range(heads):
            for r0 in range(0, tq, _BLOCK_ROWS):
                _attend_block(q, kt, v, mask, ctx, n, h, r0, min(tq, r0 + _BLOCK_ROWS), scale,
                              causal, has_mask, fast, scores, pow2_bits, pow2)


def scaled_dot_product_attention(q, k, v, mask, ctx, scale: float, causal: bool) -> None:
    """``ctx = softmax(scale * q k^T [masked]) v`` per (batch, head); layouts ``(N, T, H, d)``.

    ``mask`` is ``(N, Tq, Tv)`` bool (or float, kept where > 0.5) or empty.
    """
    if ctx.size == 0:
        return
    kt = np.ascontiguousarray(k.transpose(0, 2, 3, 1))  # (N, H, dk, Tv): rows of k^T per head
    has_mask = mask.size > 0
    if not has_mask:
        mask = np.zeros((0, 0, 0), q.dtype)
    work = q.shape[0] * q.shape[2] * q.shape[1] * k.shape[1]
    run = _attention_parallel if work >= _PARALLEL_MIN_SCORES else _attention_serial
    fast = q.dtype == np.float32  # float64 models keep math.exp's precision
    run(q, kt, v, mask, ctx, q.dtype.type(scale), bool(causal), has_mask, fast)


def _project(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``x @ kernel + bias`` with Keras' ``(dim, heads, d)`` kernel: ``(N, T, heads, d)``."""
    n, t, dim = x.shape
    heads, d = kernel.shape[1], kernel.shape[2]
    out = np.empty((n, t, heads, d), x.dtype)
    if out.size:
        dense_parallel(np.ascontiguousarray(x).reshape(n * t, dim),
                       kernel.reshape(dim, heads * d), bias.reshape(-1),
                       out.reshape(n * t, heads * d), LINEAR, 0.0)
    return out


def _project_self(x: np.ndarray, params: dict) -> tuple:
    """Self-attention: q, k and v from one GEMM against the three kernels side by side (one
    pass over ``x``, one wider product); they come back as strided views of its output."""
    n, t, dim = x.shape
    names = ("query", "key", "value")
    kernels = [params[f"{p}_kernel"] for p in names]
    widths = [k.shape[1] * k.shape[2] for k in kernels]
    kernel = np.concatenate([k.reshape(dim, -1) for k in kernels], axis=1)
    biases = [params[f"{p}_bias"] for p in names]
    bias = np.concatenate([b.reshape(-1) for b in biases]) if all(b.size for b in biases) \
        else np.zeros(0, x.dtype)
    qkv = np.empty((n * t, sum(widths)), x.dtype)
    if qkv.size:
        dense_parallel(np.ascontiguousarray(x).reshape(n * t, dim), kernel, bias, qkv, LINEAR,
                       0.0)
    bounds = np.cumsum([0] + widths)
    return tuple(qkv[:, bounds[i]:bounds[i + 1]].reshape(n, t, k.shape[1], k.shape[2])
                 for i, k in enumerate(kernels))


def multi_head_attention(*args):
    """Kernel-convention launcher: ``(query, value, [key], [mask], *8 params, out, *scalars)``."""
    arrays, (roles, key_dim, causal) = args[:-3], args[-3:]
    named = dict(zip(roles, arrays))
    params = dict(zip(_PARAMS, arrays[len(roles):len(roles) + len(_PARAMS)]))
    out = arrays[-1]
    query, value = named["query"], named["value"]
    key = named.get("key", value)
    if out.size == 0:
        return
    if query is value and key is value:
        q, k, v = _project_self(query, params)
    else:
        q = _project(query, params["query_kernel"], params["query_bias"])
        k = _project(key, params["key_kernel"], params["key_bias"])
        v = _project(value, params["value_kernel"], params["value_bias"])
    ctx = np.empty(q.shape[:3] + (v.shape[3],), out.dtype)
    mask = named.get("attention_mask", np.zeros((0, 0, 0), out.dtype))
    scaled_dot_product_attention(q, k, v, np.ascontiguousarray(mask), ctx,
                                 1.0 / math.sqrt(key_dim), causal)
    n, tq, heads, dv = ctx.shape
    dense_parallel(ctx.reshape(n * tq, heads * dv),
                   params["output_kernel"].reshape(heads * dv, -1),
                   params["output_bias"], out.reshape(n * tq, out.shape[2]), LINEAR, 0.0)


def _mha_scalars(attrs, input_shapes, out_shape):
    return tuple(input_roles(attrs)), int(attrs["key_dim"]), bool(attrs.get("causal", False))


register_kernel(Kernel("multi_head_attention", multi_head_attention, _mha_scalars,
                       param_names=_PARAMS,
                       optional_params=frozenset(p for p in _PARAMS if p.endswith("_bias"))))
