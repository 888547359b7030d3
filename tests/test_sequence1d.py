"""Conv1D, the 1-D poolings, UpSampling1D, ZeroPadding1D, Cropping1D; Dense and
LayerNormalization on ``(N, T, F)``: against NumPy written from Keras' formulas, against Keras
with the same weights, and over symbolic lengths (one plan for every ``T``)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import (
    CompilerError,
    Input,
    Model,
    Sequential,
    ShapeError,
    TensorSpec,
    compile,
    layers,
)
from compiler.reference import run_reference

os.environ.setdefault("KERAS_BACKEND", "torch")
RTOL, ATOL = 1e-4, 1e-5


def _normal(seed, *shape) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def numpy_conv1d(x, kernel, bias, strides=1, padding="valid", dilation=1, groups=1):
    """Keras Conv1D written out: pad (TF 'same': odd cell at the end; 'causal': all on the left),
    then ``y[t] = sum_j x[t*s + j*d] @ kernel[j]`` per group."""
    n, length, _ = x.shape
    k, cg, filters = kernel.shape
    span = dilation * (k - 1) + 1
    if padding == "valid":
        out_len, left = (length - span) // strides + 1, 0
    elif padding == "same":
        out_len = -(-length // strides)
        left = max((out_len - 1) * strides + span - length, 0) // 2
    else:
        out_len, left = -(-length // strides), dilation * (k - 1)
    og = filters // groups
    y = np.zeros((n, out_len, filters))
    for t in range(out_len):
        for j in range(k):
            src = t * strides + j * dilation - left
            if 0 <= src < length:
                for g in range(groups):
                    y[:, t, g * og:(g + 1) * og] += (x[:, src, g * cg:(g + 1) * cg]
                                                     @ kernel[j, :, g * og:(g + 1) * og])
    return y + (0 if bias is None else bias)


def numpy_pool1d(x, pool, strides, padding, kind):
    n, length, c = x.shape
    if padding == "valid":
        out_len, left = (length - pool) // strides + 1, 0
    else:
        out_len = -(-length // strides)
        left = max((out_len - 1) * strides + pool - length, 0) // 2
    y = np.zeros((n, out_len, c))
    for t in range(out_len):
        lo, hi = max(t * strides - left, 0), min(t * strides - left + pool, length)
        window = x[:, lo:hi]
        y[:, t] = window.max(axis=1) if kind == "max" else window.mean(axis=1)
    return y


# -- Conv1D ------------------------------------------------------------------------------------
CONV_CASES = [dict(), dict(padding="same"), dict(padding="same", strides=2),
              dict(padding="causal"), dict(padding="causal", dilation_rate=2),
              dict(padding="valid", dilation_rate=3), dict(groups=2, padding="same"),
              dict(strides=3), dict(use_bias=False)]


@pytest.mark.parametrize("kw", CONV_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in
                                                                   kw.items()) or "default")
def test_conv1d_matches_numpy(kw):
    x = _normal(0, 2, 13, 4)
    conv = layers.Conv1D(6, 3, **kw)
    assert conv.get_weights() == []
    y = conv(x)
    weights = conv.get_weights()
    groups = kw.get("groups", 1)
    assert weights[0].shape == (3, 4 // groups, 6)
    expected = numpy_conv1d(x, weights[0], weights[1] if len(weights) > 1 else None,
                            kw.get("strides", 1), kw.get("padding", "valid"),
                            kw.get("dilation_rate", 1), groups)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)


def test_conv1d_causal_output_never_sees_the_future():
    conv = layers.Conv1D(3, 4, padding="causal", dilation_rate=2)
    x = _normal(1, 1, 20, 2)
    y = conv(x)
    x2 = x.copy()
    x2[:, 11:] = 100.0  # changing steps >= 11 leaves outputs 0..10 alone
    np.testing.assert_array_equal(conv(x2)[:, :11], y[:, :11])


@settings(max_examples=15)
@given(n=st.integers(1, 3), length=st.integers(1, 30), c=st.integers(1, 5),
       filters=st.integers(1, 6), k=st.integers(1, 5), strides=st.integers(1, 3),
       dilation=st.integers(1, 3), padding=st.sampled_from(["valid", "same", "causal"]),
       activation=st.sampled_from([None, "relu", "tanh"]), seed=st.integers(0, 100))
def test_conv1d_property(n, length, c, filters, k, strides, dilation, padding, activation, seed):
    if strides > 1:
        dilation = 1
    if padding == "valid" and length < dilation * (k - 1) + 1:
        length = dilation * (k - 1) + 1
    x = _normal(seed, n, length, c)
    conv = layers.Conv1D(filters, k, strides=strides, dilation_rate=dilation, padding=padding,
                         activation=activation)
    y = conv(x)
    kernel, bias = conv.get_weights()
    expected = numpy_conv1d(x.astype(np.float64), kernel, bias, strides, padding, dilation)
    if activation == "relu":
        expected = np.maximum(expected, 0)
    elif activation == "tanh":
        expected = np.tanh(expected)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)


# -- pooling, resizing -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool,strides,padding", [(2, None, "valid"), (3, 2, "valid"),
                                                  (3, 2, "same"), (4, 1, "same"),
                                                  (2, 3, "same")])
def test_pooling1d_matches_numpy(kind, pool, strides, padding):
    cls = layers.MaxPooling1D if kind == "max" else layers.AveragePooling1D
    x = _normal(2, 2, 11, 3)
    y = cls(pool, strides=strides, padding=padding)(x)
    expected = numpy_pool1d(x, pool, strides or pool, padding, kind)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)


def test_resizing_layers_match_numpy():
    x = _normal(3, 2, 7, 3)
    np.testing.assert_array_equal(layers.UpSampling1D(3)(x), np.repeat(x, 3, axis=1))
    np.testing.assert_array_equal(layers.ZeroPadding1D((2, 1))(x),
                                  np.pad(x, ((0, 0), (2, 1), (0, 0))))
    np.testing.assert_array_equal(layers.ZeroPadding1D(1)(x), np.pad(x, ((0, 0), (1, 1), (0, 0))))
    np.testing.assert_array_equal(layers.Cropping1D((2, 3))(x), x[:, 2:4])
    np.testing.assert_array_equal(layers.Cropping1D(1)(x), x[:, 1:6])


# -- against Keras -----------------------------------------------------------------------------
def _keras():
    return pytest.importorskip("keras")


@pytest.mark.parametrize("kw", [dict(padding="same", strides=2), dict(padding="causal",
                                                                       dilation_rate=2),
                                dict(groups=2, activation="relu")])
def test_conv1d_matches_keras_with_the_same_weights(kw):
    keras = _keras()
    x = _normal(4, 2, 12, 4)
    ours = layers.Conv1D(6, 3, **kw)
    y = ours(x)
    ref = keras.layers.Conv1D(6, 3, **kw)
    ref.build(x.shape)
    ref.set_weights(ours.get_weights())
    np.testing.assert_allclose(y, keras.ops.convert_to_numpy(ref(x)), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name,kw", [("MaxPooling1D", dict(pool_size=3, strides=2,
                                                            padding="same")),
                                      ("AveragePooling1D", dict(pool_size=3, strides=2,
                                                                padding="same")),
                                      ("AveragePooling1D", dict(pool_size=2)),
                                      ("UpSampling1D", dict(size=2)),
                                      ("ZeroPadding1D", dict(padding=(1, 3))),
                                      ("Cropping1D", dict(cropping=(2, 1)))])
def test_layers_match_keras(name, kw):
    keras = _keras()
    x = _normal(5, 2, 9, 3)
    expected = keras.ops.convert_to_numpy(getattr(keras.layers, name)(**kw)(x))
    np.testing.assert_allclose(getattr(layers, name)(**kw)(x), expected, rtol=RTOL, atol=ATOL)


# -- symbolic lengths --------------------------------------------------------------------------
def test_one_plan_serves_every_length():
    net = Sequential([layers.Conv1D(8, 3, padding="causal", activation="relu"),
                      layers.MaxPooling1D(2, padding="same"), layers.Conv1D(8, 5, strides=2,
                                                                            padding="same"),
                      layers.UpSampling1D(2), layers.ZeroPadding1D((1, 2)),
                      layers.Cropping1D((2, 1)), layers.AveragePooling1D(3, strides=1),
                      layers.LayerNormalization(), layers.Dense(4)])
    plan = compile(net, TensorSpec((None, None, 3)))
    assert plan.graph.nodes[plan.graph.graph["outputs"][0]]["type"].shape[2] == 4
    for length in (5, 6, 17, 64):
        x = _normal(length, 2, length, 3)
        np.testing.assert_allclose(plan(x), run_reference(plan.graph, x), rtol=RTOL, atol=ATOL)


def test_dense_and_layer_normalization_work_on_sequences():
    x = _normal(6, 2, 5, 4)
    dense = layers.Dense(3, activation="tanh")
    kernel_out = dense(x)
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(kernel_out, np.tanh(x @ kernel + bias), rtol=RTOL, atol=ATOL)
    norm = layers.LayerNormalization(epsilon=1e-5)
    mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    np.testing.assert_allclose(norm(x), (x - mean) / np.sqrt(var + 1e-5), rtol=RTOL, atol=ATOL)


# -- errors ------------------------------------------------------------------------------------
def test_channel_mismatch_after_first_call_names_the_layer():
    conv = layers.Conv1D(4, 3, name="conv_a")
    net = Sequential([conv])
    net(_normal(7, 1, 8, 5))
    with pytest.raises(ShapeError, match=r"conv_a.*kernel.*\(3, 5, 4\)"):
        net(_normal(7, 1, 8, 6))
    assert conv.get_weights()[0].shape == (3, 5, 4)


def test_too_short_inputs_are_shape_errors():
    with pytest.raises(ShapeError, match=r"conv_b.*axis 1.*expected at least 5, received 3"):
        Sequential([layers.Conv1D(2, 3, dilation_rate=2, name="conv_b")])(_normal(8, 1, 3, 2))
    with pytest.raises(ShapeError, match=r"crop.*Cropping1D"):
        Sequential([layers.Cropping1D((2, 2), name="crop")])(_normal(8, 1, 4, 2))
    plan = compile(Sequential([layers.Cropping1D((2, 2), name="crop2")]),
                   TensorSpec((None, None, 2)))
    with pytest.raises(ShapeError, match=r"crop2"):
        plan(_normal(8, 1, 3, 2))
    with pytest.raises(ShapeError, match=r"rank 3"):
        Sequential([layers.Conv1D(2, 3)])(_normal(8, 4, 6))


@pytest.mark.parametrize("make,match", [
    (lambda: layers.Conv1D(4, 0), "kernel_size"),
    (lambda: layers.Conv1D(4, 3, padding="full"), "padding"),
    (lambda: layers.Conv1D(4, 3, strides=2, dilation_rate=2), "cannot both"),
    (lambda: layers.Conv1D(5, 3, groups=2), "multiple of groups"),
    (lambda: layers.MaxPooling1D(2, padding="causal"), "padding"),
    (lambda: layers.ZeroPadding1D(-1), "padding"),
    (lambda: layers.Cropping1D((1, 2, 3)), "cropping"),
    (lambda: layers.UpSampling1D(0), "size"),
])
def test_bad_configurations_are_refused(make, match):
    with pytest.raises(CompilerError, match=match):
        make()


def test_functional_conv1d_keeps_length_symbolic():
    x = Input((None, 3))
    y = layers.Conv1D(4, 3, strides=2, padding="same")(x)
    assert str(y.shape[1]) != "None" and y.shape[2] == 4
    model = Model(x, y)
    assert model(_normal(9, 2, 9, 3)).shape == (2, 5, 4)


# -- TimeDistributed ---------------------------------------------------------------------------
def test_time_distributed_dense_matches_keras_and_shares_the_inner_weights():
    keras = _keras()
    x = _normal(10, 2, 5, 6)
    inner = layers.Dense(4, activation="relu")
    net = Sequential([layers.TimeDistributed(inner), layers.TimeDistributed(layers.Dense(3))])
    assert inner.get_weights() == [] and net.layers[0].get_weights() == []
    y = net(x)
    assert [w.shape for w in net.get_weights()] == [(6, 4), (4,), (4, 3), (3,)]
    assert all(np.array_equal(a, b) for a, b in zip(inner.get_weights(), net.get_weights()))
    ref = keras.Sequential([keras.layers.TimeDistributed(keras.layers.Dense(4, activation="relu")),
                            keras.layers.TimeDistributed(keras.layers.Dense(3))])
    ref.build(x.shape)
    ref.set_weights(net.get_weights())
    np.testing.assert_allclose(y, keras.ops.convert_to_numpy(ref(x)), rtol=RTOL, atol=ATOL)


def test_time_distributed_conv2d_over_frames_matches_numpy_per_frame():
    frames = _normal(11, 2, 3, 7, 7, 2)
    conv = layers.Conv2D(4, 3, padding="same")
    x = Input((None, 7, 7, 2))
    model = Model(x, layers.TimeDistributed(conv)(x))
    plan = compile(model, TensorSpec((None, None, 7, 7, 2)))
    for steps in (1, 3, 4):
        clip = _normal(steps, 2, steps, 7, 7, 2)
        y = plan(clip)
        assert y.shape == (2, steps, 7, 7, 4)
        for t in range(steps):
            np.testing.assert_allclose(y[:, t], conv(clip[:, t]), rtol=RTOL, atol=ATOL)
    assert model(frames).shape == (2, 3, 7, 7, 4)


def test_time_distributed_errors_name_the_layer():
    with pytest.raises(CompilerError, match="Layer instance"):
        layers.TimeDistributed("dense")
    x = Input((4,))
    with pytest.raises(ShapeError, match=r"td.*rank >= 3"):
        layers.TimeDistributed(layers.Dense(2), name="td")(x)
    net = Sequential([layers.TimeDistributed(layers.Dense(2), name="td2")])
    net(_normal(12, 1, 3, 4))
    with pytest.raises(ShapeError, match=r"td2"):
        net(_normal(12, 1, 3, 5))


def test_sequence_layers_round_trip_through_the_model_config():
    net = Sequential([layers.Conv1D(4, 3, padding="causal", dilation_rate=2, groups=1),
                      layers.MaxPooling1D(2, padding="same"), layers.UpSampling1D(2),
                      layers.ZeroPadding1D((1, 2)), layers.Cropping1D((2, 1)),
                      layers.AveragePooling1D(3, strides=1),
                      layers.TimeDistributed(layers.Dense(5, activation="relu"))])
    x = _normal(13, 2, 9, 3)
    y = net(x)
    clone = Sequential.from_config(net.to_config())
    clone(x)
    clone.set_weights(net.get_weights())
    np.testing.assert_allclose(clone(x), y, rtol=RTOL, atol=ATOL)
