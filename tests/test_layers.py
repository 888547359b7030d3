"""Layers end to end: activations, Flatten/Dropout/Reshape, dtypes, inputs, partial knowledge."""

import numpy as np
import pytest

from compiler import (
    CompilerError,
    DTypeError,
    Input,
    Model,
    Sequential,
    ShapeError,
    TensorSpec,
    compile,
    layers,
    lower,
)
from compiler.ops.activations import ACTIVATIONS
from compiler.reference import run_reference


def check_against_reference(net, x, rtol=1e-4):
    y = net(x)
    plan = compile(net, TensorSpec.from_array(x))
    np.testing.assert_allclose(y, run_reference(plan.graph, x), rtol=rtol, atol=rtol)
    return y


@pytest.mark.parametrize("act", sorted(ACTIVATIONS) + [None])
def test_activation_by_name_in_dense_and_as_layer(act):
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    a = Sequential([layers.Dense(4, activation=act)])
    y = check_against_reference(a, x)
    b = Sequential([layers.Dense(4), layers.Activation(act)])
    b.build((None, 5))
    b.layers[0].set_weights(a.layers[0].get_weights())
    np.testing.assert_allclose(b(x), y, rtol=1e-5, atol=1e-6)


def test_activation_layers():
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6)
    np.testing.assert_allclose(Sequential([layers.ReLU()])(x), np.maximum(x, 0))
    np.testing.assert_allclose(Sequential([layers.LeakyReLU(0.1)])(x), np.where(x > 0, x, 0.1 * x),
                               rtol=1e-6)
    s = Sequential([layers.Softmax()])(x)
    np.testing.assert_allclose(s.sum(axis=1), 1, rtol=1e-6)


def test_flatten_dropout_reshape():
    x = np.random.default_rng(1).normal(size=(3, 4, 5)).astype(np.float32)
    net = Sequential([layers.Flatten(), layers.Dropout(0.5), layers.Dense(6),
                      layers.Reshape((2, 3))])
    y = check_against_reference(net, x)
    assert y.shape == (3, 2, 3)
    k, b = net.layers[2].get_weights()
    np.testing.assert_allclose(y.reshape(3, 6), x.reshape(3, 20) @ k + b, rtol=1e-5, atol=1e-5)


def test_float64_models_compute_in_float64():
    net = Sequential([layers.Dense(3, activation="tanh")], dtype="float64")
    x = np.random.default_rng(2).normal(size=(4, 7))
    y = net(x)
    assert y.dtype == np.float64 and net.get_weights()[0].dtype == np.float64
    k, b = net.get_weights()
    np.testing.assert_allclose(y, np.tanh(x @ k + b), rtol=1e-12)


def test_inputs_are_cast_and_non_contiguous_arrays_work():
    net = Sequential([layers.Dense(3)])
    base = np.random.default_rng(3).normal(size=(10, 8))
    net.build((None, 4))
    k, b = net.get_weights()
    for x in (base[::2, ::2], np.asfortranarray(base[:, :4]), base[:, :4].astype(np.int64),
              base[:, :4].astype(np.float16), base[::-1, :4]):
        expected = np.asarray(x, np.float32) @ k + b
        np.testing.assert_allclose(net(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad, err, match", [
    (np.ones(4, np.float32), ShapeError, r"rank >= 2, received rank 1"),
    (np.ones((2, 5), np.float32), ShapeError, r"axis 0: expected 4, received 5"),
    (np.array([["a", "b", "c", "d"]]), DTypeError, r"numeric.*<U1"),
    (np.ones((2, 4), np.complex64), DTypeError, r"complex"),
])
def test_bad_inputs_are_rejected_before_any_kernel_runs(bad, err, match):
    net = Sequential([layers.Dense(3)])
    net.build((None, 4))
    before = net.get_weights()
    with pytest.raises(err, match=match):
        net(bad)
    for a, b in zip(before, net.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make, match", [
    (lambda: layers.Dense(0), r"units must be a positive int, received 0"),
    (lambda: layers.Dense(-3), r"received -3"),
    (lambda: layers.Dense(4, activation="swishy"), r"unknown activation 'swishy'"),
    (lambda: layers.Dense(4, kernel_initializer="nope"), r"unknown initializer 'nope'"),
    (lambda: layers.Dropout(1.5), r"rate must be in \[0, 1\), received 1.5"),
    (lambda: layers.Reshape((-1, -1)), r"at most one -1"),
    (lambda: layers.Dense(4, use_bias="no"), r"use_bias must be True or False, received 'no'"),
    (lambda: layers.Conv2D(4, 3, strides=0), r"strides must be a positive int, received 0"),
    (lambda: layers.Conv2D(4, 3, padding="full"), r"'valid' or 'same', received 'full'"),
    (lambda: layers.Conv2D(5, 3, groups=2), r"filters \(5\) must be a multiple of groups"),
    (lambda: layers.MaxPooling2D(pool_size=-2), r"received -2"),
    (lambda: layers.BatchNormalization(epsilon=0), r"epsilon must be a positive number"),
    (lambda: layers.ZeroPadding2D(-1), r"non-negative"),
])
def test_constructors_reject_bad_configuration(make, match):
    with pytest.raises(CompilerError, match=match):
        make()


def test_partial_parameter_shapes_before_build():
    d = layers.Dense(256)
    assert d.param_shapes == {"kernel": (None, 256), "bias": (256,)}
    assert d.count_params() is None
    assert layers.Dense(8, input_dim=3).param_shapes["kernel"] == (3, 8)
    assert layers.Dense(4, use_bias=False).param_names == ["kernel"]


def test_set_weights_checks_every_shape_and_names_the_parameter():
    net = Sequential([layers.Dense(3)])
    net.build((None, 4))
    with pytest.raises(ShapeError, match=r"'dense'.*bias expects shape \(3,\), received \(4,\)"):
        net.layers[0].set_weights([np.zeros((4, 3)), np.zeros(4)])
    with pytest.raises(ShapeError, match=r"has 2 weights"):
        net.layers[0].set_weights([np.zeros((4, 3))])
    net.layers[0].set_weights([np.ones((4, 3)), np.zeros(3)])
    np.testing.assert_allclose(net(np.ones((1, 4))), [[4, 4, 4]])


def test_set_weights_on_an_uninitialized_layer_pins_its_shapes():
    d = layers.Dense(3)
    d.set_weights([np.ones((5, 3)), np.zeros(3)])
    net = Sequential([d])
    np.testing.assert_allclose(net(np.ones((2, 5))), np.full((2, 3), 5.0))
    with pytest.raises(ShapeError, match=r"expected 5, received 4"):
        net(np.ones((2, 4)))


def test_layer_is_callable_on_arrays():
    d = layers.Dense(2, activation="relu")
    y = d(np.ones((3, 4), np.float32))
    assert y.shape == (3, 2) and d.built


def test_functional_model_multiple_inputs_and_outputs():
    a, b = Input((4,), name="a"), Input((4,), name="b")
    shared = layers.Dense(3)
    ya, yb = shared(a), shared(b)
    head = layers.Dense(2)(ya)
    model = Model([a, b], [head, yb])
    xa, xb = np.ones((2, 4), np.float32), np.zeros((2, 4), np.float32)
    out_head, out_b = model(xa, xb)
    g = lower(model, [TensorSpec((None, 4)).to_type(model.dtype, i) for i in range(2)])
    assert out_head.shape == (2, 2) and out_b.shape == (2, 3)
    assert len([n for n, d in g.nodes(data=True) if d["op"] == "param"]) == 4
