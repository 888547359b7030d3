"""A functional ``Model`` (or ``Sequential``) whose ``Input`` leaves the feature width ``None``
defers its weights to the first call, as Keras does; the sequence length stays symbolic."""

from __future__ import annotations

import numpy as np
import pytest

from compiler import Input, Model, Sequential, layers
from compiler.errors import ShapeError


def _lstm_numpy(x, kernel, rkernel, bias):
    n, t, _ = x.shape
    u = rkernel.shape[0]
    h, c = np.zeros((n, u)), np.zeros((n, u))
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    for step in range(t):
        z = x[:, step] @ kernel + h @ rkernel + bias
        i, f, g, o = sig(z[:, :u]), sig(z[:, u:2 * u]), np.tanh(z[:, 2 * u:3 * u]), \
            sig(z[:, 3 * u:])
        c = f * c + i * g
        h = o * np.tanh(c)
    return h


def test_open_width_defers_to_the_first_call_and_keeps_the_length_symbolic():
    x = Input((None, None))
    model = Model(x, layers.Dense(3)(layers.LSTM(4)(x)))
    assert model.count_params() is None
    assert "not initialized" in model.summary(print_fn=lambda s: None)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 7, 5)).astype(np.float32)
    y = model(a)
    kernel, rkernel, bias, dk, db = model.get_weights()
    assert kernel.shape == (5, 16)
    np.testing.assert_allclose(y, _lstm_numpy(a.astype(np.float64), kernel, rkernel, bias) @ dk
                               + db, rtol=1e-4, atol=1e-5)
    assert model._built_specs[0].shape == (None, None, 5)  # the length stays open
    b = rng.normal(size=(3, 11, 5)).astype(np.float32)
    np.testing.assert_allclose(model(b), _lstm_numpy(b.astype(np.float64), kernel, rkernel, bias)
                               @ dk + db, rtol=1e-4, atol=1e-5)
    with pytest.raises(ShapeError, match=r"lstm.*kernel axis 0: expected 5, received 6"):
        model(np.zeros((2, 4, 6), np.float32))


def test_sequential_with_open_width_and_a_failed_call_leaves_it_unbuilt():
    net = Sequential([Input((None, None)), layers.Conv1D(4, 3, padding="causal"),
                      layers.GlobalAveragePooling1D()])
    assert net.count_params() is None
    with pytest.raises(Exception):
        net(np.zeros((2, 5), np.float32))  # rank 2: not a sequence
    assert net.count_params() is None
    x = np.random.default_rng(1).normal(size=(2, 6, 3)).astype(np.float32)
    y = net(x)
    kernel, bias = net.get_weights()
    pad = np.concatenate([np.zeros((2, 2, 3), np.float32), x], axis=1)
    conv = sum(pad[:, k:k + 6] @ kernel[k] for k in range(3)) + bias
    np.testing.assert_allclose(y, conv.mean(axis=1), rtol=1e-5, atol=1e-5)


def test_token_ids_with_open_length_build_at_once():
    ids = Input((None,), dtype="int32")
    model = Model(ids, layers.GlobalAveragePooling1D()(
        layers.Embedding(20, 6, mask_zero=True)(ids)))
    assert model.count_params() == 120  # the width comes from the Embedding, not the data
