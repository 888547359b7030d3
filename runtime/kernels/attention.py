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


@njit(inline="always", **_INLINE)
def _attend_block(q, kt, v, mask, ctx, n, h, r0, r1, scale, causal, has_mask, scores):
    """Rows ``r0:r1`` of head ``h`` of sample ``n``: ``ctx[n, r0:r1, h] = softmax(q k^T) v``."""
    tv = kt.shape[3]
    rows = r1 - r0
    # causal without a user mask: keys past the block's last row are never seen
    cols = min(tv, r1) if causal and not has_mask else tv
    if cols == 0:
        ctx[n, r0:r1, h, :] = 0.0
        return
    s = scores[:rows, :cols]
    gemm(q[n, r0:r1, h, :], kt[n, h, :, :cols], s, False)
    for i in range(rows):
        row = s[i]
        t = r0 + i
        m = -np.inf
        for j in range(cols):
            val = row[j] * scale
            if (has_mask and not mask[n, t, j] > 0.5) or (causal and j > t):
                val = MASKED_SCORE
            row[j] = val
            if val > m or math.isnan(val):
                m = val
        total = 0.0
        for j in range(cols):
            e = math.exp(row[j] - m)
            row[j] = e
            total += e
        inv = 1.0 / total
        for j in range(cols):
            row[j] *= inv
    gemm(s, v[n, :cols, h, :], ctx[n, r0:r1, h, :], False)


@njit(parallel=True, **JIT)
def _attention_parallel(q, kt, v, mask, ctx, scale, causal, has_mask):
    n_batch, tq, heads = q.shape[0], q.shape[1], q.shape[2]
    blocks = (tq + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for item in prange(n_batch * heads * blocks):
        n = item // (heads * blocks)
        h = (item // blocks) % heads
        r0 = (item % blocks) * _BLOCK_ROWS
        scores = np.empty((_BLOCK_ROWS, kt.shape[3]), q.dtype)
        _attend_block(q, kt, v, mask, ctx, n, h, r0, min(tq, r0 + _BLOCK_ROWS), scale, causal,
                      has_mask, scores)


@njit(**JIT)
def _attention_serial(q, kt, v, mask, ctx, scale, causal, has_mask):
    n_batch, tq, heads = q.shape[0], q.shape[1], q.shape[2]
    scores = np.empty((_BLOCK_ROWS, kt.shape[3]), q.dtype)
    for n in range(n_batch):
        for h in range(heads):
            for r0 in range(0, tq, _BLOCK_ROWS):
                _attend_block(q, kt, v, mask, ctx, n, h, r0, min(tq, r0 + _BLOCK_ROWS), scale,
                              causal, has_mask, scores)


def scaled_dot_product_attention(q, k, v, mask, ctx, scale: float, causal: bool) -> None:
    """``ctx = softmax(scale * q k^T [masked]) v`` per (batch, head); layouts ``(N, T, H, d)``.

    ``mask`` is ``(N, Tq, Tv)`` (kept where > 0.5) or empty.
    """
    if ctx.size == 0:
        return
    kt = np.ascontiguousarray(k.transpose(0, 2, 3, 1))  # (N, H, dk, Tv): rows of k^T per head
    has_mask = mask.size > 0
    if not has_mask:
        mask = np.zeros((0, 0, 0), q.dtype)
    work = q.shape[0] * q.shape[2] * q.shape[1] * k.shape[1]
    run = _attention_parallel if work >= _PARALLEL_MIN_SCORES else _attention_serial
    run(q, kt, v, mask, ctx, q.dtype.type(scale), bool(causal), has_mask)


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
