"""fuse: Before -> pass -> Expected; outputs unchanged; idempotent."""

import numpy as np

from compiler import Input, Model, Sequential, TensorSpec, layers, lower
from compiler.passes import BUILD_PIPELINE, CompileContext, fuse, run_pipeline
from compiler.reference import run_reference


def built_graph(model, *specs):
    g = lower(model, [s.to_type(model.dtype, i) for i, s in enumerate(specs)])
    ctx = CompileContext(seed=0)
    return run_pipeline(g, BUILD_PIPELINE, ctx)


def ops(g):
    return [d["op"] for _, d in sorted(g.nodes(data=True)) if d["op"] not in ("input", "param")]


def test_dense_absorbs_activation_and_dropout_disappears():
    net = Sequential([layers.Dense(8), layers.Dropout(0.3), layers.ReLU(),
                      layers.Dense(4, activation="relu"), layers.Activation("tanh"),
                      layers.Activation("sigmoid")])
    g = built_graph(net, TensorSpec((None, 5)))
    x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    before = run_reference(g, x)
    assert ops(g) == ["dense", "identity", "activation", "dense", "activation", "activation"]
    fuse(g, CompileContext())
    assert ops(g) == ["dense", "dense", "activation_chain"]
    acts = [d["attrs"].get("activation") for _, d in sorted(g.nodes(data=True))
            if d["op"] == "dense"]
    assert acts == ["relu", "relu"]
    (chain,) = [d["attrs"]["chain"] for _, d in g.nodes(data=True)
                if d["op"] == "activation_chain"]
    assert [name for name, _ in chain] == ["tanh", "sigmoid"]
    np.testing.assert_allclose(run_reference(g, x), before, rtol=1e-6)


def test_values_read_twice_or_returned_are_not_fused():
    x = Input((4,))
    h = layers.Dense(3)(x)
    a = layers.ReLU()(h)
    b = layers.Activation("tanh")(h)
    model = Model(x, [h, a, b])
    g = built_graph(model, TensorSpec((None, 4)))
    fuse(g, CompileContext())
    assert ops(g) == ["dense", "activation", "activation"]
    assert all(d["attrs"].get("activation") == "linear" for _, d in g.nodes(data=True)
               if d["op"] == "dense")


def test_running_fuse_twice_changes_nothing():
    net = Sequential([layers.Dense(8), layers.ReLU(), layers.Activation("tanh")])
    g = built_graph(net, TensorSpec((None, 5)))
    fuse(g, CompileContext())
    snapshot = {n: (d["op"], dict(d["attrs"])) for n, d in g.nodes(data=True)}
    fuse(g, CompileContext())
    assert snapshot == {n: (d["op"], dict(d["attrs"])) for n, d in g.nodes(data=True)}


def test_dropout_as_the_only_layer_keeps_the_graph_valid():
    net = Sequential([layers.Dropout(0.5)])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = net(x)
    np.testing.assert_array_equal(y, x)
    assert not np.shares_memory(y, x)
