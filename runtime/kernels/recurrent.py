"""SimpleRNN / LSTM / GRU: one BLAS product projects every step's input, then a fused
recurrence runs the steps (recurrent product into a reused buffer, then gates and state update
in place per row: no temporaries per step).

The launcher is Python (it picks buffers and slices the bias); the loop is jitted. Rows of a
step are independent once the step's recurrent product is done, so ``recurrent_parallel``
spreads them over threads when the batch is wide enough.
"""

import math

import numba
import numpy as np
from numba import njit, prange

from compiler.ops.activations import LEAKY_RELU_DEFAULT_SLOPE

from .activations import CODES, SIGMOID, TANH, scalar_activation
from .blas import gemm
from .flags import JIT
from .registry import Kernel, register_kernel

SIMPLE, LSTM, GRU = 0, 1, 2
_CELLS = {"simple_rnn": SIMPLE, "lstm": LSTM, "gru": GRU}
_GATES = (1, 4, 3)
_OUTPUTS = {"sequence": 0, "h": 1, "c": 2}
_INLINE = {k: v for k, v in JIT.items() if k != "cache"}
#: rows * units per step from which the parallel variant spreads rows over threads
PARALLEL_MIN_ROW_WORK = 1 << 16
_BLOCKS = max(1, numba.config.NUMBA_NUM_THREADS)


@njit(inline="always", **_INLINE)
def _act(v, code, alpha):
    """``scalar_activation`` with the two recurrent defaults first (the common, hot case)."""
    if code == TANH:
        return math.tanh(v)
    if code == SIGMOID:
        return 1.0 / (1.0 + math.exp(-v))
    return scalar_activation(v, code, alpha)


@njit(inline="always", **_INLINE)
def _update_rows(r0, r1, xp, t, step, g, g2, h, c, prev, rh, mask, has_mask, seq, ret_seq,
                 reverse, zero_out, cell, act, ract, alpha, reset_after, rbias):
    u = h.shape[1]
    ts = t if reverse else step
    for i in range(r0, r1):
        keep = True
        if has_mask:
            keep = mask[i, t] != 0
        x_i, g_i, h_i, c_i, prev_i = xp[i, t], g[i], h[i], c[i], prev[i]
        for j in range(u):
            if cell == LSTM:
                gi = _act(x_i[j] + g_i[j], ract, alpha)
                gf = _act(x_i[u + j] + g_i[u + j], ract, alpha)
                gc = _act(x_i[2 * u + j] + g_i[2 * u + j], act, alpha)
                go = _act(x_i[3 * u + j] + g_i[3 * u + j], ract, alpha)
                c_new = gf * c_i[j] + gi * gc
                h_new = go * _act(c_new, act, alpha)
                if keep:
                    c_i[j] = c_new
            elif cell == GRU:
                if reset_after:
                    z = _act(x_i[j] + g_i[j] + rbias[j], ract, alpha)
                    hh = _act(x_i[2 * u + j] + rh[i, j] * (g_i[2 * u + j] + rbias[2 * u + j]),
                              act, alpha)
                else:
                    z = _act(x_i[j] + g_i[j], ract, alpha)
                    hh = _act(x_i[2 * u + j] + g2[i, j], act, alpha)
                h_new = z * h_i[j] + (1.0 - z) * hh
            else:
                h_new = _act(x_i[j] + g_i[j], act, alpha)
            if keep:
                h_i[j] = h_new
                out = h_new
            elif zero_out:
                out = 0.0
            else:
                out = prev_i[j]
            prev_i[j] = out
            if ret_seq:
                seq[i, ts, j] = out


@njit(inline="always", **_INLINE)
def _gru_reset(r0, r1, xp, t, g, h, rh, ract, alpha, reset_after, rbias):
    """GRU's reset gate ``r`` into ``rh``: ``r`` (reset_after) or ``r * h`` (before the
    candidate's recurrent product)."""
    u = h.shape[1]
    for i in range(r0, r1):
        for j in range(u):
            r = _act(xp[i, t, u + j] + g[i, u + j] + rbias[u + j], ract, alpha)
            rh[i, j] = r if reset_after else r * h[i, j]


@njit(inline="always", **_INLINE)
def _loop(xp, rk, rk_h, rbias, h, c, mask, has_mask, seq, ret_seq, backwards, reverse,
          zero_out, cell, act, ract, alpha, reset_after, blocks, parallel):
    n, steps = xp.shape[0], xp.shape[1]
    g = np.empty((n, rk.shape[1]), h.dtype)
    g2 = np.empty((n, rk_h.shape[1]), h.dtype)
    rh = np.empty_like(h)
    prev = np.zeros_like(h)
    rows = (n + blocks - 1) // blocks
    for step in range(steps):
        t = steps - 1 - step if backwards else step
        np.dot(h, rk, g)
        if cell == GRU:
            if parallel:
                for b in prange(blocks):
                    _gru_reset(b * rows, min(n, b * rows + rows), xp, t, g, h, rh, ract,
                               alpha, reset_after, rbias)
            else:
                _gru_reset(0, n, xp, t, g, h, rh, ract, alpha, reset_after, rbias)
            if not reset_after:
                np.dot(rh, rk_h, g2)
        if parallel:
            for b in prange(blocks):
                _update_rows(b * rows, min(n, b * rows + rows), xp, t, step, g, g2, h, c,
                             prev, rh, mask, has_mask, seq, ret_seq, reverse, zero_out, cell,
                             act, ract, alpha, reset_after, rbias)
        else:
            _update_rows(0, n, xp, t, step, g, g2, h, c, prev, rh, mask, has_mask, seq,
                         ret_seq, reverse, zero_out, cell, act, ract, alpha, reset_after,
                         rbias)
    return prev


@njit(**JIT)
def _recur_serial(xp, rk, rk_h, rbias, h, c, mask, has_mask, seq, ret_seq, backwards, reverse,
                  zero_out, cell, act, ract, alpha, reset_after):
    return _loop(xp, rk, rk_h, rbias, h, c, mask, has_mask, seq, ret_seq, backwards, reverse,
                 zero_out, cell, act, ract, alpha, reset_after, 1, False)


@njit(parallel=True, **JIT)
def _recur_parallel(xp, rk, rk_h, rbias, h, c, mask, has_mask, seq, ret_seq, backwards,
                    reverse, zero_out, cell, act, ract, alpha, reset_after, blocks):
    return _loop(xp, rk, rk_h, rbias, h, c, mask, has_mask, seq, ret_seq, backwards, reverse,
                 zero_out, cell, act, ract, alpha, reset_after, blocks, True)


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
    # the input projection of every step at once (one BLAS product), input bias folded in
    xp = np.empty((n * steps, gates), dtype)
    if features and n * steps:
        # numba's single-threaded BLAS: numpy's threaded one fights numba's threads for cores
        gemm(np.ascontiguousarray(x, dtype).reshape(n * steps, features), kernel, xp, False)
    else:
        xp[...] = 0
    rbias = np.zeros(gates, dtype)
    if bias.size:
        if bias.ndim == 2:  # GRU reset_after: input and recurrent biases
            xp += bias[0]
            rbias = np.ascontiguousarray(bias[1])
        else:
            xp += bias
    xp = xp.reshape(n, steps, gates)
    h = np.array(states[0], dtype, order="C") if n_states else np.zeros((n, u), dtype)
    c = np.array(states[1], dtype, order="C") if n_states > 1 else np.zeros((n, u), dtype)
    if cell == GRU and not reset_after:
        rk_main, rk_h = np.ascontiguousarray(rk[:, :2 * u]), np.ascontiguousarray(rk[:, 2 * u:])
    else:
        rk_main, rk_h = rk, np.zeros((u, 0), dtype)
    m = np.ascontiguousarray(mask) if mask is not None else np.zeros((1, 1), dtype)
    seq_out = ret_seq and which == 0
    seq = out if seq_out else np.zeros((1, 1, 1), dtype)
    flags = (ret_seq and seq_out, backwards, reverse, zero_out, cell, act, ract,
             LEAKY_RELU_DEFAULT_SLOPE, reset_after)
    if parallel and _BLOCKS > 1 and n >= 2 * _BLOCKS and n * u >= PARALLEL_MIN_ROW_WORK:
        prev = _recur_parallel(xp, rk_main, rk_h, rbias, h, c, m, mask is not None, seq,
                               *flags, _BLOCKS)
    else:
        prev = _recur_serial(xp, rk_main, rk_h, rbias, h, c, m, mask is not None, seq, *flags)
    if seq_out:
        return
    if which == 2:
        out[...] = c
    elif which == 1 or mask is None or steps == 0:
        out[...] = h
    else:
        out[...] = prev


def recurrent(*args) -> None:
    """``fn(x, *initial_states, [mask], kernel, recurrent_kernel, bias, out, *scalars)``."""
    _run(args, parallel=False)


def recurrent_parallel(*args) -> None:
    """``recurrent``, rows of each step spread over threads when the batch is wide enough."""
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
