"""Custom layers and subclassed models inside blocks (nested models) and tied: weight keys carry
the owner's path, the traced weights pass ``verify`` and the runtime's param check, and results
match hand-written NumPy."""

import numpy as np

from compiler import Model, Sequential, TensorSpec, compile, layers, ops
from compiler.ir import verify
from compiler.reference import run_reference

RNG = np.random.default_rng(1)


class MyDense(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.weight = self.add_weight(name="weight", shape=[input_shape[-1], self.units],
                                      initializer="random_normal")
        self.bias = self.add_weight(name="bias", shape=[self.units], initializer="random_normal")

    def call(self, X):
        return ops.relu(ops.matmul(X, self.weight) + self.bias)


class Centered(layers.Layer):
    def call(self, X):
        return X - ops.mean(X, axis=-1, keepdims=True)


class Head(Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = MyDense(5)
        self.out = layers.Dense(2)

    def call(self, x):
        return self.out(self.hidden(x) * 2.0)


def _weights(net):
    return {k: net.weight_store[k].numpy() for k in net.weight_store}


def test_custom_layer_inside_a_block_is_keyed_by_its_path():
    block = Sequential([layers.Dense(4), MyDense(3)], name="block")
    net = Sequential([Sequential([block, Centered()], name="outer"), layers.Dense(2)])
    X = RNG.normal(size=(5, 6)).astype(np.float32)
    y = net(X)
    assert list(net.weight_store) == [
        "outer/block/dense/kernel", "outer/block/dense/bias", "outer/block/my_dense/weight",
        "outer/block/my_dense/bias", "dense/kernel", "dense/bias"]
    assert [v.name for v in net.weights] == list(net.weight_store)
    W = _weights(net)
    h = X @ W["outer/block/dense/kernel"] + W["outer/block/dense/bias"]
    h = np.maximum(h @ W["outer/block/my_dense/weight"] + W["outer/block/my_dense/bias"], 0)
    h = h - h.mean(-1, keepdims=True)
    want = h @ W["dense/kernel"] + W["dense/bias"]
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    plan = compile(net, TensorSpec((None, 6)))
    verify(plan.graph)
    params = [d for _, d in plan.graph.nodes(data=True)
              if d["op"] == "param" and d.get("weight") is not None]
    assert sorted((d["key"], d["param"], d["weight"]) for d in params) == [
        ("outer/block/my_dense/bias", "bias", "bias"),     # x @ w + b became a dense op
        ("outer/block/my_dense/weight", "kernel", "weight")]
    np.testing.assert_allclose(plan(X), want, rtol=1e-5, atol=1e-5)
    rows = {line.split()[0]: line for line in net.summary(print_fn=None).splitlines()
            if line.startswith(("outer", "dense"))}
    assert "(N, 3)" in rows["outer"] and "(N, 2)" in rows["dense"]


def test_tied_custom_layer_has_one_set_of_weights():
    shared = MyDense(4)
    net = Sequential([layers.Dense(4), shared, shared])
    X = RNG.normal(size=(3, 7)).astype(np.float32)
    y = net(X)
    assert list(net.weight_store) == ["dense/kernel", "dense/bias", "my_dense/weight",
                                      "my_dense/bias"]
    W = _weights(net)
    h = X @ W["dense/kernel"] + W["dense/bias"]
    for _ in range(2):
        h = np.maximum(h @ W["my_dense/weight"] + W["my_dense/bias"], 0)
    np.testing.assert_allclose(y, h, rtol=1e-5, atol=1e-5)


def test_subclassed_model_as_a_block():
    net = Sequential([layers.Dense(3), Head(name="head")])
    X = RNG.normal(size=(4, 6)).astype(np.float32)
    y = net(X)
    assert list(net.weight_store) == ["dense/kernel", "dense/bias", "head/my_dense/weight",
                                      "head/my_dense/bias", "head/dense/kernel",
                                      "head/dense/bias"]
    W = _weights(net)
    h = X @ W["dense/kernel"] + W["dense/bias"]
    h = np.maximum(h @ W["head/my_dense/weight"] + W["head/my_dense/bias"], 0) * 2.0
    want = h @ W["head/dense/kernel"] + W["head/dense/bias"]
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    plan = compile(net, TensorSpec((None, 6)))
    np.testing.assert_allclose(run_reference(plan.graph, X), want, rtol=1e-5, atol=1e-5)
