"""Dense and activation kernels against the NumPy reference, over many shapes and dtypes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.ops import get_op
from compiler.ops.activations import ACTIVATIONS
from runtime.kernels.registry import empty_param, get_kernel

ACTS = sorted(ACTIVATIONS)


def run_dense(x, kernel, bias, activation, alpha=0.2):
    k = get_kernel("dense")
    out = np.empty(x.shape[:-1] + (kernel.shape[1],), x.dtype)
    attrs = {"activation": activation, "alpha": alpha, "units": kernel.shape[1]}
    k.fn(x, kernel, bias if bias is not None else empty_param(x.dtype), out,
         *k.scalars(attrs, [x.shape], out.shape))
    return out


def reference(x, kernel, bias, activation, alpha=0.2):
    params = {"kernel": kernel} | ({"bias": bias} if bias is not None else {})
    return get_op("dense").reference([x], params, {"activation": activation, "alpha": alpha})


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 300), fan_in=st.integers(0, 70), units=st.integers(1, 70),
       act=st.sampled_from(ACTS), bias=st.booleans(), f64=st.booleans(),
       lead=st.sampled_from([(), (3,)]))
def test_dense_matches_reference(rows, fan_in, units, act, bias, f64, lead):
    dtype = np.float64 if f64 else np.float32
    rng = np.random.default_rng(rows * 1000 + fan_in)
    x = rng.normal(size=lead + (rows, fan_in)).astype(dtype)
    k = rng.normal(size=(fan_in, units)).astype(dtype)
    b = rng.normal(size=units).astype(dtype) if bias else None
    tol = 1e-10 if f64 else 2e-4
    np.testing.assert_allclose(run_dense(x, k, b, act), reference(x, k, b, act),
                               rtol=tol, atol=tol * max(1, fan_in))


def test_dense_parallel_path_matches_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, 64)).astype(np.float32)
    k = rng.normal(size=(64, 96)).astype(np.float32)
    b = rng.normal(size=96).astype(np.float32)
    for act in ACTS:
        np.testing.assert_allclose(run_dense(x, k, b, act), reference(x, k, b, act),
                                   rtol=2e-4, atol=2e-3)


@pytest.mark.parametrize("act", ACTS)
def test_nan_and_inf_propagate_like_the_reference(act):
    x = np.array([[np.nan, 1.0, -np.inf], [np.inf, -2.0, 0.5], [0.0, -0.0, 3.0]], np.float32)
    eye = np.eye(3, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        expected = reference(x, eye, None, act)
    got = run_dense(x, eye, None, act)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    finite = ~np.isnan(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 40), min_size=1, max_size=3), act=st.sampled_from(ACTS),
       alpha=st.floats(0.0, 1.0))
def test_activation_kernel_matches_reference(shape, act, alpha):
    x = np.random.default_rng(len(shape)).normal(size=shape).astype(np.float32) * 5
    k = get_kernel("activation")
    out = np.empty_like(x)
    attrs = {"activation": act, "alpha": alpha}
    k.fn(x, out, *k.scalars(attrs, [x.shape], x.shape))
    expected = get_op("activation").reference([x], {}, attrs)
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-6)
