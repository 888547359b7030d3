"""ONNX export of the sequence ops: each model exported, run by ONNX Runtime and compared with
our plan at two batch sizes and two lengths, then loaded back with ``compiler.onnx.load`` (which
reads the run-time-length forms: RNN ``sequence_lens``, reversed slices, ``Range``, reshapes and
slices sized by ``Shape(x)``)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from compiler import Input, Model, Sequential, TensorSpec, compile, layers  # noqa: E402
from compiler import onnx as conx  # noqa: E402
from compiler.errors import CompilerError  # noqa: E402

RNG = np.random.default_rng(7)
CASES = ((1, 5), (3, 9))  # (batch, length)


def run_ort(proto, *arrays):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {i.name: a for i, a in zip(sess.get_inputs(), arrays)})
    return out[0] if len(out) == 1 else out


def close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale)


def floats(batch, steps, width):
    return RNG.standard_normal((batch, steps, width)).astype(np.float32)


def padded_ids(batch, steps, vocab=20):
    """Post-padded token ids: each row keeps a prefix (at least one token), zeros after."""
    ids = RNG.integers(1, vocab, size=(batch, steps)).astype(np.int32)
    for row, keep in enumerate(RNG.integers(1, steps + 1, size=batch)):
        ids[row, keep:] = 0
    ids[0, :] = np.maximum(ids[0, :], 1)  # one row without padding
    return ids


def round_trip(model, spec, make, cases=CASES, load=True):
    """Export, then ORT (and the re-imported model) equal our plan for every (batch, T)."""
    proto = conx.export(model, None, spec)
    plan = compile(model, spec)
    loaded = conx.load(proto) if load else None
    for batch, steps in cases:
        x = make(batch, steps)
        ours = plan(x)
        close(run_ort(proto, x), ours)
        if loaded is not None:
            close(loaded(x), ours)
    return proto


def op_types(proto):
    return {n.op_type for n in proto.graph.node}


# -- embedding, masks, pooling ------------------------------------------------------------------
def test_embedding_with_mask_and_masked_average_pool():
    ids = Input((None,), dtype="int32")
    h = layers.Embedding(20, 6, mask_zero=True)(ids)
    model = Model(ids, layers.Dense(3)(layers.GlobalAveragePooling1D()(h)))
    proto = round_trip(model, TensorSpec((None, None), "int32"), padded_ids)
    assert {"Gather", "Equal", "Not", "ReduceSum"} <= op_types(proto)


def test_masking_layer_and_global_max_pool():
    def make(batch, steps):
        x = floats(batch, steps, 4)
        x[:, -1] = 0.0  # a masked step
        return x
    model = Sequential([Input((None, 4)), layers.Masking(0.0), layers.GlobalMaxPooling1D()])
    round_trip(model, TensorSpec((None, None, 4)), make)


# -- Conv1D family -------------------------------------------------------------------------------
@pytest.mark.parametrize("padding,strides,dilation", [("valid", 1, 1), ("same", 1, 2),
                                                      ("causal", 2, 1), ("same", 2, 1),
                                                      ("causal", 1, 3)])
def test_conv1d(padding, strides, dilation):
    model = Sequential([Input((None, 4)), layers.Conv1D(6, 3, strides=strides, padding=padding,
                                                        dilation_rate=dilation,
                                                        activation="relu")])
    round_trip(model, TensorSpec((None, None, 4)), lambda b, t: floats(b, t + 6, 4))


def test_grouped_conv1d_pools_and_resizing_layers():
    model = Sequential([
        Input((None, 4)), layers.ZeroPadding1D((1, 2)), layers.Conv1D(6, 2, groups=2),
        layers.MaxPooling1D(2, padding="same"), layers.UpSampling1D(3),
        layers.AveragePooling1D(3, strides=2), layers.Cropping1D((1, 1)),
        layers.GlobalAveragePooling1D()])
    round_trip(model, TensorSpec((None, None, 4)), lambda b, t: floats(b, t + 8, 4))


def test_time_distributed_and_position_embedding():
    x = Input((None, 5))
    h = layers.TimeDistributed(layers.Dense(4))(x)
    h = layers.Add()([h, layers.PositionEmbedding(16)(h)])
    round_trip(Model(x, h), TensorSpec((None, None, 5)), lambda b, t: floats(b, t, 5))


def test_a_run_time_slice_we_cannot_import_is_a_clear_error():
    """A Slice whose start is a run-time length (``Shape`` of an input) is refused by node
    name at import (a negative start on a run-time length is supported: it clamps)."""
    helper, tp = onnx.helper, onnx.TensorProto
    ints = [helper.make_tensor(n, tp.INT64, [1], [v]) for n, v in
            (("ends", 2 ** 62), ("axes", 1))]
    graph = helper.make_graph(
        [helper.make_node("Shape", ["u"], ["starts"], name="len_u"),
         helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"], name="tail")], "g",
        [helper.make_tensor_value_info("x", tp.FLOAT, ["N", "T"]),
         helper.make_tensor_value_info("u", tp.FLOAT, ["U"])],
        [helper.make_tensor_value_info("y", tp.FLOAT, ["N", None])], ints)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(CompilerError, match=r"'tail' \(Slice\).*start U.*axis 1.*run time"):
        conx.load(proto)


# -- recurrent layers ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind,kwargs", [
    ("LSTM", {}), ("LSTM", {"return_sequences": True, "go_backwards": True}),
    ("GRU", {"return_sequences": True}), ("GRU", {"reset_after": False}),
    ("SimpleRNN", {"return_sequences": True, "activation": "relu"}),
    ("LSTM", {"activation": "relu", "use_bias": False})])
def test_recurrent_layers_match_onnx_rnn_ops(kind, kwargs):
    layer = getattr(layers, kind)(5, **kwargs)
    model = Sequential([Input((None, 3)), layer])
    _ = model(floats(2, 4, 3))
    # non-trivial biases (Keras initializes them to zeros; LSTM's forget gate to ones)
    model.set_weights([w + 0.1 * RNG.standard_normal(w.shape).astype(np.float32)
                       for w in model.get_weights()])
    proto = round_trip(model, TensorSpec((None, None, 3)), lambda b, t: floats(b, t, 3))
    assert {"LSTM": "LSTM", "GRU": "GRU", "SimpleRNN": "RNN"}[kind] in op_types(proto)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_masked_lstm_and_bidirectional_text_classifier(return_sequences):
    ids = Input((None,), dtype="int32")
    h = layers.Embedding(20, 6, mask_zero=True)(ids)
    h = layers.LSTM(4, return_sequences=return_sequences)(h)
    if return_sequences:
        h = layers.Bidirectional(layers.GRU(3, return_sequences=True), merge_mode="sum")(h)
        h = layers.Bidirectional(layers.LSTM(3))(h)
    model = Model(ids, layers.Dense(2)(h))
    # the masks reach the ONNX RNNs as sequence_lens, imported back as our step masks
    proto = round_trip(model, TensorSpec((None, None), "int32"), padded_ids)
    assert any(len(n.input) > 4 and n.input[4] for n in proto.graph.node
               if n.op_type in ("LSTM", "GRU"))


def test_return_state_and_initial_state():
    x = Input((None, 3))
    seq, h, c = layers.LSTM(4, return_sequences=True, return_state=True)(x)
    out = layers.GRU(4)(seq, initial_state=[h])
    model = Model(x, layers.Concatenate()([out, c]))
    round_trip(model, TensorSpec((None, None, 3)), lambda b, t: floats(b, t, 3))


def test_an_activation_onnx_rnns_lack_is_refused_by_name():
    net = Sequential([layers.SimpleRNN(4, activation="gelu", name="rnn")])
    with pytest.raises(CompilerError, match=r"'rnn'.*activation 'gelu'.*RNN"):
        conx.export(net, None, TensorSpec((None, 5, 3)))


# -- attention -----------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["self", "causal", "cross_key_mask"])
def test_multi_head_attention(form):
    q_in = Input((None, 6))
    if form == "cross_key_mask":
        v_in, k_in, m_in = Input((None, 5)), Input((None, 4)), Input((None, None))
        y = layers.MultiHeadAttention(2, 3, value_dim=4)(q_in, v_in, key=k_in,
                                                         attention_mask=m_in)
        model = Model([q_in, v_in, k_in, m_in], y)
        specs = [TensorSpec((None, None, 6)), TensorSpec((None, None, 5)),
                 TensorSpec((None, None, 4)), TensorSpec((None, None, None))]
        proto = conx.export(model, None, *specs)
        plan = compile(model, *specs)
        loaded = conx.load(proto)
        for batch, steps in CASES:
            xs = [floats(batch, steps, 6), floats(batch, steps + 2, 5),
                  floats(batch, steps + 2, 4),
                  (RNG.random((batch, steps, steps + 2)) > 0.3).astype(np.float32)]
            close(run_ort(proto, *xs), plan(*xs))
            close(loaded(xs), plan(*xs))
        return
    y = layers.MultiHeadAttention(2, 3)(q_in, q_in, use_causal_mask=form == "causal")
    model = Model(q_in, y)
    # the causal triangle comes from Range over the run-time lengths
    proto = round_trip(model, TensorSpec((None, None, 6)), lambda b, t: floats(b, t, 6))
    assert {"MatMul", "Softmax"} <= op_types(proto)


def test_transformer_block_with_padding_masks():
    ids = Input((None,), dtype="int32")
    h = layers.Embedding(20, 8, mask_zero=True)(ids)
    h = layers.Add()([h, layers.PositionEmbedding(12)(h)])
    a = layers.MultiHeadAttention(2, 4)(h, h)
    h = layers.LayerNormalization()(layers.Add()([h, a]))
    model = Model(ids, layers.Dense(3)(layers.GlobalAveragePooling1D()(h)))
    round_trip(model, TensorSpec((None, None), "int32"), padded_ids)
