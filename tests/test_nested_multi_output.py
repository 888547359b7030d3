"""A multi-output ``Model`` called as a layer: outputs unpacked as in Keras (``a, b = inner(x)``),
weights shared by key, the same inner model at two places (tying), inside functional,
subclassed and Sequential models; checked against hand-written NumPy."""

import numpy as np
import pytest

from compiler import Input, Model, Sequential, compile, layers
from compiler.errors import CompilerError
from compiler.frontend.saving import model_from_config


def _inner():
    i = Input((4,), name="i")
    h = layers.Dense(3, activation="relu", name="d")(i)
    return Model(i, [h, layers.Dense(2, name="e")(h)], name="inner")


def _np_inner(w, x):
    h = np.maximum(x @ w["inner/d/kernel"] + w["inner/d/bias"], 0)
    return h, h @ w["inner/e/kernel"] + w["inner/e/bias"]


def _data(seed, shape=(3, 4)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _by_key(model):
    return {w.name: w.numpy() for w in model.weights}


def test_outputs_unpack_and_one_inner_model_at_two_places_shares_its_weights():
    inner = _inner()
    x, y = Input((4,), name="x"), Input((4,), name="y")
    a, b = inner(x)
    c, d = inner(y)
    outer = Model([x, y], [layers.Concatenate()([a, c]), layers.Add()([b, d])], name="outer")
    xv, yv = _data(0), _data(1)
    got = outer(xv, yv)
    w = _by_key(outer)
    assert sorted(w) == ["inner/d/bias", "inner/d/kernel", "inner/e/bias", "inner/e/kernel"]
    assert len(outer.get_weights()) == 4
    (ha, hb), (hc, hd) = _np_inner(w, xv), _np_inner(w, yv)
    np.testing.assert_allclose(got[0], np.concatenate([ha, hc], -1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], hb + hd, rtol=1e-5, atol=1e-6)
    # stored weights only: prepare_dense may add prepared copies (one per shared kernel)
    ops = [d["op"] for _, d in compile(outer).graph.nodes(data=True) if not d.get("prepared")]
    # each call's body is emitted once (not once per output read), the weights once in all
    assert ops.count("dense") == 4 and ops.count("param") == 4


def test_reading_only_the_second_output_and_set_weights_through_the_outer_model():
    inner = _inner()
    x = Input((4,))
    _, b = inner(x)
    outer = Model(x, b)
    xv = _data(2)
    outer(xv)
    new = [np.full_like(a, 0.25) for a in outer.get_weights()]
    outer.set_weights(new)  # the inner model's layers hold them
    np.testing.assert_allclose(outer(xv), _np_inner(_by_key(inner), xv)[1], rtol=1e-5)
    assert inner.get_weights()[0][0, 0] == 0.25


def test_subclassed_multi_output_model_called_in_a_functional_model_builds_deferred():
    class TwoHeads(Model):
        def __init__(self):
            super().__init__(name="heads")
            self.body = layers.Dense(3, name="body")
            self.left, self.right = layers.Dense(1, name="left"), layers.Dense(2, name="right")

        def call(self, x):
            h = self.body(x)
            return self.left(h), self.right(h)

    heads = TwoHeads()
    x = Input((5,))
    left, right = heads(x)  # sizes inferred here: no build() call
    outer = Model(x, [right, left])
    xv = _data(3, (2, 5))
    got = outer(xv)
    w = _by_key(outer)
    h = xv @ w["heads/body/kernel"] + w["heads/body/bias"]
    np.testing.assert_allclose(got[0], h @ w["heads/right/kernel"] + w["heads/right/bias"],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], h @ w["heads/left/kernel"] + w["heads/left/bias"],
                               rtol=1e-5, atol=1e-6)


def test_multi_output_model_inside_a_subclassed_models_call():
    inner = _inner()

    class Outer(Model):
        def __init__(self):
            super().__init__(name="outer")
            self.inner = inner
            self.head = layers.Dense(1, name="head")

        def call(self, x):
            h, e = self.inner(x)
            return self.head(layers.Concatenate()([h, e]))

    net = Outer()
    xv = _data(4)
    got = net(xv)
    w = _by_key(net)
    h, e = _np_inner(w, xv)
    want = np.concatenate([h, e], -1) @ w["head/kernel"] + w["head/bias"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_in_a_sequential_through_a_single_output_wrapper_and_refused_directly():
    inner = _inner()
    i = Input((4,))
    h, e = inner(i)
    wrapper = Model(i, layers.Concatenate()([h, e]), name="wrapper")
    net = Sequential([wrapper, layers.Dense(1, name="out")])
    xv = _data(5)
    w = _by_key(net)
    assert "wrapper/inner/d/kernel" in w
    got = net(xv)
    w = _by_key(net)
    hh, ee = _np_inner({k.removeprefix("wrapper/"): v for k, v in w.items()}, xv)
    np.testing.assert_allclose(got, np.concatenate([hh, ee], -1) @ w["out/kernel"]
                               + w["out/bias"], rtol=1e-5, atol=1e-6)
    with pytest.raises(CompilerError, match=r"Sequential: model 'inner' has several outputs"):
        Sequential([_inner()])


def test_config_round_trip_keeps_which_output_each_call_reads():
    inner = _inner()
    x = Input((4,), name="x")
    a, b = inner(x)
    outer = Model(x, [b, layers.Dense(1, name="top")(a)], name="outer")
    clone = model_from_config(outer.to_config())
    clone.set_weights(outer.get_weights())
    xv = _data(6)
    for mine, theirs in zip(outer(xv), clone(xv)):
        np.testing.assert_array_equal(mine, theirs)
