"""Layers created in a custom ``Layer.__init__`` (or ``build``) and called in ``call``: Keras'
most common subclassing pattern. Weights keyed under the owner, tracked by ``weights``,
``get_weights``/``set_weights``, ``count_params``, ``save_weights`` and configs; deferred build
through the traced call; plans of such models pickled and run in another process."""

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compiler import Input, Model, Sequential, compile, layers
from compiler.errors import CompilerError, ShapeError

ROOT = Path(__file__).resolve().parents[1]


class Block(layers.Layer):
    """Own weight, a layer attribute, a list and a dict of layers."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = layers.Dense(units, activation="relu")
        self.pair = [layers.Dense(units), layers.Dense(units)]
        self.heads = {"out": layers.Dense(2)}

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],),
                                     initializer="ones")

    def call(self, x):
        h = self.dense(x * self.scale)
        return self.heads["out"](self.pair[0](h) + self.pair[1](h))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _np_block(w, x, p="my_block/"):
    h = np.maximum((x * w[p + "scale"]) @ w[p + "dense/kernel"] + w[p + "dense/bias"], 0)
    s = (h @ w[p + "dense_1/kernel"] + w[p + "dense_1/bias"]
         + h @ w[p + "dense_2/kernel"] + w[p + "dense_2/bias"])
    return s @ w[p + "dense_3/kernel"] + w[p + "dense_3/bias"]


def _net():
    return Sequential([Block(4, name="my_block"), layers.Dense(1, name="top")])


def _x(seed=0, shape=(3, 5)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


KEYS = ["my_block/scale", "my_block/dense/kernel", "my_block/dense/bias",
        "my_block/dense_1/kernel", "my_block/dense_1/bias", "my_block/dense_2/kernel",
        "my_block/dense_2/bias", "my_block/dense_3/kernel", "my_block/dense_3/bias",
        "top/kernel", "top/bias"]


def test_sublayer_weights_are_keyed_under_the_owner_and_the_output_matches_numpy():
    net = _net()
    assert not net.built  # deferred: sizes come from the first call, through the traced call
    xv = _x()
    got = net(xv)
    assert [w.name for w in net.weights] == KEYS
    w = {v.name: v.numpy() for v in net.weights}
    want = _np_block(w, xv) @ w["top/kernel"] + w["top/bias"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    block = net.layers[0]
    assert [v.name for v in block.weights] == KEYS[:-2]
    assert len(block.get_weights()) == 9 and block.built
    assert block.count_params() == 5 + (5 * 4 + 4) + 2 * (4 * 4 + 4) + (4 * 2 + 2)
    assert sorted(net.weight_store) == sorted(KEYS)


def test_set_weights_on_the_owner_reaches_the_sublayers_and_the_compiled_plan():
    net = _net()
    xv = _x(1)
    net(xv)
    block = net.layers[0]
    new = [np.full_like(a, 0.1 * (k + 1)) for k, a in enumerate(block.get_weights())]
    block.set_weights(new)
    w = {v.name: v.numpy() for v in net.weights}
    assert w["my_block/dense_3/bias"][0] == pytest.approx(0.9)
    np.testing.assert_allclose(net(xv), _np_block(w, xv) @ w["top/kernel"] + w["top/bias"],
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ShapeError, match=r"layer 'my_block'.*9 weight arrays.*received 2"):
        block.set_weights(new[:2])
    bad = list(new)
    bad[4] = np.zeros((7,), np.float32)
    with pytest.raises(ShapeError, match=r"'dense_1/bias' expects shape \(4,\), received "
                                         r"\(7,\)"):
        block.set_weights(bad)
    assert block.get_weights()[0][0] == pytest.approx(0.1)  # unchanged: all-or-nothing


def test_save_weights_and_config_round_trip(tmp_path):
    net = _net()
    xv = _x(2)
    want = net(xv)
    path = tmp_path / "w.npz"
    net.save_weights(path)
    assert sorted(np.load(path).files) == sorted(KEYS)
    clone = Sequential([Block(4, name="my_block"), layers.Dense(1, name="top")])
    clone.build((None, 5))  # a custom layer's own weights are declared by its build()
    clone.load_weights(path)
    np.testing.assert_array_equal(clone(xv), want)
    config = net.to_config()
    assert config["config"]["layers"][0]["config"]["units"] == 4
    rebuilt = Model.from_config(config)
    rebuilt.build((None, 5))
    rebuilt.set_weights(net.get_weights())
    np.testing.assert_array_equal(rebuilt(xv), want)


def test_functional_model_and_a_block_used_twice_share_one_set_of_weights():
    block = Block(3, name="my_block")
    x, y = Input((5,)), Input((5,))
    model = Model([x, y], layers.Add()([block(x), block(y)]))
    xv, yv = _x(3), _x(4)
    got = model(xv, yv)
    w = {v.name: v.numpy() for v in model.weights}
    assert len(w) == 9
    np.testing.assert_allclose(got, _np_block(w, xv) + _np_block(w, yv), rtol=1e-5, atol=1e-6)
    # stored weights only: prepare_dense may add prepared copies (one per shared kernel)
    ops = [d["op"] for _, d in compile(model).graph.nodes(data=True) if not d.get("prepared")]
    assert ops.count("param") == 9 and ops.count("dense") == 8


def test_nested_custom_layers_and_layers_created_in_build():
    class Inner(layers.Layer):
        def build(self, input_shape):
            self.proj = layers.Dense(input_shape[-1], name="proj")

        def call(self, x):
            return self.proj(x) + x

    class Outer(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.blocks = (Inner(name="a"), Inner(name="b"))

        def call(self, x):
            return self.blocks[1](self.blocks[0](x))

    net = Sequential([Outer(name="outer")])
    xv = _x(4, (2, 3))
    got = net(xv)
    w = {v.name: v.numpy() for v in net.weights}
    assert sorted(w) == ["outer/a/proj/bias", "outer/a/proj/kernel", "outer/b/proj/bias",
                         "outer/b/proj/kernel"]
    h = xv @ w["outer/a/proj/kernel"] + w["outer/a/proj/bias"] + xv
    np.testing.assert_allclose(got, h @ w["outer/b/proj/kernel"] + w["outer/b/proj/bias"] + h,
                               rtol=1e-5, atol=1e-6)


def test_two_sublayers_given_one_name_are_refused_naming_the_owner():
    class Twice(layers.Layer):
        def __init__(self):
            super().__init__(name="twice")
            self.a, self.b = layers.Dense(2, name="d"), layers.Dense(2, name="d")

        def call(self, x):
            return self.a(x) + self.b(x)

    with pytest.raises(CompilerError, match=r"layer 'twice' \(Twice\): layer names must be "
                                            r"unique, \['d'\]"):
        Sequential([Twice()]).build((None, 3))


_CHILD = """
import pickle, sys
plan, x = pickle.loads(sys.stdin.buffer.read())
sys.stdout.buffer.write(pickle.dumps(plan(x)))
"""


def test_pickled_plan_runs_in_another_process_without_the_custom_class():
    net = _net()
    xv = _x(5)
    plan = compile(net, (None, 5))
    want = plan(xv)
    blob = pickle.dumps((plan, xv))
    assert b"test_custom_sublayers" not in blob  # plain data: no reference to this module
    done = subprocess.run([sys.executable, "-c", _CHILD], input=blob, capture_output=True,
                          timeout=600, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    np.testing.assert_array_equal(pickle.loads(done.stdout), want)


class PrivateBlock(layers.Layer):
    """Sub-layers only in private attributes (Keras 3 tracks them too), one of them held twice
    and one nested in a dict of lists."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        shared = layers.Dense(3)
        self._proj = shared
        self._again = shared
        self._pair = (layers.Dense(3), layers.Dense(3))
        self._heads = {"a": [layers.Dense(2)]}

    def call(self, x):
        h = self._again(self._proj(x))
        return self._heads["a"][0](self._pair[0](h) + self._pair[1](h))


class PrivateNet(Model):
    def __init__(self):
        super().__init__()
        self._block = PrivateBlock(name="blk")
        self._out = layers.Dense(1, name="out")

    def call(self, x):
        return self._out(self._block(x))


PRIVATE_KEYS = ["blk/dense/kernel", "blk/dense/bias", "blk/dense_1/kernel", "blk/dense_1/bias",
                "blk/dense_2/kernel", "blk/dense_2/bias", "blk/dense_3/kernel",
                "blk/dense_3/bias", "out/kernel", "out/bias"]


def _np_private(w, x):
    h = x @ w["blk/dense/kernel"] + w["blk/dense/bias"]
    h = h @ w["blk/dense/kernel"] + w["blk/dense/bias"]  # the shared layer, called twice
    s = (h @ w["blk/dense_1/kernel"] + w["blk/dense_1/bias"]
         + h @ w["blk/dense_2/kernel"] + w["blk/dense_2/bias"])
    s = s @ w["blk/dense_3/kernel"] + w["blk/dense_3/bias"]
    return s @ w["out/kernel"] + w["out/bias"]


def test_layers_in_private_attributes_are_tracked_once_each():
    net = PrivateNet()
    xv = _x(2, (4, 3))
    got = net(xv)
    assert [v.name for v in net.weights] == PRIVATE_KEYS  # the shared layer listed once
    w = {v.name: v.numpy() for v in net.weights}
    np.testing.assert_allclose(got, _np_private(w, xv), rtol=1e-5, atol=1e-6)
    assert net.count_params() == 3 * (3 * 3 + 3) + (3 * 2 + 2) + (2 * 1 + 1)  # shared once
    block = net._block
    assert len(block.get_weights()) == 8 and block.built


def test_set_weights_reaches_private_sublayers_and_a_pickled_plan():
    net = PrivateNet()
    xv = _x(3, (2, 3))
    net(xv)
    plan = compile(net, (None, 3))
    new = [np.full_like(a, 0.1 * (i + 1)) for i, a in enumerate(net.get_weights())]
    net.set_weights(new)
    for got, want in zip(net.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    want = _np_private(dict(zip(PRIVATE_KEYS, new)), xv)
    np.testing.assert_allclose(plan(xv), want, rtol=1e-5, atol=1e-6)
    clone = pickle.loads(pickle.dumps(compile(net, (None, 3))))
    np.testing.assert_allclose(clone(xv), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ShapeError, match=r"has 8 weight arrays.*received 7"):
        net._block.set_weights(new[:7])
