"""fuse: Before -> pass -> Expected; outputs unchanged; idempotent."""

import re

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


def op_counts(g):
    counts = {}
    for op in ops(g):
        counts[op] = counts.get(op, 0) + 1
    return counts


def test_fusion_is_decided_by_traits():
    from compiler.ops import get_op
    from compiler.ops.registry import (
        AS_ACTIVATION,
        AS_RESIDUAL,
        FUSES_ACTIVATION,
        FUSES_RESIDUAL,
        OUTPUT_FUSABLE,
        TRAITS,
        registered_ops,
    )

    assert FUSES_ACTIVATION in get_op("dense").traits and OUTPUT_FUSABLE in get_op("dense").traits
    assert {FUSES_ACTIVATION, FUSES_RESIDUAL} <= get_op("conv2d").traits
    assert AS_ACTIVATION in get_op("activation").traits and AS_RESIDUAL in get_op("add").traits
    assert AS_RESIDUAL not in get_op("subtract").traits  # only a sum is a residual epilogue
    for name, op in registered_ops().items():
        assert op.traits <= TRAITS, name
    source = open(fuse.__code__.co_filename).read()
    # no op names in the pass: it never compares an op to a name
    source = source.replace("in SOURCE_OPS", "").replace('== "param"', "")
    assert not re.search(r'\["op"\]\s*(==|!=|in\b)', source)


def test_dense_then_activation_layer_fuses_like_dense_with_activation():
    separate = Sequential([layers.Dense(8), layers.Activation("relu"), layers.Dense(3),
                           layers.LeakyReLU(0.1)])
    g = built_graph(separate, TensorSpec((None, 5)))
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    before = run_reference(g, x)
    fuse(g, CompileContext())
    assert ops(g) == ["dense", "dense"]
    acts = [(d["attrs"]["activation"], d["attrs"]["alpha"]) for _, d in sorted(g.nodes(data=True))
            if d["op"] == "dense"]
    assert [a for a, _ in acts] == ["relu", "leaky_relu"] and abs(acts[1][1] - 0.1) < 1e-7
    np.testing.assert_allclose(run_reference(g, x), before, rtol=1e-6)


def test_add_then_relu_layer_folds_into_the_conv_epilogue():
    x = Input((None, None, 4))
    h = layers.Conv2D(4, 3, padding="same")(x)
    y = layers.ReLU()(layers.Add()([h, x]))
    g = built_graph(Model(x, y), TensorSpec((None, 6, 6, 4)))
    xs = np.random.default_rng(2).normal(size=(2, 6, 6, 4)).astype(np.float32)
    before = run_reference(g, xs)
    fuse(g, CompileContext())
    assert ops(g) == ["conv2d"]
    (attrs,) = [d["attrs"] for _, d in g.nodes(data=True) if d["op"] == "conv2d"]
    assert attrs["residual"] and attrs["activation"] == "relu"
    np.testing.assert_allclose(run_reference(g, xs), before, rtol=1e-5, atol=1e-6)


def test_seed_and_resnet18_fuse_exactly_as_before_traits():
    """Counts recorded on main before fusion was trait-driven."""
    from compiler import compile
    from compiler.applications import resnet18

    seed = compile(Sequential([layers.Dense(256, activation="relu"), layers.Dense(10)]),
                   TensorSpec((None, 20)), executor="steps").graph
    assert op_counts(seed) == {"dense": 2}
    g = compile(resnet18(), TensorSpec((None, 32, 32, 3)), executor="steps").graph
    assert op_counts(g) == {"conv2d": 20, "dense": 1, "global_avg_pool2d": 1}
    snapshot = {n: (d["op"], dict(d["attrs"])) for n, d in g.nodes(data=True)}
    fuse(g, CompileContext())
    assert snapshot == {n: (d["op"], dict(d["attrs"])) for n, d in g.nodes(data=True)}
