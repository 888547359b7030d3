"""ONNX forms of the sequence ops (Embedding, masks, Conv1D family, RNNs, attention, ...).

Registered into ``export._EMITTERS`` on import (``export.py`` imports this module last). Values
stay in our layouts (``(N, T, C)``); ONNX's channel-first Conv/Pool get a ``Transpose`` on each
side, its time-major RNN ops one on each side.

Recurrent layers become ONNX ``RNN``/``LSTM``/``GRU`` with the weights re-laid out once:
Keras' LSTM gates ``i, f, c, o`` -> ONNX ``i, o, f, c``; GRU keeps ``z, r, h`` with
``linear_before_reset = reset_after``; kernels are transposed to ``(gates*units, in)``. A
time-step mask becomes ONNX's ``sequence_lens`` (the count of kept steps per row): exact for
post-padded sequences (Keras' ``mask_zero`` with padding at the end), which is what ONNX
RNNs can express; a mask with holes in the middle of a row is not representable.

``MultiHeadAttention`` becomes MatMul/Softmax: projections, ``(N, H, Tq, Tv)`` scores, the mask
(and the causal triangle, built from ``Range``) as a ``Where`` to ``-1e9`` as Keras' softmax
does, weighted sum, output projection.
"""

from __future__ import annotations

import numpy as np

from ...errors import CompilerError
from ...ir import data_operands
from ...ops.attention import MASKED_SCORE, input_roles
from ...ops.conv import same_padding
from ...ops.recurrent import STATES, split_operands
from ...ops.sequence1d import conv1d_geometry, non_negative_pair, pool1d_geometry
from .export import _EMITTERS, _emits, _epilogue

INT64_MAX = np.iinfo(np.int64).max
TIME_MAJOR = (1, 0, 2)  # (N, T, F) <-> (T, N, F)
TO_NCT = (0, 2, 1)      # (N, T, C) <-> (N, C, T)


def _shape(em, node: int, operand: int = 0) -> tuple:
    return tuple(em.g.nodes[data_operands(em.g, node)[operand]]["type"].shape)


def _dims_of(em, x: str, start: int, end: int | None, hint: str) -> str:
    """``Shape(x)[start:end]`` as an int64 vector (opset 15 ``Shape`` start/end)."""
    attrs = {"start": start} if end is None else {"start": start, "end": end}
    return em.add("Shape", [x], f"{hint}/dims", np.dtype(np.int64), **attrs)


def _keep(em, mask: str, hint: str) -> str:
    """A mask value (1 keep / 0 skip, any dtype) as bool."""
    zero = em.const(0, f"{hint}/zero", em.dtypes[mask])
    return em.add("Not", [em.add("Equal", [mask, zero], f"{hint}/masked", np.dtype(bool))],
                  f"{hint}/keep", np.dtype(bool))


# -- embedding and masks ----------------------------------------------------------------------
@_emits("embedding")
def _emit_embedding(em, node, ins, params, attrs, hint, dtype):
    ids = em.cast(ins[0], np.int64, hint)
    return em.add("Gather", [em.weight(params["embeddings"]), ids], hint, dtype, axis=0)


@_emits("sequence_mask")
def _emit_sequence_mask(em, node, ins, params, attrs, hint, dtype):
    x = ins[0]
    value = em.const(attrs.get("mask_value", 0.0), f"{hint}/mask_value", em.dtypes[x])
    keep = em.add("Not", [em.add("Equal", [x, value], f"{hint}/eq", np.dtype(bool))],
                  f"{hint}/keep", np.dtype(bool))
    if attrs.get("reduce_last", False):
        counts = em.add("Cast", [keep], f"{hint}/counts", np.dtype(np.int32), to=6)
        keep = em.add("ReduceMax", [counts], f"{hint}/any", np.dtype(np.int32), axes=[-1],
                      keepdims=0)
    return em.cast(keep, dtype, hint)


@_emits("masking")
def _emit_masking(em, node, ins, params, attrs, hint, dtype):
    x = ins[0]
    value = em.const(attrs.get("mask_value", 0.0), f"{hint}/mask_value", dtype)
    differs = em.add("Cast", [em.add("Not", [em.add("Equal", [x, value], f"{hint}/eq",
                                                       np.dtype(bool))], f"{hint}/ne",
                                         np.dtype(bool))], f"{hint}/ne_int", np.dtype(np.int32),
                     to=6)
    keep = em.add("ReduceMax", [differs], f"{hint}/any", np.dtype(np.int32), axes=[-1],
                  keepdims=1)
    keep = em.add("Cast", [keep], f"{hint}/keep", np.dtype(bool), to=9)
    return em.add("Where", [keep, x, em.const(0, f"{hint}/zero", dtype)], hint, dtype)


@_emits("global_avg_pool1d", "global_max_pool1d")
def _emit_global_pool1d(em, node, ins, params, attrs, hint, dtype):
    keep = int(bool(attrs.get("keepdims", False)))
    if em.g.nodes[node]["op"] == "global_max_pool1d":
        return em.add("ReduceMax", [ins[0]], hint, dtype, axes=[1], keepdims=keep)
    if not (attrs.get("masked") and len(ins) > 1):
        return em.add("ReduceMean", [ins[0]], hint, dtype, axes=[1], keepdims=keep)
    m = em.add("Cast", [_keep(em, ins[1], hint)], f"{hint}/weights", dtype,
               to=_onnx_type(dtype))
    m = em.add("Unsqueeze", [m, em.ints([2], f"{hint}/axes")], f"{hint}/weights3", dtype)
    axes = em.ints([1], f"{hint}/time")
    total = em.add("ReduceSum", [em.add("Mul", [ins[0], m], f"{hint}/kept", dtype), axes],
                   f"{hint}/sum", dtype, keepdims=keep)
    count = em.add("ReduceSum", [m, axes], f"{hint}/count", dtype, keepdims=keep)
    return em.add("Div", [total, count], hint, dtype)


def _onnx_type(dtype) -> int:
    from .export import _tensor_type

    return _tensor_type(dtype)


# -- Conv1D family ----------------------------------------------------------------------------
def _time_pads(em, node, k: int, stride: int, dilation: int, padding: str, hint: str) -> dict:
    """ONNX pad attributes for a 1-D window op over a possibly symbolic length."""
    if padding == "valid":
        return {"pads": [0, 0]}
    if padding == "causal":
        return {"pads": [dilation * (k - 1), 0]}
    if stride == 1:
        total = dilation * (k - 1)
        return {"pads": [total // 2, total - total // 2]}
    if dilation == 1:
        return {"auto_pad": "SAME_UPPER"}  # TF SAME: the odd cell at the end
    steps = _shape(em, node)[1]
    if not isinstance(steps, (int, np.integer)):
        raise CompilerError(f"export: layer '{hint}': 'same' padding with dilation {dilation} "
                            f"and strides {stride} over a symbolic length has no ONNX form that "
                            f"ONNX Runtime runs; export with a fixed length")
    lo, hi = same_padding(int(steps), -(-int(steps) // stride), k, stride, dilation)
    return {"pads": [int(lo), int(hi)]}


@_emits("conv1d")
def _emit_conv1d(em, node, ins, params, attrs, hint, dtype):
    k, stride, dilation, padding, groups = conv1d_geometry(attrs)
    x = em.add("Transpose", [ins[0]], f"{hint}/to_nct", dtype, perm=list(TO_NCT))
    inputs = [x, em.weight(params["kernel"], lambda w: w.transpose(2, 1, 0), "OIW")]
    if "bias" in params:
        inputs.append(em.weight(params["bias"]))
    y = em.add("Conv", inputs, f"{hint}/conv", dtype, kernel_shape=[k], strides=[stride],
               dilations=[dilation], group=groups,
               **_time_pads(em, node, k, stride, dilation, padding, hint))
    y = em.add("Transpose", [y], f"{hint}/to_ntc", dtype, perm=list(TO_NCT))
    return _epilogue(em, y, attrs, hint, dtype)


@_emits("max_pool1d", "avg_pool1d")
def _emit_pool1d(em, node, ins, params, attrs, hint, dtype):
    is_max = em.g.nodes[node]["op"] == "max_pool1d"
    pool, stride, padding = pool1d_geometry(attrs, "MaxPooling1D" if is_max else
                                            "AveragePooling1D")
    extra = {} if is_max else {"count_include_pad": 0}  # TF: padded cells never count
    geo = {"auto_pad": "SAME_UPPER"} if padding == "same" else {"pads": [0, 0, 0, 0]}
    x, out_dtype = ins[0], dtype
    if np.dtype(dtype).kind in "iu":  # ONNX MaxPool has no int32/int64: pool in float64
        x, dtype = em.cast(x, np.float64, hint), np.dtype(np.float64)  # exact up to 2**53
    # as a 2-D pool over (N, C, 1, T): the form every ONNX consumer (our importer too) reads
    x = em.add("Transpose", [x], f"{hint}/to_nct", dtype, perm=list(TO_NCT))
    x = em.add("Unsqueeze", [x, em.ints([2], f"{hint}/row")], f"{hint}/nc1t", dtype)
    y = em.add("MaxPool" if is_max else "AveragePool", [x], f"{hint}/pool", dtype,
               kernel_shape=[1, pool], strides=[1, stride], **geo, **extra)
    y = em.add("Squeeze", [y, em.ints([2], f"{hint}/row")], f"{hint}/nct", dtype)
    if dtype == out_dtype:
        return em.add("Transpose", [y], hint, dtype, perm=list(TO_NCT))
    y = em.add("Transpose", [y], f"{hint}/to_ntc", dtype, perm=list(TO_NCT))
    return em.cast(y, out_dtype, hint)


@_emits("upsampling1d")
def _emit_upsampling1d(em, node, ins, params, attrs, hint, dtype):
    size = int(attrs["size"])
    x = em.add("Unsqueeze", [ins[0], em.ints([2], f"{hint}/axes")], f"{hint}/split", dtype)
    x = em.add("Concat", [x] * size, f"{hint}/repeated", dtype, axis=2)  # (N, T, size, C)
    channels = _shape(em, node)[2]
    if isinstance(channels, (int, np.integer)):  # a constant target our importer folds
        shape = em.ints([0, -1, int(channels)], f"{hint}/shape")
    else:
        shape = em.add("Concat", [_dims_of(em, ins[0], 0, 1, hint),
                                  em.ints([-1], f"{hint}/steps"),
                                  _dims_of(em, ins[0], 2, None, hint)], f"{hint}/shape",
                       np.dtype(np.int64), axis=0)
    return em.add("Reshape", [x, shape], hint, dtype)


@_emits("zero_padding1d")
def _emit_zero_padding1d(em, node, ins, params, attrs, hint, dtype):
    left, right = non_negative_pair(attrs["padding"], "padding", "ZeroPadding1D")
    pads = em.ints([0, left, 0, 0, right, 0], f"{hint}/pads")
    return em.add("Pad", [ins[0], pads], hint, dtype)


@_emits("cropping1d")
def _emit_cropping1d(em, node, ins, params, attrs, hint, dtype):
    left, right = non_negative_pair(attrs["cropping"], "cropping", "Cropping1D")
    return em.add("Slice", [ins[0], em.ints([left], f"{hint}/starts"),
                            em.ints([-right if right else INT64_MAX], f"{hint}/ends"),
                            em.ints([1], f"{hint}/axes")], hint, dtype)


@_emits("fold_time")
def _emit_fold_time(em, node, ins, params, attrs, hint, dtype):
    shape = em.add("Concat", [em.ints([-1], f"{hint}/rows"), _dims_of(em, ins[0], 2, None, hint)],
                   f"{hint}/shape", np.dtype(np.int64), axis=0)
    return em.add("Reshape", [ins[0], shape], hint, dtype)


@_emits("unfold_time")
def _emit_unfold_time(em, node, ins, params, attrs, hint, dtype):
    y, x = ins
    shape = em.add("Concat", [_dims_of(em, x, 0, 2, hint), _dims_of(em, y, 1, None, hint)],
                   f"{hint}/shape", np.dtype(np.int64), axis=0)
    return em.add("Reshape", [y, shape], hint, dtype)


@_emits("reshape_dims")
def _emit_reshape_dims(em, node, ins, params, attrs, hint, dtype):
    # ONNX Reshape's own semantics: 0 copies the input's size, one -1 is inferred
    return em.add("Reshape", [ins[0], em.ints([int(d) for d in attrs["shape"]],
                                              f"{hint}/shape")], hint, dtype)


@_emits("position_embedding")
def _emit_position_embedding(em, node, ins, params, attrs, hint, dtype):
    x = ins[0]
    table = em.add("Slice", [em.weight(params["embeddings"]), em.ints([0], f"{hint}/start"),
                             _dims_of(em, x, 1, 2, hint), em.ints([0], f"{hint}/axes")],
                   f"{hint}/rows", dtype)
    table = em.add("Unsqueeze", [table, em.ints([0], f"{hint}/batch")], f"{hint}/rows3", dtype)
    return em.add("Expand", [table, em.add("Shape", [x], f"{hint}/shape", np.dtype(np.int64))],
                  hint, dtype)


# -- recurrent layers -------------------------------------------------------------------------
_ONNX_OP = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
_ACTIVATIONS = {"tanh": ("Tanh", {}), "sigmoid": ("Sigmoid", {}), "relu": ("Relu", {}),
                "hard_sigmoid": ("HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5})}
_LSTM_ORDER = (0, 3, 1, 2)  # ONNX i, o, f, c from Keras i, f, c, o


def _gate_blocks(w: np.ndarray, op: str) -> np.ndarray:
    """Keras' gate columns in ONNX's order (only LSTM's differ)."""
    if op != "lstm":
        return w
    u = w.shape[-1] // 4
    return np.concatenate([w[..., g * u:(g + 1) * u] for g in _LSTM_ORDER], axis=-1)


def _rnn_activations(op: str, attrs, hint: str) -> dict:
    names = [attrs.get("activation", "tanh")]
    if op != "simple_rnn":
        names = [attrs.get("recurrent_activation", "sigmoid")] + names * (2 if op == "lstm"
                                                                          else 1)
    acts, alphas, betas = [], [], []
    for name in names:
        if name not in _ACTIVATIONS:
            raise CompilerError(f"export: layer '{hint}': activation {name!r} has no ONNX "
                                f"{_ONNX_OP[op]} form (supported: {sorted(_ACTIVATIONS)})")
        onnx_name, extra = _ACTIVATIONS[name]
        acts.append(onnx_name)
        alphas.append(extra.get("alpha"))
        betas.append(extra.get("beta"))
    out: dict = {"activations": acts}
    if any(a is not None for a in alphas):
        out["activation_alpha"] = [0.0 if a is None else a for a in alphas]
        out["activation_beta"] = [0.0 if b is None else b for b in betas]
    return out


def _rnn_bias(op: str, attrs, units: int):
    """``B`` ``(1, 2*gates*units)``: input bias then recurrent bias, in ONNX gate order."""
    def transform(b: np.ndarray) -> np.ndarray:
        if b.ndim == 2:  # GRU reset_after: (2, 3u) = input bias, recurrent bias
            wb, rb = b[0], b[1]
        else:
            wb, rb = b, np.zeros_like(b)
        return np.concatenate([_gate_blocks(wb, op), _gate_blocks(rb, op)])[None]
    return transform


def _emit_recurrent(em, node, ins, params, attrs, hint, dtype):
    op = em.g.nodes[node]["op"]
    if attrs.get("output") == "all":  # the packed (N, S + T, u): one ONNX node per part
        parts = []
        for which in ("h", "c")[:STATES[op]] + ("sequence",):
            y = _emit_recurrent(em, node, ins, params, {**attrs, "output": which},
                                f"{hint}/{which}", dtype)
            if which != "sequence" or not attrs.get("return_sequences"):
                y = em.add("Unsqueeze", [y, em.ints([1], f"{hint}/{which}_axis")],
                           f"{hint}/{which}_3d", dtype)
            parts.append(y)
        return em.add("Concat", parts, hint, dtype, axis=1)
    x, states, mask = split_operands(op, ins, attrs)
    units = int(attrs["units"])
    w = em.weight(params["kernel"], lambda k: _gate_blocks(k, op).T[None], "onnx_W")
    r = em.weight(params["recurrent_kernel"], lambda k: _gate_blocks(k, op).T[None], "onnx_R")
    inputs = [em.add("Transpose", [x], f"{hint}/time_major", dtype, perm=list(TIME_MAJOR)), w, r]
    if "bias" in params:
        inputs.append(em.weight(params["bias"], _rnn_bias(op, attrs, units), "onnx_B"))
    else:
        inputs.append("")
    lens = ""
    if mask is not None:
        counts = em.add("Cast", [_keep(em, mask, hint)], f"{hint}/kept", np.dtype(np.int32),
                        to=6)
        lens = em.add("ReduceSum", [counts, em.ints([1], f"{hint}/time")], f"{hint}/lengths",
                      np.dtype(np.int32), keepdims=0)
    inputs.append(lens)
    for s in states:
        inputs.append(em.add("Unsqueeze", [em.cast(s, dtype, hint), em.ints([0], f"{hint}/dir")],
                             f"{hint}/initial", dtype))
    while inputs and inputs[-1] == "":
        inputs.pop()
    extra = _rnn_activations(op, attrs, hint)
    if op == "gru":
        extra["linear_before_reset"] = int(bool(attrs.get("reset_after", True)))
    backwards = bool(attrs.get("go_backwards", False))
    which = attrs.get("output", "sequence")
    sequences = which == "sequence" and bool(attrs.get("return_sequences"))
    # Keras carries the last output over masked steps where ONNX writes zeros; past a
    # post-padded row's length the carried output is its final h (Y_h), so read that too
    carry = sequences and mask is not None and not backwards and \
        not attrs.get("zero_output_for_mask")
    slot = 0 if sequences else (2 if which == "c" else 1)
    # every output named: ONNX Runtime links a node's "" output to another node's "" (absent)
    # input and then fails on the type mismatch
    outs = [em.fresh(f"{hint}/{name}") for name in ("y", "y_h", "y_c")[:max(slot, 1) + 1]]
    for name in outs:
        em.dtypes[name] = np.dtype(dtype)
    em.nodes.append(em.onnx.helper.make_node(
        _ONNX_OP[op], inputs, outs, name=em.fresh(f"{hint}/{_ONNX_OP[op]}"), hidden_size=units,
        direction="reverse" if backwards else "forward", **extra))
    em.dtypes[outs[slot]] = np.dtype(dtype)
    y = outs[slot]
    if not sequences:  # Y_h / Y_c: (1, N, units)
        return em.add("Squeeze", [y, em.ints([0], f"{hint}/dir_axis")], hint, dtype)
    y = em.add("Squeeze", [y, em.ints([1], f"{hint}/dir_axis")], f"{hint}/seq_tm", dtype)
    y = em.add("Transpose", [y], f"{hint}/seq", dtype, perm=list(TIME_MAJOR))
    if backwards and not attrs.get("reverse_output"):  # Keras: outputs in step order
        y = em.add("Slice", [y, em.ints([-1], f"{hint}/rstart"),
                             em.ints([-INT64_MAX], f"{hint}/rend"), em.ints([1], f"{hint}/raxis"),
                             em.ints([-1], f"{hint}/rstep")], f"{hint}/step_order", dtype)
    if carry:
        last_h = em.add("Transpose", [outs[1]], f"{hint}/last_h_nt", dtype, perm=[1, 0, 2])
        keep = em.add("Unsqueeze", [_keep(em, mask, hint), em.ints([2], f"{hint}/feat")],
                      f"{hint}/keep3", np.dtype(bool))
        y = em.add("Where", [keep, y, last_h], f"{hint}/carried", dtype)
    return y


for _op in _ONNX_OP:
    _EMITTERS[_op] = _emit_recurrent


# -- attention --------------------------------------------------------------------------------
def _project(em, x: str, pkernel: int, pbias: int | None, hint: str, dtype) -> str:
    """``(N, T, D) -> (N, H, T, d)`` through the ``(D, H, d)`` kernel as one MatMul."""
    heads, size = (int(s) for s in em.g.nodes[pkernel]["type"].shape[1:])
    w = em.weight(pkernel, lambda k: k.reshape(k.shape[0], -1), "2d")
    y = em.add("MatMul", [x, w], f"{hint}/proj", dtype)
    if pbias is not None:
        y = em.add("Add", [y, em.weight(pbias, lambda b: b.reshape(-1), "1d")], f"{hint}/bias",
                   dtype)
    y = em.add("Reshape", [y, em.ints([0, 0, heads, size], f"{hint}/heads")], f"{hint}/split",
               dtype)
    return em.add("Transpose", [y], f"{hint}/bhtd", dtype, perm=[0, 2, 1, 3])


def _causal_keep(em, query: str, value: str, hint: str) -> str:
    """``(Tq, Tv)`` bool, ``j <= i``, from ``Range`` over the two lengths."""
    zero, one = em.ints([0], f"{hint}/zero"), em.ints([1], f"{hint}/one")
    tq = em.add("Squeeze", [_dims_of(em, query, 1, 2, hint)], f"{hint}/tq", np.int64)
    tv = em.add("Squeeze", [_dims_of(em, value, 1, 2, hint)], f"{hint}/tv", np.int64)
    start, step = em.const(0, f"{hint}/r0", np.int64), em.const(1, f"{hint}/r1", np.int64)
    rows = em.add("Unsqueeze", [em.add("Range", [start, tq, step], f"{hint}/rows", np.int64),
                                one], f"{hint}/rows2", np.int64)
    cols = em.add("Unsqueeze", [em.add("Range", [start, tv, step], f"{hint}/cols", np.int64),
                                zero], f"{hint}/cols2", np.int64)
    return em.add("LessOrEqual", [cols, rows], f"{hint}/causal", np.dtype(bool))


@_emits("causal_mask")
def _emit_causal_mask(em, node, ins, params, attrs, hint, dtype):
    return _causal_keep(em, ins[0], ins[1], hint)


@_emits("multi_head_attention")
def _emit_mha(em, node, ins, params, attrs, hint, dtype):
    named = dict(zip(input_roles(attrs), ins))
    query, value = named["query"], named["value"]
    key = named.get("key", value)
    q = _project(em, query, params["query_kernel"], params.get("query_bias"), f"{hint}/query",
                 dtype)
    k = _project(em, key, params["key_kernel"], params.get("key_bias"), f"{hint}/key", dtype)
    v = _project(em, value, params["value_kernel"], params.get("value_bias"), f"{hint}/value",
                 dtype)
    q = em.add("Mul", [q, em.const(1.0 / np.sqrt(float(attrs["key_dim"])), f"{hint}/scale",
                                   dtype)], f"{hint}/scaled", dtype)
    kt = em.add("Transpose", [k], f"{hint}/key_t", dtype, perm=[0, 1, 3, 2])
    scores = em.add("MatMul", [q, kt], f"{hint}/scores", dtype)
    keep = None
    if "attention_mask" in named:
        mask = em.cast(named["attention_mask"], dtype, hint)
        keep = em.add("Greater", [mask, em.const(0.5, f"{hint}/half", dtype)], f"{hint}/keep",
                      np.dtype(bool))
        keep = em.add("Unsqueeze", [keep, em.ints([1], f"{hint}/head_axis")], f"{hint}/keep4",
                      np.dtype(bool))
    if attrs.get("causal"):
        causal = _causal_keep(em, query, value, hint)
        keep = causal if keep is None else em.add("And", [keep, causal], f"{hint}/keep_all",
                                                  np.dtype(bool))
    if keep is not None:
        scores = em.add("Where", [keep, scores, em.const(MASKED_SCORE, f"{hint}/masked",
                                                         dtype)], f"{hint}/masked_scores", dtype)
    probs = em.add("Softmax", [scores], f"{hint}/probs", dtype, axis=-1)
    ctx = em.add("MatMul", [probs, v], f"{hint}/context", dtype)
    ctx = em.add("Transpose", [ctx], f"{hint}/context_bthd", dtype, perm=[0, 2, 1, 3])
    ctx = em.add("Reshape", [ctx, em.ints([0, 0, -1], f"{hint}/merge")], f"{hint}/merged",
                 dtype)
    out = em.add("MatMul", [ctx, em.weight(params["output_kernel"], lambda w: w.reshape(
        -1, w.shape[-1]), "2d")], f"{hint}/output", dtype)
    if "output_bias" in params:
        out = em.add("Add", [out, em.weight(params["output_bias"])], hint, dtype)
    return out



@_emits("weight_value")
def _emit_weight_value(em, node, ins, params, attrs, hint, dtype):
    return em.weight(params[attrs["role"]])
