"""Exact integer arithmetic: int element-wise ops and int max pooling compute in their int dtype
(no float64 round trip), so int64 values beyond 2**53 stay exact and overflow wraps as in NumPy.
Hypothesis over the whole int64 range against NumPy, through compiled plans (both executors)
and the kernels themselves."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compiler import Input, Model, compile, layers, ops
from compiler.reference import run_reference
from runtime.kernels.registry import get_kernel

INT64 = st.integers(-(2 ** 63), 2 ** 63 - 1)
#: name -> (compiler.ops function, NumPy function)
BINARY = {"add": (ops.add, np.add), "subtract": (ops.subtract, np.subtract),
          "multiply": (ops.multiply, np.multiply), "maximum": (ops.maximum, np.maximum),
          "minimum": (ops.minimum, np.minimum), "power": (ops.power, np.power)}
UNARY = {"abs": (ops.abs, np.abs), "negative": (ops.negative, np.negative)}


@functools.cache
def _plan(executor: str, dtype: str):
    """One model computing every op (``y`` broadcasts over ``x``'s rows), compiled once."""
    x, y = Input((3, 4), dtype=dtype, name="x"), Input((1, 4), dtype=dtype, name="y")
    outs = [fn(x, y) for fn, _ in BINARY.values()] + [fn(x) for fn, _ in UNARY.values()]
    return compile(Model([x, y], outs), executor=executor)


def _want(x, y):
    with np.errstate(all="ignore"):
        return [f(x, y) for _, f in BINARY.values()] + [f(x) for _, f in UNARY.values()]


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["codegen", "steps"]), st.integers(1, 3), st.data())
def test_int64_ops_beyond_2_to_53_are_exact_in_compiled_plans(executor, batch, data):
    x = data.draw(hnp.arrays(np.int64, (batch, 3, 4), elements=INT64))
    y = data.draw(hnp.arrays(np.int64, (batch, 1, 4), elements=st.integers(0, 70)))
    plan = _plan(executor, "int64")
    got = plan(x, y)
    for name, g, w in zip(list(BINARY) + list(UNARY), got, _want(x, y)):
        assert g.dtype == np.int64, name
        np.testing.assert_array_equal(g, w, err_msg=f"{name} ({executor})")
    for g, r in zip(got, run_reference(plan.graph, x, y)):
        np.testing.assert_array_equal(g, r)


@settings(max_examples=6, deadline=None)
@given(st.data())
def test_int32_ops_wrap_like_numpy(data):
    x = data.draw(hnp.arrays(np.int32, (2, 3, 4), elements=st.integers(-(2 ** 31), 2 ** 31 - 1)))
    y = data.draw(hnp.arrays(np.int32, (2, 1, 4), elements=st.integers(0, 40)))
    got = _plan("steps", "int32")(x, y)
    for name, g, w in zip(list(BINARY) + list(UNARY), got, _want(x, y)):
        assert g.dtype == np.int32, name
        np.testing.assert_array_equal(g, w, err_msg=name)


@settings(max_examples=20, deadline=None)
@given(hnp.arrays(np.int64, st.integers(1, 40), elements=INT64), st.integers(0, 9))
def test_unary_and_power_kernels_compute_in_ints(x, exponent):
    for name, (_, f) in UNARY.items():
        out = np.empty_like(x)
        get_kernel(name).fn(x, out)
        np.testing.assert_array_equal(out, f(x), err_msg=name)
    e = np.full((1,), exponent, np.int64)
    out = np.empty_like(x)
    get_kernel("power").fn(x, e, out)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(out, np.power(x, e))


def test_power_of_ints_refuses_a_negative_exponent_as_numpy_does():
    x = np.array([2, 3], np.int64)
    with pytest.raises(ValueError, match="negative integer powers"):
        get_kernel("power").fn(x, np.array([1, -1], np.int64), np.empty_like(x))
    with pytest.raises(ValueError, match="negative integer powers"):
        np.power(x, np.array([1, -1]))


def test_known_values_just_above_2_to_53():
    big = np.array([[2 ** 53 + 1, -(2 ** 53) - 1, 2 ** 62 + 3, -(2 ** 63)]], np.int64)
    plan = _plan("steps", "int64")
    x = np.repeat(big[:, None, :], 3, axis=1)
    y = np.ones((1, 1, 4), np.int64)
    got = dict(zip(list(BINARY) + list(UNARY), plan(x, y)))
    assert got["abs"][0, 0, 0] == 2 ** 53 + 1 and got["negative"][0, 0, 1] == 2 ** 53 + 1
    assert got["power"][0, 0, 2] == 2 ** 62 + 3 and got["add"][0, 0, 0] == 2 ** 53 + 2
    assert got["abs"][0, 0, 3] == -(2 ** 63)  # wraps, as np.abs does


# -- max pooling --------------------------------------------------------------------------------
def _np_max_pool(x, k, s, same):
    n, h, w, c = x.shape
    if same:
        oh, ow = -(-h // s), -(-w // s)
        ph, pw = max((oh - 1) * s + k - h, 0), max((ow - 1) * s + k - w, 0)
        top, left = ph // 2, pw // 2
    else:
        oh, ow, top, left = (h - k) // s + 1, (w - k) // s + 1, 0, 0
    out = np.empty((n, oh, ow, c), x.dtype)
    for i in range(oh):
        for j in range(ow):
            y0, x0 = i * s - top, j * s - left
            win = x[:, max(y0, 0):y0 + k, max(x0, 0):x0 + k]
            out[:, i, j] = win.max(axis=(1, 2))
    return out


@functools.cache
def _pool_plan(dtype: str):
    x = Input((5, 5, 2), dtype=dtype, name="x")
    outs = [layers.MaxPooling2D(2)(x), layers.MaxPooling2D(3, strides=2, padding="same")(x),
            layers.GlobalMaxPooling2D()(x)]
    return compile(Model(x, outs))


def _check_pooling(x):
    plan = _pool_plan(x.dtype.name)
    valid, same, glob = plan(x)
    for got in (valid, same, glob):
        assert got.dtype == x.dtype
    np.testing.assert_array_equal(valid, _np_max_pool(x, 2, 2, False))
    np.testing.assert_array_equal(same, _np_max_pool(x, 3, 2, True))
    np.testing.assert_array_equal(glob, x.max(axis=(1, 2)))
    for g, r in zip((valid, same, glob), run_reference(plan.graph, x)):
        np.testing.assert_array_equal(g, r)


@settings(max_examples=10, deadline=None)
@given(hnp.arrays(np.int64, (2, 5, 5, 2), elements=INT64))
def test_int64_max_pooling_stays_int_and_exact(x):
    _check_pooling(x)


def test_int32_max_pooling_keeps_int32_as_keras_does():
    rng = np.random.default_rng(0)
    x = rng.integers(-(2 ** 31), 2 ** 31 - 1, size=(2, 5, 5, 2), dtype=np.int32)
    x[0, 0, 0, 0] = np.iinfo(np.int32).min  # the padded cells' value must never matter
    _check_pooling(x)


def _np_max_pool1d(x, k, s, same):
    n, t, c = x.shape
    if same:
        steps = -(-t // s)
        left = max((steps - 1) * s + k - t, 0) // 2
    else:
        steps, left = (t - k) // s + 1, 0
    out = np.empty((n, steps, c), x.dtype)
    for i in range(steps):
        lo = i * s - left
        out[:, i] = x[:, max(lo, 0):lo + k].max(axis=1)
    return out


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(["int32", "int64"]), st.data())
def test_int_max_pooling1d_stays_int_and_exact(dtype, data):
    info = np.iinfo(dtype)
    x = data.draw(hnp.arrays(dtype, (2, 7, 3), elements=st.integers(info.min, info.max)))
    valid, same, glob = _pool1d_plan(dtype)(x)
    for got in (valid, same, glob):
        assert got.dtype == x.dtype
    np.testing.assert_array_equal(valid, _np_max_pool1d(x, 2, 2, False))
    np.testing.assert_array_equal(same, _np_max_pool1d(x, 3, 2, True))
    np.testing.assert_array_equal(glob, x.max(axis=1))
    for g, r in zip((valid, same, glob), run_reference(_pool1d_plan(dtype).graph, x)):
        np.testing.assert_array_equal(g, r)


@functools.cache
def _pool1d_plan(dtype: str):
    x = Input((7, 3), dtype=dtype, name="x")
    outs = [layers.MaxPooling1D(2)(x), layers.MaxPooling1D(3, strides=2, padding="same")(x),
            layers.GlobalMaxPooling1D()(x)]
    return compile(Model(x, outs))
