"""``ops.relu(ops.matmul(x, w) + b)`` from a custom layer or subclassed model compiles to the
same fused ``dense`` step as ``layers.Dense(units, activation="relu")``: Before -> fuse ->
Expected on the plan's steps, outputs against NumPy, and the cases that must stay primitive."""

import networkx as nx
import numpy as np
import pytest

from compiler import Input, Model, Sequential, TensorSpec, compile, layers, ops
from compiler.passes import CompileContext, fuse
from compiler.reference import run_reference

RNG = np.random.default_rng(3)


class MyDense(layers.Layer):
    def __init__(self, units, activation=ops.relu, bias_first=False, **kwargs):
        super().__init__(**kwargs)
        self.units, self.activation, self.bias_first = units, activation, bias_first

    def build(self, input_shape):
        self.w = self.add_weight(name="w", shape=[input_shape[-1], self.units],
                                 initializer="random_normal")
        self.b = self.add_weight(name="b", shape=[self.units], initializer="random_normal")

    def call(self, x):
        y = self.b + ops.matmul(x, self.w) if self.bias_first else ops.matmul(x, self.w) + self.b
        return self.activation(y)


class Mlp(Model):
    """A subclassed model computing with operators on its own weights."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = MyDense(6, bias_first=True)
        self.out = layers.Dense(2)

    def call(self, x):
        return self.out(self.hidden(x))


def _steps(plan):
    return [(s.op, {k: v for k, v in s.attrs if k in ("activation", "use_bias", "units")})
            for s in plan.graph.graph["schedule"]]


def _numpy(x, w, b):
    return np.maximum(x @ w + b, 0)


@pytest.mark.parametrize("bias_first", [False, True])
def test_custom_relu_matmul_bias_is_the_same_fused_step_as_dense(bias_first):
    x = RNG.normal(size=(5, 4)).astype(np.float32)
    custom = Sequential([MyDense(3, bias_first=bias_first)])
    builtin = Sequential([layers.Dense(3, activation="relu")])
    custom(x)
    builtin(x)
    builtin.set_weights(custom.get_weights())
    a = compile(custom, TensorSpec((None, 4)))
    b = compile(builtin, TensorSpec((None, 4)))
    assert _steps(a) == _steps(b) == [("dense", {"activation": "relu", "use_bias": True,
                                                 "units": 3})]
    assert a.executor == "codegen"
    w, bias = custom.get_weights()
    np.testing.assert_allclose(a(x), _numpy(x, w, bias), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a(x), b(x))
    np.testing.assert_allclose(run_reference(a.graph, x), _numpy(x, w, bias), rtol=1e-5,
                               atol=1e-6)


def test_subclassed_model_with_operators_fuses_and_sees_new_weights():
    net = Mlp()
    x = RNG.normal(size=(7, 3, 4)).astype(np.float32)  # leading axes fold into rows, as Dense
    net(x)
    plan = compile(net, TensorSpec((None, 3, 4)))
    assert [op for op, _ in _steps(plan)] == ["dense", "dense"]
    assert _steps(plan)[0][1]["activation"] == "relu"
    roles = sorted((d["key"].split("/")[-1], d["param"]) for _, d in plan.graph.nodes(data=True)
                   if d["op"] == "param" and not d.get("prepared"))  # not prepare_dense's copies
    assert roles == [("b", "bias"), ("bias", "bias"), ("kernel", "kernel"), ("w", "kernel")]
    w, b, k, kb = net.get_weights()
    np.testing.assert_allclose(plan(x), _numpy(x, w, b) @ k + kb, rtol=1e-5, atol=1e-5)
    net.set_weights([w * 2, b - 1, k, kb])  # the fused step reads the same stored weights
    np.testing.assert_allclose(plan(x), _numpy(x, w * 2, b - 1) @ k + kb, rtol=1e-5, atol=1e-5)


def test_tied_custom_layer_fuses_at_both_uses_with_one_weight_set():
    shared = MyDense(4)
    net = Sequential([shared, shared])
    x = RNG.normal(size=(3, 4)).astype(np.float32)
    y = net(x)
    plan = compile(net, TensorSpec((None, 4)))
    assert [op for op, _ in _steps(plan)] == ["dense", "dense"]
    w, b = net.get_weights()
    np.testing.assert_allclose(plan(x), y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, _numpy(_numpy(x, w, b), w, b), rtol=1e-5, atol=1e-6)


def test_fuse_twice_changes_nothing_more():
    net = Sequential([MyDense(3), MyDense(2, activation=ops.tanh)])
    x = RNG.normal(size=(2, 5)).astype(np.float32)
    net(x)
    plan = compile(net, TensorSpec((None, 5)))
    g = plan.graph.copy()
    again = fuse(g.copy(), CompileContext())
    assert nx.utils.graphs_equal(again, g)


class Unfusable(layers.Layer):
    """Products that are not a dense layer: they must stay primitives and stay right."""

    def build(self, input_shape):
        self.w3 = self.add_weight(name="w3", shape=[2, input_shape[-1], 3])
        self.b2 = self.add_weight(name="b2", shape=[1, 3])

    def call(self, x):
        x4 = ops.expand_dims(ops.expand_dims(x, 1), 1)                # (N, 1, 1, K)
        batched = ops.sum(ops.matmul(x4, self.w3), axis=1)            # a 3-D weight: batched
        return batched + self.b2                                      # a 2-D "bias": broadcast


def test_products_that_are_not_dense_stay_primitive():
    x = RNG.normal(size=(4, 5)).astype(np.float32)
    net = Sequential([Unfusable()])
    y = net(x)
    w3, b2 = net.get_weights()
    want = np.matmul(x[:, None, None, :], w3).sum(1) + b2
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    plan = compile(net, TensorSpec((None, 5)))
    assert "dense" not in [op for op, _ in _steps(plan)]
    np.testing.assert_allclose(plan(x), want, rtol=1e-5, atol=1e-5)


def test_matmul_of_two_inputs_and_returned_products_keep_their_values():
    a, v = Input((3,)), Input((3, 2), batch_size=1)
    m = ops.matmul(a, ops.squeeze(v, 0))        # not a weight: stays matmul
    model = Model([a, v], [m, ops.relu(m)])
    plan = compile(model, TensorSpec((None, 3)), TensorSpec((1, 3, 2)))
    assert "matmul" in [op for op, _ in _steps(plan)]
    xs, vs = RNG.normal(size=(4, 3)), RNG.normal(size=(1, 3, 2))
    got_m, got_r = plan(xs.astype(np.float32), vs.astype(np.float32))
    np.testing.assert_allclose(got_m, xs @ vs[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_r, np.maximum(xs @ vs[0], 0), rtol=1e-5, atol=1e-5)


class Returning(layers.Layer):
    """Returns the product itself as well: the bias sum may not swallow it."""

    def build(self, input_shape):
        self.w = self.add_weight(name="w", shape=[input_shape[-1], 2])
        self.b = self.add_weight(name="b", shape=[2])

    def call(self, x):
        m = ops.matmul(x, self.w)
        return m + self.b + m


def test_a_product_read_twice_becomes_dense_without_the_bias():
    x = RNG.normal(size=(3, 4)).astype(np.float32)
    net = Sequential([Returning()])
    y = net(x)
    w, b = net.get_weights()
    np.testing.assert_allclose(y, 2 * (x @ w) + b, rtol=1e-5, atol=1e-5)
    plan = compile(net, TensorSpec((None, 4)))
    steps = _steps(plan)
    assert steps[0] == ("dense", {"activation": "linear", "use_bias": False, "units": 2})
    np.testing.assert_allclose(plan(x), y, rtol=1e-5, atol=1e-5)
