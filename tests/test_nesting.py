"""Composite layers: models nested in models, tied layers in a Sequential (issue 9, item 2).

Every numeric check is against hand-written NumPy over the model's own weights.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from compiler import (
    CompilerError,
    DeferredInitializationError,
    Input,
    Model,
    Sequential,
    ShapeError,
    TensorSpec,
    compile,
    layers,
)
from compiler.driver import build_graph
from compiler.passes import COMPILE_PIPELINE
from compiler.reference import run_reference

RNG = np.random.default_rng(0)


def relu(x):
    return np.maximum(x, 0)


def dense(x, w, b, act=None):
    y = x @ w + b
    return relu(y) if act == "relu" else y


def data(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# -- nesting in a Sequential --------------------------------------------------------------------

def test_sequential_in_sequential_first_call_on_unbuilt_model():
    block = Sequential([layers.Dense(4, activation="relu", name="d1"), layers.Dense(3, name="d2")],
                       name="block")
    net = Sequential([block, layers.Dense(2, name="head")])
    assert not net.built and not block.built
    x = data(5, 7)
    y = net(x)
    assert block.built  # the inner model's sizes were inferred by the outer call
    k1, b1, k2, b2, k3, b3 = net.get_weights()
    assert k1.shape == (7, 4) and k3.shape == (3, 2)
    np.testing.assert_allclose(y, dense(dense(dense(x, k1, b1, "relu"), k2, b2), k3, b3),
                               rtol=1e-5, atol=1e-5)
    # another batch size reuses the symbolic-batch plan and still agrees
    x2 = data(1, 7)
    np.testing.assert_allclose(net(x2), dense(dense(dense(x2, k1, b1, "relu"), k2, b2), k3, b3),
                               rtol=1e-5, atol=1e-5)
    # the inner model alone computes its part with the same weights
    np.testing.assert_allclose(block(x), dense(dense(x, k1, b1, "relu"), k2, b2), rtol=1e-5,
                               atol=1e-5)


def test_weight_keys_are_prefixed_by_the_owner_but_not_the_top_model():
    inner = Sequential([layers.Dense(3, name="dense")], name="block")
    middle = Sequential([inner, layers.Dense(2, name="dense")], name="outer")
    top = Sequential([middle, layers.Dense(1, name="dense_1")], name="top")
    top.build((None, 4))
    assert list(top.weight_store) == ["outer/block/dense/kernel", "outer/block/dense/bias",
                                      "outer/dense/kernel", "outer/dense/bias",
                                      "dense_1/kernel", "dense_1/bias"]
    assert [v.name for v in top.weights] == list(top.weight_store)
    flat = Sequential([layers.Dense(2), layers.Dense(1)])
    flat.build((None, 3))
    assert list(flat.weight_store) == ["dense/kernel", "dense/bias", "dense_1/kernel",
                                       "dense_1/bias"]


def test_unnamed_nested_models_get_unique_names():
    a, b = Sequential([layers.Dense(2)]), Sequential([layers.Dense(2)])
    net = Sequential([a, b])
    net.build((None, 3))
    assert [m.name for m in net.layers] == ["sequential", "sequential_1"]
    assert list(net.weight_store)[2] == "sequential_1/dense/kernel"


def test_a_model_cannot_contain_itself():
    net = Sequential([layers.Dense(2)])
    with pytest.raises(CompilerError, match="contain itself"):
        net.add(net)
    assert net.layers == net.layers[:1]


def test_failed_first_call_leaves_nested_model_untouched():
    block = Sequential([layers.Dense(4, name="d"), layers.Reshape((3, 3))], name="block")
    net = Sequential([block, layers.Dense(2)])
    with pytest.raises(ShapeError):
        net(data(2, 5))  # 4 values cannot be reshaped to (3, 3)
    assert not block.built and not net.built and block.layers[0].get_weights() == []


def test_declared_input_of_a_nested_functional_model_is_checked():
    x = Input((4,))
    inner = Model(x, layers.Dense(2)(x), name="inner")
    first = Sequential([inner, layers.Dense(1)])  # the outer model takes the declared input
    with pytest.raises(ShapeError, match=r"expects \(\?, 4\), received \(N, 5\)"):
        first(data(3, 5))
    assert first(data(3, 4)).shape == (3, 1)
    later = Sequential([layers.Dense(5, name="pre"), inner])  # checked inside the outer graph
    with pytest.raises(ShapeError, match=r"'inner' \(Model\) declares input shape \(N, 4\) but "
                                         r"receives \(N, 5\)"):
        later(data(3, 2))
    assert not later.built
    with pytest.raises(ShapeError, match=r"model 'inner' \(Model\) called on"):
        inner(Input((5,)))


# -- tying ---------------------------------------------------------------------------------------

def test_d2l_parameter_tying():
    shared = layers.Dense(8, activation="relu")
    net = Sequential([layers.Flatten(), shared, shared, layers.Dense(1)])
    x = data(2, 2, 4)  # flattens to 8 = the shared layer's width
    y = net(x)
    weights = net.get_weights()
    assert len(weights) == 4  # the shared kernel and bias once, then the head
    k, b, k2, b2 = weights
    h = x.reshape(2, 8)
    np.testing.assert_allclose(y, dense(dense(dense(h, k, b, "relu"), k, b, "relu"), k2, b2),
                               rtol=1e-5, atol=1e-5)
    assert [v.name for v in net.weights] == ["dense/kernel", "dense/bias", "dense_1/kernel",
                                             "dense_1/bias"]
    assert net.count_params() == 8 * 8 + 8 + 8 + 1
    text = net.summary(print_fn=None)
    assert "Total params: 81" in text
    # changing the shared weight changes both uses
    k_new = np.eye(8, dtype=np.float32)
    net.set_weights([k_new, b, k2, b2])
    np.testing.assert_allclose(net(x), dense(dense(dense(h, k_new, b, "relu"), k_new, b, "relu"),
                                             k2, b2), rtol=1e-5, atol=1e-5)


def test_conflicting_tied_uses_name_the_layer_and_both_sizes():
    shared = layers.Dense(8, name="shared")
    net = Sequential([shared, shared])
    with pytest.raises(ShapeError, match=r"'shared'.*\(N, 5\).*\(N, 8\)"):
        net(data(2, 5))
    assert not net.built and shared.get_weights() == []


def test_tied_layer_survives_config_and_weights_round_trip(tmp_path):
    shared = layers.Dense(4, activation="relu", name="shared")
    net = Sequential([shared, shared, layers.Dense(1, name="head")])
    x = data(3, 4)
    y = net(x)
    clone = Sequential.from_config(json.loads(json.dumps(net.to_config())))
    assert [layer.name for layer in clone._stack] == ["shared", "shared", "head"]
    net.save_weights(tmp_path / "w.npz")
    clone.load_weights(tmp_path / "w.npz")  # shapes come from the file
    np.testing.assert_allclose(clone(x), y, rtol=1e-6)


# -- nesting in functional models ---------------------------------------------------------------

def test_inner_model_reused_twice_shares_its_weights():
    inner = Sequential([layers.Dense(4, activation="relu", name="d")], name="proj")
    a, b = Input((4,)), Input((4,))
    out = layers.Add()([inner(a), inner(b)])
    net = Model([a, b], layers.Dense(2, name="head")(out))
    assert list(net.weight_store) == ["proj/d/kernel", "proj/d/bias", "head/kernel",
                                      "head/bias"]
    k, bias, k2, b2 = net.get_weights()
    xa, xb = data(3, 4), data(3, 4)
    expected = dense(dense(xa, k, bias, "relu") + dense(xb, k, bias, "relu"), k2, b2)
    np.testing.assert_allclose(net(xa, xb), expected, rtol=1e-5, atol=1e-5)
    graph, ctx = build_graph(net, [TensorSpec((None, 4))] * 2, COMPILE_PIPELINE)
    params = [d["key"] for _, d in graph.nodes(data=True) if d["op"] == "param"]
    assert sorted(params) == sorted(set(params))  # one param node per weight
    np.testing.assert_allclose(run_reference(graph, xa, xb), expected, rtol=1e-5, atol=1e-5)


def test_functional_model_called_as_a_layer_on_symbolic_batch():
    inner = Sequential([layers.Dense(3, name="d")], name="inner")  # width unknown so far
    t = Input((6,))
    h = inner(t)
    assert h.shape[1] == 3
    net = Model(t, layers.Dense(1, name="head")(h))  # builds: the inner width becomes 6
    k, b, k2, b2 = net.get_weights()
    assert k.shape == (6, 3)
    xs = data(4, 6)
    np.testing.assert_allclose(net(xs), dense(dense(xs, k, b), k2, b2), rtol=1e-5, atol=1e-5)
    plan = compile(net, TensorSpec((None, 6)))
    np.testing.assert_allclose(plan(xs), dense(dense(xs, k, b), k2, b2), rtol=1e-5, atol=1e-5)


def test_calling_a_built_inner_model_on_a_misfit_input_raises_at_the_call():
    inner = Sequential([layers.Dense(3, name="d")], name="inner")
    inner.build((None, 4))
    with pytest.raises(ShapeError, match=r"inner.*4.*5|inner.*5.*4"):
        inner(Input((5,)))


def test_nested_summary_has_one_row_per_inner_model():
    block = Sequential([layers.Dense(4, name="d1"), layers.Dense(3, name="d2")], name="block")
    net = Sequential([block, layers.Dense(2, name="head")])
    before = net.summary(print_fn=None)
    assert "block (Sequential)" in before and "?" in before
    net.build((None, 5))
    text = net.summary(print_fn=None)
    row = next(line for line in text.splitlines() if line.startswith("block (Sequential)"))
    assert "(N, 3)" in row and f"{5 * 4 + 4 + 4 * 3 + 3}" in row
    assert f"Total params: {5 * 4 + 4 + 4 * 3 + 3 + 3 * 2 + 2}" in text


def test_nested_model_config_and_weights_round_trip(tmp_path):
    x = Input((5,))
    inner = Sequential([layers.Dense(4, activation="relu", name="d"),
                        layers.BatchNormalization(name="bn")], name="block")
    y = layers.Concatenate()([inner(x), inner(layers.Dense(5, name="pre")(x))])
    net = Model(x, layers.Dense(2, name="head")(y), name="net")
    config = json.loads(json.dumps(net.to_config()))
    block_config = config["config"]["layers"][0]
    assert block_config["class_name"] == "Sequential"
    assert [c["config"]["name"] for c in block_config["config"]["layers"]] == ["d", "bn"]
    clone = Model.from_config(config)
    assert list(clone.weight_store) == list(net.weight_store)
    xs = data(3, 5)
    net.save_weights(tmp_path / "w.npz")
    clone.load_weights(tmp_path / "w.npz")
    np.testing.assert_allclose(clone(xs), net(xs), rtol=1e-6)
    # and set_weights/get_weights through nesting, seen by a compiled plan
    plan = compile(clone, TensorSpec((None, 5)))
    weights = [w * 0.5 for w in clone.get_weights()]
    clone.set_weights(weights)
    for got, want in zip(clone.get_weights(), weights):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(plan(xs), clone(xs), rtol=1e-6)


def test_load_into_an_unbuilt_nested_model_infers_shapes(tmp_path):
    def make():
        return Sequential([Sequential([layers.Dense(3)], name="block"), layers.Dense(1)])

    net = make()
    x = data(2, 6)
    y = net(x)
    net.save_weights(tmp_path / "w.npz")
    fresh = make()
    with pytest.raises(DeferredInitializationError):
        fresh.get_weights()
    fresh.load_weights(tmp_path / "w.npz")
    np.testing.assert_allclose(fresh(x), y, rtol=1e-6)


def test_inner_model_reused_on_conflicting_widths_names_the_inner_layer():
    inner = Sequential([layers.Dense(3, name="d")], name="block")
    a, b = Input((4,)), Input((5,))
    with pytest.raises(ShapeError, match=r"'block/d' \(Dense\) is used at two places.*\(N, 4\).*"
                                         r"5\)"):
        Model([a, b], layers.Add()([inner(a), inner(b)]))
    assert not inner.built


def test_models_that_cannot_be_a_single_layer_are_refused_at_the_call():
    a, b = Input((3,)), Input((3,))
    two_in = Model([a, b], layers.Add()([a, b]), name="two_in")
    with pytest.raises(CompilerError, match="'two_in' takes 2 inputs"):
        Sequential([two_in])
    two_out = Model(a, [layers.Dense(2)(a), layers.Dense(1)(a)], name="two_out")
    with pytest.raises(CompilerError, match="Sequential: model 'two_out' has several outputs"):
        Sequential([two_out])
    assert len(two_out(Input((3,)))) == 2  # called as a layer: a list (test_nested_multi_output)
    x, y = Input((3,)), Input((3,))
    z = two_in([x, y])  # several inputs are fine
    net = Model([x, y], z)
    xs, ys = data(2, 3), data(2, 3)
    np.testing.assert_allclose(net(xs, ys), xs + ys, rtol=1e-6)


def test_plan_of_a_nested_tied_model_pickles():
    import pickle

    shared = layers.Dense(4, activation="relu", name="shared")
    block = Sequential([shared, shared], name="block")
    net = Sequential([layers.Dense(4, name="pre"), block, layers.Dense(1, name="head")])
    plan = compile(net, TensorSpec((None, 3)))
    x = data(5, 3)
    copy = pickle.loads(pickle.dumps(plan))
    np.testing.assert_array_equal(copy(x), plan(x))
    kp, bp, k, b, kh, bh = net.get_weights()
    expected = dense(dense(dense(dense(x, kp, bp), k, b, "relu"), k, b, "relu"), kh, bh)
    np.testing.assert_allclose(plan(x), expected, rtol=1e-5, atol=1e-5)
