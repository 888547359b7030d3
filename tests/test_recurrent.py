"""SimpleRNN / LSTM / GRU / Bidirectional: the compiled plan against the NumPy reference
executor, a hand-written NumPy LSTM, Keras 3 (same weights) and PyTorch ``nn.LSTM``/``nn.GRU``
(weights converted between layouts); masking; initial and returned states; errors; pickling."""

import os
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import Input, Model, Sequential, ShapeError, TensorSpec, compile, layers
from compiler.errors import CompilerError
from compiler.reference import run_reference

os.environ.setdefault("KERAS_BACKEND", "torch")

RNNS = {"SimpleRNN": layers.SimpleRNN, "LSTM": layers.LSTM, "GRU": layers.GRU}


def _randomize(model, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, scale, w.shape) for w in model.get_weights()])


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def numpy_lstm(x, kernel, recurrent, bias):
    """Keras' LSTM formulas, written out on their own (no shared code with the op)."""
    n, t, _ = x.shape
    u = recurrent.shape[0]
    h, c = np.zeros((n, u)), np.zeros((n, u))
    outs = []
    for s in range(t):
        z = x[:, s] @ kernel + h @ recurrent + bias
        i, f, g, o = (z[:, k * u:(k + 1) * u] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        outs.append(h)
    return np.stack(outs, 1), h, c


def test_lstm_matches_handwritten_numpy():
    net = Sequential([Input((None, 6)), layers.LSTM(5, return_sequences=True)])
    _randomize(net, 1)
    x = np.random.default_rng(2).normal(size=(3, 7, 6)).astype(np.float32)
    seq, _, _ = numpy_lstm(x.astype(np.float64), *net.get_weights())
    np.testing.assert_allclose(net(x), seq, rtol=1e-4, atol=1e-5)


def test_weight_layouts_and_deferred_input_size():
    lstm, gru, rnn = layers.LSTM(4), layers.GRU(4), layers.SimpleRNN(4)
    gru_before = layers.GRU(4, reset_after=False)
    assert lstm.get_weights() == []
    for layer in (lstm, gru, rnn, gru_before):
        Sequential([Input((None, 3)), layer])
    assert [w.shape for w in lstm.get_weights()] == [(3, 16), (4, 16), (16,)]
    assert [w.shape for w in gru.get_weights()] == [(3, 12), (4, 12), (2, 12)]
    assert [w.shape for w in gru_before.get_weights()] == [(3, 12), (4, 12), (12,)]
    assert [w.shape for w in rnn.get_weights()] == [(3, 4), (4, 4), (4,)]
    bias = lstm.get_weights()[2]
    np.testing.assert_array_equal(bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])
    rk = lstm.get_weights()[1]  # orthogonal
    np.testing.assert_allclose(rk @ rk.T, np.eye(4), atol=1e-5)  # orthonormal rows


# -- hypothesis: the compiled kernel against the reference executor -------------------------------
@settings(max_examples=12)
@given(kind=st.sampled_from(sorted(RNNS)), n=st.integers(1, 4), t=st.integers(1, 6),
       f=st.integers(1, 5), u=st.integers(1, 6), seqs=st.booleans(), back=st.booleans(),
       bias=st.booleans(), reset_after=st.booleans(), masked=st.booleans())
def test_kernel_matches_reference(kind, n, t, f, u, seqs, back, bias, reset_after, masked):
    extra = {"reset_after": reset_after} if kind == "GRU" else {}
    layer = RNNS[kind](u, return_sequences=seqs, go_backwards=back, use_bias=bias, **extra)
    stack = [Input((None, f))] + ([layers.Masking(0.0)] if masked else []) + [layer]
    net = Sequential(stack)
    _randomize(net, n * 100 + t)
    x = np.random.default_rng(t).normal(size=(n, t, f))
    if masked:
        x[0, t // 2:] = 0.0
    plan = compile(net, TensorSpec((None, None, f)))
    np.testing.assert_allclose(plan(x), run_reference(plan.graph, x), rtol=2e-4, atol=2e-5)


def test_one_plan_for_every_length_and_batch():
    net = Sequential([layers.GRU(7, return_sequences=True)])
    plan = compile(net, TensorSpec((None, None, 3)))
    for n, t in ((1, 1), (4, 9), (2, 30)):
        x = np.random.default_rng(t).normal(size=(n, t, 3)).astype(np.float32)
        y = plan(x)
        assert y.shape == (n, t, 7)
        np.testing.assert_allclose(y, run_reference(plan.graph, x), rtol=1e-4, atol=1e-5)


def test_float64_model():
    net = Sequential([Input((None, 3), dtype="float64"), layers.LSTM(4)])
    _randomize(net)
    x = np.random.default_rng(0).normal(size=(2, 5, 3))
    seq, h, _ = numpy_lstm(x, *net.get_weights())
    np.testing.assert_allclose(net(x), h, rtol=1e-10)


# -- Keras 3 -------------------------------------------------------------------------------------
keras = pytest.importorskip("keras")


def _keras_model(build, shape):
    inp = keras.Input(shape)
    return keras.Model(inp, build(inp))


def _keras_out(model, x):
    y = model.predict(x, verbose=0)
    return [np.asarray(v) for v in y] if isinstance(y, (list, tuple)) else np.asarray(y)


@pytest.mark.parametrize("kind", sorted(RNNS))
@pytest.mark.parametrize("flags", [{}, {"return_sequences": True}, {"go_backwards": True},
                                   {"return_sequences": True, "go_backwards": True,
                                    "use_bias": False}])
def test_matches_keras(kind, flags):
    extra = {} if kind == "SimpleRNN" else {"recurrent_activation": "sigmoid"}
    ours = Sequential([Input((None, 4)), RNNS[kind](5, **flags, **extra)])
    _randomize(ours, 3)
    theirs = _keras_model(lambda i: getattr(keras.layers, kind)(5, **flags, **extra)(i),
                          (None, 4))
    theirs.set_weights(ours.get_weights())
    x = np.random.default_rng(4).normal(size=(3, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(x), _keras_out(theirs, x), rtol=1e-4, atol=1e-5)


def test_gru_reset_before_matches_keras():
    ours = Sequential([Input((None, 4)), layers.GRU(5, reset_after=False,
                                                    return_sequences=True)])
    _randomize(ours, 5)
    theirs = _keras_model(lambda i: keras.layers.GRU(5, reset_after=False,
                                                     return_sequences=True)(i), (None, 4))
    theirs.set_weights(ours.get_weights())
    x = np.random.default_rng(6).normal(size=(2, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(x), _keras_out(theirs, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(RNNS))
@pytest.mark.parametrize("seqs", [False, True])
def test_masking_matches_keras(kind, seqs):
    """Masked steps are skipped: state carried through, output carried (Keras semantics)."""
    def build(lib):
        inp = lib.Input((None,))
        e = lib.layers.Embedding(12, 4, mask_zero=True)(inp)
        return lib.Model(inp, getattr(lib.layers, kind)(6, return_sequences=seqs)(e))

    ours, theirs = _ours_and_keras(build, 7)
    x = np.random.default_rng(8).integers(1, 12, (4, 7))
    x[0, 3:] = 0  # post-padding
    x[1, :2] = 0  # pre-padding
    x[2, 4] = 0   # a hole
    np.testing.assert_allclose(ours(x), _keras_out(theirs, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("seqs", [False, True])
def test_bidirectional_masked_matches_keras(merge_mode, seqs):
    def build(lib):
        inp = lib.Input((None,))
        e = lib.layers.Embedding(12, 4, mask_zero=True)(inp)
        y = lib.layers.Bidirectional(lib.layers.LSTM(3, return_sequences=seqs),
                                     merge_mode=merge_mode)(e)
        if seqs:
            y = lib.layers.GlobalAveragePooling1D()(y)
        return lib.Model(inp, y)

    ours, theirs = _ours_and_keras(build, 9)
    x = np.random.default_rng(10).integers(1, 12, (3, 6))
    x[0, 2:] = 0
    x[2, 5] = 0
    np.testing.assert_allclose(ours(x), _keras_out(theirs, x), rtol=1e-4, atol=1e-5)


def _ours_and_keras(build, seed: int):
    """``build(lib)`` for deferc and Keras, ours randomized and Keras given the same weights."""
    import compiler

    ours, theirs = build(compiler), build(keras)
    _randomize(ours, seed)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def _assert_outputs_close(got, want, count: int) -> None:
    assert len(got) == len(want) == count
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("states", [False, True])
def test_bidirectional_merge_none_matches_keras(states):
    def build(lib):
        inp = lib.Input((None,))
        e = lib.layers.Embedding(12, 4, mask_zero=True)(inp)
        outs = lib.layers.Bidirectional(lib.layers.LSTM(3, return_sequences=True,
                                                        return_state=states),
                                        merge_mode=None)(e)
        return lib.Model(inp, list(outs))

    ours, theirs = _ours_and_keras(build, 25)
    x = np.random.default_rng(26).integers(1, 12, (3, 6))
    x[0, 2:] = 0
    got, want = ours(x), _keras_out(theirs, x)
    _assert_outputs_close(got, want, (6 if states else 2))


def test_masking_layer_matches_keras():
    def build(lib):
        inp = lib.Input((None, 3))
        y = lib.layers.Masking(mask_value=-1.0)(inp)
        y = lib.layers.GRU(4, return_sequences=True)(y)
        return lib.Model(inp, lib.layers.GlobalAveragePooling1D()(y))

    ours, theirs = _ours_and_keras(build, 11)
    x = np.random.default_rng(12).normal(size=(3, 5, 3)).astype(np.float32)
    x[0, 3:] = -1.0
    x[1, 0] = -1.0
    np.testing.assert_allclose(ours(x), _keras_out(theirs, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_initial_and_returned_states_match_keras(kind):
    k = 2 if kind == "LSTM" else 1

    def build(lib):
        inp = lib.Input((None, 3))
        states = [lib.Input((4,)) for _ in range(k)]
        outs = getattr(lib.layers, kind)(4, return_sequences=True, return_state=True)(
            inp, initial_state=states)
        return lib.Model([inp] + states, outs)

    ours, theirs = _ours_and_keras(build, 13)
    rng = np.random.default_rng(14)
    args = [rng.normal(size=(2, 5, 3)).astype(np.float32)] + \
        [rng.normal(size=(2, 4)).astype(np.float32) for _ in range(k)]
    got, want = ours(*args), _keras_out(theirs, args)
    _assert_outputs_close(got, want, 1 + k)


@pytest.mark.parametrize("kind", sorted(RNNS))
@pytest.mark.parametrize("seqs,backwards", [(False, False), (True, False), (True, True)])
def test_masked_return_state_matches_keras_from_one_recurrence(kind, seqs, backwards):
    """Every output of a ``return_state`` call comes from one recurrent node (no rerun)."""
    def build(lib):
        inp = lib.Input((None,))
        e = lib.layers.Embedding(12, 4, mask_zero=True)(inp)
        outs = getattr(lib.layers, kind)(5, return_sequences=seqs, return_state=True,
                                         go_backwards=backwards)(e)
        return lib.Model(inp, list(outs))

    ours, theirs = _ours_and_keras(build, 31)
    x = np.random.default_rng(32).integers(1, 12, (3, 6))
    x[0, 3:] = 0
    x[2, 1] = 0
    got, want = ours(x), _keras_out(theirs, x)
    _assert_outputs_close(got, want, 1 + (2 if kind == "LSTM" else 1))
    plan = compile(ours, TensorSpec((None, None), "int32"))
    ops = [plan.graph.nodes[n]["op"] for n in plan.graph]
    assert ops.count(RNNS[kind].op) == 1, ops


def test_bidirectional_return_state_layout():
    inp = Input((None, 3))
    outs = layers.Bidirectional(layers.LSTM(4, return_state=True))(inp)
    assert len(outs) == 5
    model = Model(inp, outs)
    _randomize(model, 15)
    x = np.random.default_rng(16).normal(size=(2, 5, 3)).astype(np.float32)
    y, fh, fc, bh, bc = model(x)
    np.testing.assert_allclose(y, np.concatenate([fh, bh], -1), rtol=1e-6)
    w = model.get_weights()
    _, h, c = numpy_lstm(x.astype(np.float64), *w[:3])
    np.testing.assert_allclose(fh, h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fc, c, rtol=1e-4, atol=1e-5)
    _, h, c = numpy_lstm(x[:, ::-1].astype(np.float64), *w[3:])
    np.testing.assert_allclose(bh, h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bc, c, rtol=1e-4, atol=1e-5)


# -- PyTorch -------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")


def _torch_gate_order(w, u, order):
    return np.concatenate([w[..., k * u:(k + 1) * u] for k in order], axis=-1)


def test_lstm_matches_torch():
    u = 6
    ours = Sequential([Input((None, 5)), layers.LSTM(u, return_sequences=True)])
    _randomize(ours, 17)
    kernel, recurrent, bias = ours.get_weights()
    ref = torch.nn.LSTM(5, u, batch_first=True)
    with torch.no_grad():  # torch gates i, f, g, o == Keras i, f, c, o
        ref.weight_ih_l0.copy_(torch.from_numpy(kernel.T.copy()))
        ref.weight_hh_l0.copy_(torch.from_numpy(recurrent.T.copy()))
        ref.bias_ih_l0.copy_(torch.from_numpy(bias))
        ref.bias_hh_l0.zero_()
    x = np.random.default_rng(18).normal(size=(4, 9, 5)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(ours(x), want, rtol=1e-4, atol=1e-5)


def test_gru_matches_torch():
    u = 6
    ours = Sequential([Input((None, 5)), layers.GRU(u, return_sequences=True)])
    _randomize(ours, 19)
    kernel, recurrent, bias = ours.get_weights()
    order = (1, 0, 2)  # torch r, z, n  <-  Keras z, r, h
    ref = torch.nn.GRU(5, u, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.from_numpy(_torch_gate_order(kernel, u, order).T.copy()))
        ref.weight_hh_l0.copy_(torch.from_numpy(_torch_gate_order(recurrent, u, order).T.copy()))
        ref.bias_ih_l0.copy_(torch.from_numpy(_torch_gate_order(bias[0], u, order)))
        ref.bias_hh_l0.copy_(torch.from_numpy(_torch_gate_order(bias[1], u, order)))
    x = np.random.default_rng(20).normal(size=(4, 9, 5)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(ours(x), want, rtol=1e-4, atol=1e-5)


# -- errors, configuration, pickling -------------------------------------------------------------
def test_feature_size_mismatch_after_first_call_names_the_layer():
    lstm = layers.LSTM(4, name="encoder")
    net = Sequential([lstm])
    net(np.zeros((2, 3, 5), np.float32))
    with pytest.raises(ShapeError, match=r"encoder.*expected 5, received 7"):
        net(np.zeros((2, 3, 7), np.float32))
    with pytest.raises(ShapeError, match="encoder"):
        lstm(Input((None, 6)))


def test_bad_configuration_and_calls():
    with pytest.raises(CompilerError, match="units"):
        layers.LSTM(0)
    with pytest.raises(CompilerError, match="stateful"):
        layers.GRU(3, stateful=True)
    with pytest.raises(CompilerError, match="merge_mode"):
        layers.Bidirectional(layers.LSTM(3), merge_mode="max")
    with pytest.raises(ShapeError, match=r"LSTM expects rank 3"):
        layers.LSTM(3)(Input((4,)))
    with pytest.raises(ShapeError, match=r"initial state 0 axis 1 \(units\)"):
        layers.GRU(3)(Input((None, 2)), initial_state=[Input((4,))])
    with pytest.raises(ShapeError, match="initial state"):
        layers.LSTM(3)(Input((None, 2)), initial_state=[Input((3,))])


def test_eager_call_and_unroll_ignored():
    layer = layers.SimpleRNN(3, unroll=True, return_state=True)
    out, h = layer(np.ones((2, 4, 2), np.float32))
    np.testing.assert_array_equal(out, h)
    assert out.shape == (2, 3)


def test_pickled_plan_runs_the_same():
    inp = Input((None,))
    e = layers.Embedding(30, 8, mask_zero=True)(inp)
    y = layers.Bidirectional(layers.GRU(5, return_sequences=True))(e)
    y = layers.GlobalAveragePooling1D()(y)
    model = Model(inp, layers.Dense(2)(y))
    plan = compile(model, TensorSpec((None, None)))
    x = np.random.default_rng(21).integers(0, 30, (3, 8)).astype(np.float32)
    x[0, 5:] = 0
    again = pickle.loads(pickle.dumps(plan))
    np.testing.assert_array_equal(again(x), plan(x))
    np.testing.assert_allclose(plan(x), run_reference(plan.graph, x), rtol=1e-4, atol=1e-5)


def test_config_round_trip_keeps_outputs():
    net = Sequential([Input((None,)), layers.Embedding(40, 6, mask_zero=True),
                      layers.Bidirectional(layers.GRU(4, reset_after=False), merge_mode="ave"),
                      layers.Dense(3)])
    _randomize(net, 22)
    again = Sequential.from_config(net.to_config())
    again.set_weights(net.get_weights())
    x = np.random.default_rng(23).integers(0, 40, (2, 5))
    x[1, 3:] = 0
    np.testing.assert_array_equal(again(x), net(x))
    bidir = again.layers[1]
    assert bidir.merge_mode == "ave" and not bidir.forward_layer.reset_after


def test_functional_config_round_trip_with_states():
    x, h0 = Input((None, 3)), Input((4,))
    seq, h = layers.GRU(4, return_sequences=True, return_state=True)(x, initial_state=[h0])
    model = Model([x, h0], [layers.GlobalAveragePooling1D()(seq), h])
    _randomize(model, 24)
    again = Model.from_config(model.to_config())
    again.set_weights(model.get_weights())
    rng = np.random.default_rng(25)
    args = [rng.normal(size=(2, 5, 3)).astype(np.float32),
            rng.normal(size=(2, 4)).astype(np.float32)]
    for a, b in zip(again(*args), model(*args)):
        np.testing.assert_array_equal(a, b)
