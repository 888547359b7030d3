"""SimpleRNN / LSTM / GRU: a BLAS product projects every step's input, then a fused recurrence
runs the steps; a block of batch rows runs its whole recurrence on one thread.

Per step and block: ``xp[rows, t] += h[rows] @ recurrent_kernel`` (BLAS, accumulating straight
into the projected input, so no gate buffer and no add pass), then the gates row by row in
passes over contiguous slices — with float32 and the default tanh/sigmoid those passes use the
branch-free approximations of ``fastmath`` and vectorize (AVX2: 8 gates per instruction); other
activations and float64 go through the scalar ``scalar_activation``. No allocation per step.

Rows of the batch are independent through the whole recurrence, so ``recurrent_parallel``
gives each thread blocks of rows for every step (input projection included), through
``runtime.threads.split_work``: one hand-off per call and no barrier per step, unlike splitting
each step's product over threads, and no ``parallel=True`` twin to compile.
"""

import math

import numpy as np
from numba import njit

from compiler.ops.activations import LEAKY_RELU_DEFAULT_SLOPE

from ..threads import get_num_threads, machine_busy, split_work
from .activations import CODES, SIGMOID, TANH, scalar_activation
from .blas import gemm
from .fastmath import sigmoid32, tanh32
from .flags import JIT
from .registry import Kernel, register_kernel

SIMPLE, LSTM, GRU = 0, 1, 2
_CELLS = {"simple_rnn": SIMPLE, "lstm": LSTM, "gru": GRU}
_GATES = (1, 4, 3)
_OUTPUTS = {"sequence": 0, "h": 1, "c": 2, "all": 3}
ALL = _OUTPUTS["all"]
_INLINE = {k: v for k, v in JIT.items() if k != "cache"}
#: rows per thread from which the parallel variant splits the batch (a smaller block wastes
#: most of each step's product on BLAS call overhead)
PARALLEL_MIN_ROWS = 4
#: batch rows per block at most: a block's gates, ``(G, rows)``, should stay in L2
MAX_COLUMNS = 64
#: rows * units * steps from which threads pay for their start-up
PARALLEL_MIN_WORK = 1 << 16


@njit(inline="always", **_INLINE)
def _act(v, code, alpha):
    """``scalar_activation`` with the two recurrent defaults first (the common, hot case)."""
    if code == TANH:
        return math.tanh(v)
    if code == SIGMOID:
        return 1.0 / (1.0 + math.exp(-v))
    return scalar_activation(v, code, alpha)


@njit(inline="always", **_INLINE)
def _activate(buf, lo, hi, code, alpha, fast):
    """``buf[lo:hi] = act(buf[lo:hi])`` in place; one loop per case so each vectorizes.

    The loops run over a slice from 0: an index from ``range(lo, hi)`` may be negative as far
    as numba knows, and its wraparound select kept LLVM from vectorizing (measured ~8x slower).
    """
    v = buf[lo:hi]
    if fast and code == TANH:
        for j in range(v.shape[0]):
            v[j] = tanh32(v[j])
    elif fast and code == SIGMOID:
        for j in range(v.shape[0]):
            v[j] = sigmoid32(v[j])
    else:
        for j in range(v.shape[0]):
            v[j] = _act(v[j], code, alpha)


@njit(inline="always", **_INLINE)
def _columns(i0, i1, xt, wt, ut, h, c, mask, has_mask, seq, ret_seq, backwards,
             reverse, zero_out, cell, act, ract, alpha, reset_after, fast, prev):
    """The whole recurrence of batch rows ``i0:i1``, in transposed form.

    Gates live as ``(G, nb)`` blocks (``nb = i1 - i0``), state as ``(units, nb)``: each step's
    products are ``W^T x_t`` and ``U^T h`` with the long gate axis as BLAS' ``M`` (measured ~1.6x
    faster per step than ``h @ U`` with the batch as ``M``), and each gate is one contiguous
    run of ``units * nb`` values, so the activation passes are flat vectorized loops.
    """
    nb = i1 - i0
    u = h.shape[1]
    steps = xt.shape[0]
    gates = wt.shape[0]
    dtype = h.dtype
    gx = np.empty((gates, nb), dtype)
    gh = np.empty((gates, nb), dtype)
    # h with a row of ones under it: a recurrent kernel with one more column (GRU's recurrent
    # bias, see ``_run``) adds that bias inside the product
    hx = np.empty((u + 1, nb), dtype)
    hx[u, :] = 1.0
    hb = hx[:u]
    hr = hx if ut.shape[1] > u else hb
    cb = np.empty((u, nb), dtype)
    ob = np.empty((u, nb), dtype)  # the last output (differs from h only under a mask)
    old_h = np.empty((u, nb), dtype)
    old_c = np.empty((u, nb), dtype)
    tmp = np.empty(u * nb, dtype)
    for j in range(u):
        for i in range(nb):
            hb[j, i] = h[i0 + i, j]
            cb[j, i] = c[i0 + i, j]
            ob[j, i] = 0.0
    g, gr = gx.reshape(gates * nb), gh.reshape(gates * nb)
    hf, cf = hb.reshape(u * nb), cb.reshape(u * nb)
    un = u * nb
    for step in range(steps):
        t = steps - 1 - step if backwards else step
        ts = t if reverse else step
        if has_mask:
            old_h[:, :] = hb
            old_c[:, :] = cb
        gemm(wt, xt[t, :, i0:i1], gx, False)
        if cell == GRU:
            if reset_after:
                gemm(ut, hr, gh, False)
                for k in range(2 * un):
                    g[k] += gr[k]
            else:
                gemm(ut[:2 * u], hb, gx[:2 * u], True)
            _activate(g, 0, 2 * un, ract, alpha, fast)
            z, r, hh = g[:un], g[un:2 * un], g[2 * un:3 * un]
            if reset_after:
                rh = gr[2 * un:3 * un]
                for k in range(un):
                    hh[k] += r[k] * rh[k]
            else:
                for k in range(un):
                    tmp[k] = r[k] * hf[k]
                gemm(ut[2 * u:], tmp.reshape(u, nb), gx[2 * u:], True)
            _activate(g, 2 * un, 3 * un, act, alpha, fast)
            for k in range(un):
                hf[k] = z[k] * hf[k] + (1.0 - z[k]) * hh[k]
        else:
            gemm(ut, hb, gx, True)
            if cell == LSTM:
                _activate(g, 0, 2 * un, ract, alpha, fast)
                _activate(g, 2 * un, 3 * un, act, alpha, fast)
                _activate(g, 3 * un, 4 * un, ract, alpha, fast)
                gi, gf = g[:un], g[un:2 * un]
                gc, go = g[2 * un:3 * un], g[3 * un:4 * un]
                for k in range(un):
                    cf[k] = gf[k] * cf[k] + gi[k] * gc[k]
                    tmp[k] = cf[k]
                _activate(tmp, 0, un, act, alpha, fast)
                for k in range(un):
                    hf[k] = go[k] * tmp[k]
            else:
                _activate(g, 0, un, act, alpha, fast)
                for k in range(un):
                    hf[k] = g[k]
        if has_mask:
            for i in range(nb):
                if mask[i0 + i, t] != 0:
                    for j in range(u):
                        ob[j, i] = hb[j, i]
                else:
                    for j in range(u):
                        hb[j, i] = old_h[j, i]
                        cb[j, i] = old_c[j, i]
                        if zero_out:
                            ob[j, i] = 0.0
        if ret_seq:
            src = ob if has_mask else hb
            for i in range(nb):
                for j in range(u):
                    seq[i0 + i, ts, j] = src[j, i]
    last = ob if has_mask else hb
    for i in range(nb):
        for j in range(u):
            h[i0 + i, j] = hb[j, i]
            c[i0 + i, j] = cb[j, i]
            prev[i0 + i, j] = last[j, i]


@njit(**JIT)
def _recur_blocks(xt, wt, ut, h, c, mask, has_mask, seq, ret_seq, backwards, reverse, zero_out,
                  cell, act, ract, alpha, reset_after, fast, prev, cols, lo, hi):
    """Blocks ``lo:hi`` of ``cols`` batch rows, each through its whole recurrence
    (``split_work`` gives each thread a range of blocks)."""
    n = h.shape[0]
    for b in range(lo, hi):
        i0 = b * cols
        _columns(i0, min(n, i0 + cols), xt, wt, ut, h, c, mask, has_mask, seq,
                 ret_seq, backwards, reverse, zero_out, cell, act, ract, alpha, reset_after,
                 fast, prev)


def _run(args, parallel: bool) -> None:
    (cell, units, act, ract, ret_seq, backwards, reverse, zero_out, which, n_states, masked,
     reset_after) = args[-12:]
    *arrays, out = args[:-12]
    kernel, rk, bias = arrays[-3:]
    data = arrays[:-3]
    x = data[0]
    mask = data[-1] if masked else None
    states = data[1:1 + n_states]
    dtype = out.dtype
    n, steps, features = x.shape
    u = units
    gates = _GATES[cell] * u
    # (T, F, N): step t's inputs as the right operand of W^T x_t, batch columns contiguous.
    # The biases ride in the products: W^T gets the input bias as one more column against a
    # row of ones under x_t, U^T (GRU reset_after) the recurrent bias against one under h —
    # cheaper than a broadcast add over every (gate, row) per step.
    has_bias = bias.size > 0
    xt = np.empty((steps, features + has_bias, n), dtype)
    xt[:, :features] = np.asarray(x, dtype).transpose(1, 2, 0)
    wt = np.empty((gates, features + has_bias), dtype)
    wt[:, :features] = np.asarray(kernel, dtype).T
    recurrent_bias = has_bias and bias.ndim == 2  # GRU reset_after: input, recurrent biases
    ut = np.empty((gates, u + recurrent_bias), dtype)
    ut[:, :u] = np.asarray(rk, dtype).T
    if has_bias:
        xt[:, features] = 1.0
        wt[:, features] = bias[0] if recurrent_bias else bias
        if recurrent_bias:
            ut[:, u] = bias[1]
    h = np.array(states[0], dtype, order="C") if n_states else np.zeros((n, u), dtype)
    c = np.array(states[1], dtype, order="C") if n_states > 1 else np.zeros((n, u), dtype)
    m = np.ascontiguousarray(mask) if mask is not None else np.zeros((1, 1), dtype)
    seq_out = ret_seq and which in (0, ALL)
    if not seq_out:
        seq = np.zeros((1, 1, 1), dtype)
    elif which == ALL:  # the sequence part of the packed output, written contiguously
        seq = np.empty((n, steps, u), dtype)
    else:
        seq = out
    prev = np.zeros((n, u), dtype)
    fast = dtype == np.float32  # float64 models keep libm's precision
    threads = min(get_num_threads(), n // PARALLEL_MIN_ROWS)
    use_threads = (parallel and threads > 1 and n * u * steps >= PARALLEL_MIN_WORK
                   and not machine_busy())
    cols = min(MAX_COLUMNS, -(-n // threads) if use_threads else n) if n else 1
    split_work(_recur_blocks, -(-n // cols), xt, wt, ut, h, c, m, mask is not None, seq,
               seq_out, backwards, reverse, zero_out, cell, act, ract, LEAKY_RELU_DEFAULT_SLOPE,
               reset_after, fast, prev, cols, threads=threads if use_threads else 1)
    if which == ALL:
        _pack(out, h, c, seq if seq_out else (h if mask is None or steps == 0 else prev), cell)
        return
    if seq_out:
        return
    if which == 2:
        out[...] = c
    elif which == 1 or mask is None or steps == 0:
        out[...] = h
    else:
        out[...] = prev


def _pack(out: np.ndarray, h: np.ndarray, c: np.ndarray, result: np.ndarray,
          cell: int) -> None:
    """``output="all"``: the final states along axis 1, then the sequence or last output."""
    states = (h, c) if cell == LSTM else (h,)
    for k, state in enumerate(states):
        out[:, k] = state
    out[:, len(states):] = result if result.ndim == 3 else result[:, None]


def recurrent(*args) -> None:
    """``fn(x, *initial_states, [mask], kernel, recurrent_kernel, bias, out, *scalars)``."""
    _run(args, parallel=False)


def recurrent_parallel(*args) -> None:
    """``recurrent``, blocks of batch rows on separate threads when the batch is wide enough."""
    _run(args, parallel=True)


def _scalars_for(cell: int):
    def scalars(attrs, input_shapes, out_shape) -> tuple:
        n_states = len(input_shapes) - 1 - bool(attrs.get("masked"))
        return (cell, int(attrs["units"]), CODES[attrs.get("activation", "tanh")],
                CODES[attrs.get("recurrent_activation", "sigmoid")],
                bool(attrs.get("return_sequences", False)),
                bool(attrs.get("go_backwards", False)),
                bool(attrs.get("reverse_output", False)),
                bool(attrs.get("zero_output_for_mask", False)),
                _OUTPUTS[attrs.get("output", "sequence")], n_states, bool(attrs.get("masked")),
                bool(attrs.get("reset_after", True)))
    return scalars


for _op, _cell in _CELLS.items():
    register_kernel(Kernel(_op, recurrent, _scalars_for(_cell),
                           param_names=("kernel", "recurrent_kernel", "bias"),
                           optional_params=frozenset({"bias"}), parallel_fn=recurrent_parallel))
