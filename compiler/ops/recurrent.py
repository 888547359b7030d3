"""Recurrent ops ``simple_rnn``, ``lstm`` and ``gru`` (Keras 3 formulas and weight layouts).

Operands: ``x (N, T, F)``, then the initial states (none, or one ``(N, units)`` per state:
``h`` and, for LSTM, ``c``), then — when ``attrs["masked"]`` — the time-step mask ``(N, T)``
(see ``compiler/frontend/masking.py``). Params: ``kernel (F, G*units)``,
``recurrent_kernel (units, G*units)`` and ``bias`` (``(G*units,)``; GRU with ``reset_after``:
``(2, 3*units)``), with gates ``G``: 1, 4 (i, f, c, o) or 3 (z, r, h).

Attrs besides the Keras ones: ``output`` picks the value a node returns — ``"sequence"`` (the
whole sequence with ``return_sequences``, else the last output), ``"h"`` or ``"c"`` (the final
states), or ``"all"``: everything from one run, packed along axis 1 as ``(N, S + T, units)``
(``T`` = 1 without ``return_sequences``) — the ``S`` final states (h, then c), then the output
(``return_state`` reads it through slices, so the recurrence runs once); ``reverse_output``
writes a ``go_backwards`` sequence back in input order (Bidirectional);
``zero_output_for_mask`` outputs zeros at masked steps instead of carrying the previous output
(Keras sets it in Bidirectional with ``return_sequences``).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..symbolic import add, format_shape
from ..types import TensorType
from .activations import apply_activation
from .registry import REDUCTION, OpDef, register, require_rank

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
STATES = {"simple_rnn": 1, "lstm": 2, "gru": 1}
KIND = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def packed_part(op: str, which: str, return_sequences: bool) -> tuple[tuple, tuple, bool]:
    """Where ``which`` ("sequence", "h" or "c") lies in an ``output="all"`` pack: the ``slice``
    start and shape, and whether axis 1 is then squeezed away. One place for the pack's layout,
    so the layers and the ONNX importer read it alike."""
    first = {"h": 0, "c": 1}.get(which, STATES[op])
    whole = which == "sequence" and return_sequences
    return (0, first, 0), (-1, -1 if whole else 1, -1), not whole


def split_operands(op: str, inputs: list, attrs) -> tuple:
    """``(x, initial states, mask or None)`` from a node's data operands."""
    masked = bool(attrs.get("masked", False))
    mask = inputs[-1] if masked else None
    states = list(inputs[1:len(inputs) - masked])
    return inputs[0], states, mask


def recurrent_param_spec(op: str):
    def spec(inputs, attrs) -> dict:
        x = inputs[0]
        fan_in = None if x.shape is None or len(x.shape) < 1 else x.shape[-1]
        u, g = attrs["units"], GATES[op]
        out = {"kernel": (fan_in, g * u), "recurrent_kernel": (u, g * u)}
        if attrs.get("use_bias", True):
            out["bias"] = (2, g * u) if op == "gru" and attrs.get("reset_after", True) \
                else (g * u,)
        return out
    return spec


def recurrent_shape_rule(op: str):
    kind = KIND[op]

    def rule(inputs, params, attrs, unify) -> TensorType:
        x, states, mask = split_operands(op, inputs, attrs)
        require_rank(x, 3, kind, exact=True)
        if states and len(states) != STATES[op]:
            raise ShapeError(f"{kind} takes {STATES[op]} initial state(s), received "
                             f"{len(states)}")
        u = attrs["units"]
        if x.shape is None:
            n, t = None, None
        else:
            n, t, f = x.shape
            kernel = params["kernel"].shape
            unify.dims(kernel[0], f, f"input axis 2 (features; kernel is {format_shape(kernel)})")
        for i, s in enumerate(states):
            require_rank(s, 2, f"{kind} initial state {i}", exact=True)
            if s.shape is not None:
                n = unify.dims(n, s.shape[0], f"initial state {i} axis 0 (batch)")
                unify.dims(u, s.shape[1], f"initial state {i} axis 1 (units)")
        if mask is not None and mask.shape is not None and x.shape is not None:
            unify.shapes((n, t), mask.shape, "mask")
        n = unify.resolve(n)
        which = attrs.get("output", "sequence")
        if which == "all":
            t = unify.resolve(t) if attrs.get("return_sequences") else 1
            return x.with_shape((n, None if t is None else add(t, STATES[op]), u))
        if which == "sequence" and attrs.get("return_sequences"):
            return x.with_shape((n, unify.resolve(t), u))
        return x.with_shape((n, u))
    return rule


def _gate(v, name):
    return apply_activation(v, name)


def _step(op, attrs, xp_t, h, c, rk, bias):
    """One step from the projected input ``xp_t`` (input bias included); float64 NumPy."""
    u = attrs["units"]
    act, ract = attrs.get("activation", "tanh"), attrs.get("recurrent_activation", "sigmoid")
    if op == "simple_rnn":
        return _gate(xp_t + h @ rk, act), c
    if op == "lstm":
        z = xp_t + h @ rk
        i, f = _gate(z[:, :u], ract), _gate(z[:, u:2 * u], ract)
        g, o = _gate(z[:, 2 * u:3 * u], act), _gate(z[:, 3 * u:], ract)
        c = f * c + i * g
        return o * _gate(c, act), c
    # gru
    if attrs.get("reset_after", True):
        inner = h @ rk
        if bias is not None:
            inner = inner + bias[1]
        z = _gate(xp_t[:, :u] + inner[:, :u], ract)
        r = _gate(xp_t[:, u:2 * u] + inner[:, u:2 * u], ract)
        hh = _gate(xp_t[:, 2 * u:] + r * inner[:, 2 * u:], act)
    else:
        z = _gate(xp_t[:, :u] + h @ rk[:, :u], ract)
        r = _gate(xp_t[:, u:2 * u] + h @ rk[:, u:2 * u], ract)
        hh = _gate(xp_t[:, 2 * u:] + (r * h) @ rk[:, 2 * u:], act)
    return z * h + (1 - z) * hh, c


def recurrent_reference(op: str):
    def reference(inputs, params, attrs) -> np.ndarray:
        x, states, mask = split_operands(op, inputs, attrs)
        dtype = x.dtype
        x = x.astype(np.float64)
        n, t, _ = x.shape
        u = attrs["units"]
        kernel = params["kernel"].astype(np.float64)
        rk = params["recurrent_kernel"].astype(np.float64)
        bias = params["bias"].astype(np.float64) if "bias" in params else None
        with np.errstate(all="ignore"):
            xp = x @ kernel
            if bias is not None:
                xp = xp + (bias[0] if bias.ndim == 2 else bias)
            h = states[0].astype(np.float64) if states else np.zeros((n, u))
            c = states[1].astype(np.float64) if len(states) > 1 else np.zeros((n, u))
            prev = np.zeros((n, u))
            seq = np.zeros((n, t, u))
            backwards = attrs.get("go_backwards", False)
            for step in range(t):
                ti = t - 1 - step if backwards else step
                h_new, c_new = _step(op, attrs, xp[:, ti], h, c, rk, bias)
                if mask is not None:
                    keep = (mask[:, ti] != 0)[:, None]
                    h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
                    fill = 0.0 if attrs.get("zero_output_for_mask") else prev
                    out = np.where(keep, h_new, fill)
                else:
                    h, c, out = h_new, c_new, h_new
                prev = out
                seq[:, ti if attrs.get("reverse_output") else step] = out
        which = attrs.get("output", "sequence")
        if which == "c":
            return c.astype(dtype)
        if which == "h":
            return h.astype(dtype)
        out = seq if attrs.get("return_sequences") else \
            (prev if mask is not None and t else h)
        if which == "all":
            states = [h, c][:STATES[op]]
            out = out if out.ndim == 3 else out[:, None]
            return np.concatenate([s[:, None] for s in states] + [out], axis=1).astype(dtype)
        return out.astype(dtype)
    return reference


for _op in ("simple_rnn", "lstm", "gru"):
    register(OpDef(
        name=_op,
        shape_rule=recurrent_shape_rule(_op),
        param_spec=recurrent_param_spec(_op),
        reference=recurrent_reference(_op),
        kernel=_op,
        num_inputs=None,
        min_inputs=1,
        natural_input_rank=3,
        traits=frozenset({REDUCTION}),
        doc=f"Keras {KIND[_op]} over (N, T, F): input projection for every step, then the "
            f"recurrence.",
    ))
