"""The seed chapter (d2l "Deferred Initialization"), cell for cell, and its three exercises."""

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


def mlp():
    return Sequential([layers.Dense(256, activation="relu"), layers.Dense(10)])


def numpy_mlp(x, w):
    k1, b1, k2, b2 = w
    return np.maximum(x @ k1 + b1, 0) @ k2 + b2


def test_layers_exist_but_weights_do_not():
    net = mlp()
    assert [layer.get_weights() for layer in net.layers] == [[], []]
    assert not net.built


def test_model_get_weights_before_data_explains_the_fix():
    net = mlp()
    with pytest.raises(DeferredInitializationError,
                       match=r"input size.*net\.build\(\(None, 20\)\)"):
        net.get_weights()
    assert isinstance(DeferredInitializationError("x"), CompilerError)
    assert issubclass(ShapeError, CompilerError) and issubclass(CompilerError, ValueError)


def test_first_call_infers_shapes_and_initializes():
    net = mlp()
    X = np.random.default_rng(0).uniform(size=(2, 20)).astype(np.float32)
    Y = net(X)
    assert isinstance(Y, np.ndarray) and Y.shape == (2, 10) and Y.dtype == np.float32
    assert [w.shape for w in net.get_weights()] == [(20, 256), (256,), (256, 10), (10,)]
    np.testing.assert_allclose(Y, numpy_mlp(X, net.get_weights()), rtol=1e-5, atol=1e-5)


def test_default_initializers_are_keras_defaults():
    net = mlp()
    net.build((None, 20))
    k1, b1, _, _ = net.get_weights()
    limit = np.sqrt(6.0 / (20 + 256))  # glorot_uniform
    assert np.all(np.abs(k1) <= limit) and k1.std() > limit / 4
    assert not b1.any()  # zeros


# -- exercise 1: input size given only to the first layer ------------------------------------
@pytest.mark.parametrize("make", [
    lambda: Sequential([Input((20,)), layers.Dense(256), layers.Dense(10)]),
    lambda: Sequential([layers.Dense(256, input_dim=20), layers.Dense(10)]),
    lambda: Sequential([layers.Dense(256, input_shape=(20,)), layers.Dense(10)]),
])
def test_exercise1_declared_input_initializes_every_layer_at_construction(make):
    net = make()
    assert net.built
    assert [w.shape for w in net.get_weights()] == [(20, 256), (256,), (256, 10), (10,)]


# -- exercise 2: mismatching sizes --------------------------------------------------------------
def test_exercise2a_wrong_width_names_layer_axis_and_sizes():
    net = mlp()
    net(np.ones((2, 20), np.float32))
    before = net.get_weights()
    with pytest.raises(ShapeError, match=r"'dense'.*axis 0: expected 20, received 30"):
        net(np.ones((2, 30), np.float32))
    for a, b in zip(before, net.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_exercise2a_compiled_plan_rejects_wrong_width_before_running():
    net = mlp()
    plan = compile(net, TensorSpec((None, 20)))
    with pytest.raises(ShapeError, match=r"input 'input_0' \(read by layer 'dense'\): axis 1 "
                                         r"expected size 20, received 30"):
        plan(np.ones((2, 30), np.float32))


def test_exercise2b_conflicting_declarations_name_both_layers_and_build_nothing():
    first, second = layers.Dense(256, input_dim=20), layers.Dense(10, input_dim=128)
    with pytest.raises(ShapeError, match=r"'dense_1'.*declares input shape \(N, 128\).*"
                                         r"\(N, 256\) from layer 'dense'.*"
                                         r"expected 128, received 256"):
        Sequential([first, second])
    assert first.get_weights() == [] and second.get_weights() == []


def test_exercise2_failed_build_leaves_model_uninitialized():
    net = Sequential([layers.Dense(8), layers.Dense(4, input_dim=5)])
    with pytest.raises(ShapeError):
        net.build((None, 3))
    assert [layer.get_weights() for layer in net.layers] == [[], []]


# -- exercise 3: inputs of varying size ----------------------------------------------------------
def test_exercise3_one_plan_for_every_batch_size():
    net = mlp()
    net.build((None, 20))
    plan = compile(net, TensorSpec((None, 20)))
    w = net.get_weights()
    for batch in (1, 2, 1000, 0):
        X = np.random.default_rng(batch).normal(size=(batch, 20)).astype(np.float32)
        Y = plan(X)
        assert Y.shape == (batch, 10)
        np.testing.assert_allclose(Y, numpy_mlp(X, w), rtol=1e-4, atol=1e-4)
    assert "N" in str(plan.signature.types[0])


def test_exercise3_model_call_caches_one_plan_across_batch_sizes():
    net = mlp()
    for batch in (1, 7, 64):
        net(np.ones((batch, 20), np.float32))
    assert len(net._plans) == 1


def test_exercise3_parameter_tying_shares_weights():
    shared = layers.Dense(16, activation="relu")
    x = Input((16,))
    y = shared(shared(x))
    model = Model(x, layers.Dense(3)(y))
    assert len(model.layers) == 2
    assert len(shared.get_weights()) == 2  # one kernel, one bias, used twice
    X = np.random.default_rng(1).normal(size=(5, 16)).astype(np.float32)
    k, b = shared.get_weights()
    k2, b2 = model.layers[1].get_weights()
    h = np.maximum(np.maximum(X @ k + b, 0) @ k + b, 0)
    np.testing.assert_allclose(model(X), h @ k2 + b2, rtol=1e-4, atol=1e-4)


def test_exercise3_tied_uses_that_disagree_name_both_uses():
    shared = layers.Dense(4)
    a, b = Input((8,), name="a"), Input((6,), name="b")
    with pytest.raises(ShapeError, match=r"'dense'.*used at two places.*first use receives "
                                         r"\(N, 8\).*this use receives \(N1, 6\)"):
        Model([a, b], [shared(a), shared(b)])
    assert shared.get_weights() == []


def test_exercise3_calling_a_built_layer_on_a_misfit_tensor_fails_at_the_call():
    shared = layers.Dense(4)
    a, b = Input((8,), name="a"), Input((6,), name="b")
    Model(a, shared(a))
    with pytest.raises(ShapeError, match=r"'dense'.*kernel \(8, 4\).*\(N, 6\).*"
                                         r"expected 8, received 6"):
        shared(b)
