"""Weights as Keras 3 variables and initializers as Keras 3 classes (issue 9, item 3)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compiler import Sequential, ShapeError, TensorSpec, compile, initializers, layers
from compiler.weights import Variable

X = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)


# -- variables -----------------------------------------------------------------------------------

def test_layer_weights_are_named_variables():
    dense = layers.Dense(2, name="dense_1")
    assert dense.weights == []
    Sequential([dense]).build((None, 3))
    kernel, bias = dense.weights
    assert isinstance(kernel, Variable)
    assert (kernel.name, kernel.shape, kernel.dtype) == ("dense_1/kernel", (3, 2), np.float32)
    assert bias.name == "dense_1/bias" and bias.shape == (2,)
    copy = kernel.numpy()
    copy[...] = 7
    assert not np.any(dense.get_weights()[0] == 7)  # numpy() is a copy
    assert isinstance(dense.get_weights()[0], np.ndarray)


def test_nested_variables_carry_the_full_path():
    inner = Sequential([layers.Dense(2, name="dense")], name="block")
    outer = Sequential([Sequential([inner], name="outer"), layers.Dense(1, name="head")])
    outer.build((None, 3))
    assert [v.name for v in outer.weights] == ["outer/block/dense/kernel",
                                               "outer/block/dense/bias", "head/kernel",
                                               "head/bias"]
    assert [v.name for v in inner.layers[0].weights] == ["outer/block/dense/kernel",
                                                          "outer/block/dense/bias"]


def test_assign_is_seen_by_compiled_plans():
    net = Sequential([layers.Dense(2, name="d")])
    plan = compile(net, TensorSpec((None, 3)))
    kernel, bias = net.layers[0].weights
    new_kernel = np.arange(6, dtype=np.float32).reshape(3, 2)
    kernel.assign(new_kernel)
    bias.assign(np.ones(2))
    expected = X @ new_kernel + 1
    np.testing.assert_allclose(plan(X), expected, rtol=1e-5)
    np.testing.assert_allclose(net(X), expected, rtol=1e-5)
    np.testing.assert_array_equal(net.get_weights()[0], new_kernel)


def test_assign_checks_the_shape_and_changes_nothing_on_error():
    net = Sequential([layers.Dense(2, name="d")])
    net.build((None, 3))
    kernel = net.weights[0]
    before, version = kernel.numpy(), kernel.version
    with pytest.raises(ShapeError, match=r"'d/kernel'.*\(3, 2\).*\(2, 3\)"):
        kernel.assign(np.zeros((2, 3)))
    np.testing.assert_array_equal(kernel.numpy(), before)
    assert kernel.version == version


def test_model_weights_list_each_shared_variable_once():
    shared = layers.Dense(3, name="s")
    net = Sequential([shared, shared, layers.Dense(1, name="h")])
    net.build((None, 3))
    assert [v.name for v in net.weights] == ["s/kernel", "s/bias", "h/kernel", "h/bias"]
    assert net.weights[0] is shared.weights[0]


# -- initializers --------------------------------------------------------------------------------

def _kernel(init, shape=(200, 300)):
    net = Sequential([layers.Dense(shape[1], kernel_initializer=init)])
    net.build((None, shape[0]))
    return net.get_weights()[0]


def test_random_normal_statistics():
    w = _kernel(initializers.RandomNormal(mean=1.0, stddev=0.5, seed=3))
    assert abs(w.mean() - 1.0) < 0.01 and abs(w.std() - 0.5) < 0.01
    default = initializers.RandomNormal()
    assert (default.mean, default.stddev, default.seed) == (0.0, 0.05, None)


def test_uniform_truncated_and_constant():
    w = _kernel(initializers.RandomUniform(minval=-2.0, maxval=-1.0))
    assert w.min() >= -2.0 and w.max() <= -1.0 and abs(w.mean() + 1.5) < 0.01
    t = _kernel(initializers.TruncatedNormal(mean=0.0, stddev=1.0, seed=0))
    assert np.abs(t).max() <= 2.0 and abs(t.std() - 0.88) < 0.02
    np.testing.assert_array_equal(_kernel(initializers.Constant(0.25), (3, 2)),
                                  np.full((3, 2), 0.25, np.float32))
    np.testing.assert_array_equal(_kernel(initializers.Zeros(), (3, 2)), np.zeros((3, 2)))
    np.testing.assert_array_equal(_kernel(initializers.Ones(), (3, 2)), np.ones((3, 2)))


@pytest.mark.parametrize("cls, limit", [
    (initializers.GlorotUniform, np.sqrt(6 / 500)), (initializers.HeUniform, np.sqrt(6 / 200)),
    (initializers.LecunUniform, np.sqrt(3 / 200))])
def test_variance_scaling_uniform_bounds(cls, limit):
    w = _kernel(cls(seed=1))
    assert np.abs(w).max() <= limit + 1e-7 and np.abs(w).max() > 0.9 * limit


@pytest.mark.parametrize("cls, var", [
    (initializers.GlorotNormal, 2 / 500), (initializers.HeNormal, 2 / 200),
    (initializers.LecunNormal, 1 / 200)])
def test_variance_scaling_normal_variance(cls, var):
    w = _kernel(cls(seed=1))
    assert abs(w.var() / var - 1) < 0.05


def test_seeded_initializer_is_reproducible_and_callable_directly():
    a = initializers.GlorotNormal(seed=5)((4, 3))
    b = initializers.GlorotNormal(seed=5)((4, 3), dtype="float64")
    assert a.shape == (4, 3) and b.dtype == np.float64
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_array_equal(_kernel(initializers.HeNormal(seed=2), (4, 3)),
                                  _kernel(initializers.HeNormal(seed=2), (4, 3)))


class Diagonal(initializers.Initializer):
    """A user initializer, Keras style: only ``__call__(shape, dtype=None)``."""

    def __init__(self, scale=1.0):
        self.scale = scale

    def __call__(self, shape, dtype=None):
        return self.scale * np.eye(*shape, dtype=dtype)

    def get_config(self):
        return {"scale": self.scale}


def test_user_initializer_subclass_and_round_trip():
    net = Sequential([layers.Dense(3, kernel_initializer=Diagonal(2.0),
                                   bias_initializer=initializers.Constant(0.5))])
    y = net(X)
    np.testing.assert_allclose(y, X @ (2 * np.eye(3)) + 0.5, rtol=1e-6)
    clone = Sequential.from_config(json.loads(json.dumps(net.to_config())))
    assert isinstance(clone.layers[0].kernel_initializer, Diagonal)
    clone.build((None, 3))
    np.testing.assert_array_equal(clone.get_weights()[0], 2 * np.eye(3))


def test_user_initializer_with_a_wrong_shape_is_refused():
    class Bad(initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return np.zeros((1, 1))

    net = Sequential([layers.Dense(3, kernel_initializer=Bad())])
    with pytest.raises(ShapeError, match=r"Bad returned shape \(1, 1\).*\(3, 3\)"):
        net.build((None, 3))
    assert not net.built


@pytest.mark.parametrize("init", [
    initializers.RandomNormal(0.5, 0.1, seed=1), initializers.RandomUniform(-1, 2),
    initializers.Constant(3.0), initializers.Zeros(), initializers.Ones(),
    initializers.GlorotUniform(seed=4), initializers.GlorotNormal(), initializers.HeNormal(),
    initializers.HeUniform(), initializers.LecunNormal(), initializers.LecunUniform(),
    initializers.TruncatedNormal(0.0, 0.2, seed=9),
    initializers.VarianceScaling(2.0, "fan_out", "uniform")])
def test_builtin_initializers_round_trip_through_config(init):
    net = Sequential([layers.Dense(2, kernel_initializer=init, bias_initializer=init)])
    config = json.loads(json.dumps(net.to_config()))
    clone = Sequential.from_config(config)
    restored = clone.layers[0].kernel_initializer
    assert type(restored) is type(init) and restored.get_config() == init.get_config()


def test_string_identifiers_and_classes_still_work():
    assert isinstance(initializers.get("truncated_normal"), initializers.TruncatedNormal)
    assert isinstance(initializers.get(initializers.HeNormal), initializers.HeNormal)
    w = _kernel("zeros", (2, 2))
    assert not w.any()
