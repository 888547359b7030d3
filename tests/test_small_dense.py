"""The small-product dense path: ``dense_small`` against NumPy, the pass that picks it, and a
plan that recomputes its prepared (transposed) weight after ``set_weights``."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import Sequential, TensorSpec, compile, layers
from compiler.ops import get_op
from compiler.ops.activations import ACTIVATIONS
from compiler.passes.prepare_dense import NARROW_UNITS as PACKED_BELOW_UNITS
from compiler.passes.prepare_dense import SMALL_KERNEL, SMALL_MAX_WEIGHTS
from runtime.kernels.registry import empty_param, get_kernel
from runtime.kernels.small_dense import NARROW_MAX_MACS, NARROW_UNITS, WIDE_MAX_MACS

ACTS = sorted(ACTIVATIONS)


def run_small(x, kernel, bias, activation, packed: bool, parallel=False, alpha=0.2):
    k = get_kernel(SMALL_KERNEL)
    fn = k.parallel_fn if parallel else k.fn
    out = np.full(x.shape[:-1] + (kernel.shape[1],), np.nan, x.dtype)  # every cell written
    prepared = np.ascontiguousarray(kernel.T).reshape(-1) if packed else empty_param(x.dtype)
    attrs = {"activation": activation, "alpha": alpha, "units": kernel.shape[1]}
    fn(x, kernel, bias if bias is not None else empty_param(x.dtype), prepared, out,
       *k.scalars(attrs, [x.shape], out.shape))
    return out


def numpy_dense(x, kernel, bias, activation, alpha=0.2):
    """Hand-written NumPy for the linear part; the op's reference for the activation."""
    y = x.astype(np.float64) @ kernel.astype(np.float64)
    if bias is not None:
        y = y + bias
    y = y.astype(x.dtype)
    return get_op("dense").reference([y], {"kernel": np.eye(y.shape[-1], dtype=x.dtype)},
                                     {"activation": activation, "alpha": alpha})


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 64), fan_in=st.integers(0, 70), units=st.integers(1, 70),
       act=st.sampled_from(ACTS), bias=st.booleans(), f64=st.booleans(), packed=st.booleans(),
       lead=st.sampled_from([(), (2,)]))
def test_small_dense_matches_numpy(rows, fan_in, units, act, bias, f64, packed, lead):
    dtype = np.float64 if f64 else np.float32
    rng = np.random.default_rng(rows * 1000 + fan_in * 7 + units)
    x = rng.normal(size=lead + (rows, fan_in)).astype(dtype)
    k = rng.normal(size=(fan_in, units)).astype(dtype)
    b = rng.normal(size=units).astype(dtype) if bias else None
    tol = 1e-10 if f64 else 2e-4
    expected = numpy_dense(x, k, b, act)
    for parallel in (False, True):
        np.testing.assert_allclose(run_small(x, k, b, act, packed, parallel), expected,
                                   rtol=tol, atol=tol * max(1, fan_in))


@pytest.mark.parametrize("packed, units", [(False, 48), (True, 48), (True, NARROW_UNITS - 1)])
def test_large_batch_goes_to_blas_with_the_same_result(packed, units):
    rng = np.random.default_rng(1)
    fan_in = 40
    limit = NARROW_MAX_MACS if units < NARROW_UNITS else WIDE_MAX_MACS
    rows = limit // (fan_in * units) + 5
    x = rng.normal(size=(rows, fan_in)).astype(np.float32)
    k = rng.normal(size=(fan_in, units)).astype(np.float32)
    b = rng.normal(size=units).astype(np.float32)
    np.testing.assert_allclose(run_small(x, k, b, "relu", packed), numpy_dense(x, k, b, "relu"),
                               rtol=2e-4, atol=2e-3)


def test_nan_propagates_in_both_forms():
    x = np.array([[np.nan, 1.0], [2.0, -1.0], [np.inf, 0.5]], np.float32)
    k = np.eye(2, dtype=np.float32)
    for packed in (False, True):
        got = run_small(x, k, None, "relu", packed)
        assert np.isnan(got[0, 0]) and got[2, 0] == np.inf and got[1, 1] == 0


def _mlp(widths, activation="relu"):
    return Sequential([layers.Dense(w, activation=activation) for w in widths])


def _kernels(plan):
    return [s.kernel for s in plan._steps if not s.alias]


def test_pass_picks_small_kernel_by_weight_size_and_form_by_output_width():
    big = SMALL_MAX_WEIGHTS // 10 + 1  # reads 10 inputs: just over the limit
    net = _mlp([256, 10, big])
    net.build((None, 20))
    plan = compile(net, TensorSpec((None, 20)))
    assert _kernels(plan) == [SMALL_KERNEL, SMALL_KERNEL, "dense"]
    g = plan.graph
    packed = {d["key"]: d for _, d in g.nodes(data=True) if d.get("prepared")}
    # 256 outputs: row updates, nothing prepared; 10 outputs: the transposed kernel
    assert 10 < PACKED_BELOW_UNITS == NARROW_UNITS <= 256
    assert list(packed) == ["dense_1/kernel+packed"]
    kernel = net.layers[1].get_weights()[0]
    np.testing.assert_array_equal(packed["dense_1/kernel+packed"]["value"],
                                  kernel.T.reshape(-1))


def test_prepared_weight_is_recomputed_after_set_weights():
    rng = np.random.default_rng(2)
    net = _mlp([48, 8], activation="tanh")
    x = rng.normal(size=(3, 40)).astype(np.float32)
    net(x)
    plan = compile(net, TensorSpec((None, 40)))
    assert _kernels(plan) == [SMALL_KERNEL, SMALL_KERNEL]
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in net.get_weights()]
    net.set_weights(weights)
    k1, b1, k2, b2 = weights
    expected = numpy_dense(numpy_dense(x, k1, b1, "tanh"), k2, b2, "tanh")
    np.testing.assert_allclose(plan(x), expected, rtol=1e-4, atol=1e-5)
    net.layers[1].set_weights([np.zeros_like(k2), b2])  # the packed copy follows its source
    np.testing.assert_allclose(plan(x), np.tanh(np.broadcast_to(b2, (3, 8))), rtol=1e-5)


def test_batches_of_every_size_on_one_plan():
    rng = np.random.default_rng(3)
    net = _mlp([64, 64, 5])
    net.build((None, 64))
    plan = compile(net, TensorSpec((None, 64)))
    k1, b1, k2, b2, k3, b3 = net.get_weights()
    for rows in (1, 2, 3, 33, 700):  # 700 rows: past the MAC limit, BLAS (and threads)
        x = rng.normal(size=(rows, 64)).astype(np.float32)
        h = numpy_dense(numpy_dense(x, k1, b1, "relu"), k2, b2, "relu")
        np.testing.assert_allclose(plan(x), numpy_dense(h, k3, b3, "relu"), rtol=2e-4,
                                   atol=2e-4)
