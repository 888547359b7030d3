"""The depthwise kernel (``runtime/kernels/conv_depthwise.py``) and explicit window padding vs
the NumPy reference: 3x3 fast path (interior and edge pixels), general taps, multipliers,
serial and parallel drivers, float32/float64, NaN/inf."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_harness import assert_kernel_matches, params_for

from runtime.kernels.flags import PARALLEL_MIN_ELEMENTS

ACTS = st.sampled_from(["linear", "relu", "leaky_relu", "tanh"])


@st.composite
def padded_cases(draw, op):
    k = draw(st.sampled_from([1, 2, 3, 3, 5]))
    s = draw(st.sampled_from([1, 2, 3]))
    d = draw(st.sampled_from([1, 1, 2]))
    span = d * (k - 1) + 1
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    padding = draw(st.sampled_from(["valid", "same", pads, pads]))
    lo = max(1, span - (0 if isinstance(padding, str) else min(sum(p) for p in pads)))
    shape = (draw(st.integers(1, 3)), draw(st.integers(lo, lo + 7)),
             draw(st.integers(lo, lo + 7)), draw(st.integers(1, 17)))
    if padding == "valid" or isinstance(padding, tuple):
        extra = (0, 0) if padding == "valid" else tuple(sum(p) for p in pads)
        shape = (shape[0], max(shape[1], span - extra[0]), max(shape[2], span - extra[1]),
                 shape[3])
    attrs = {"kernel_size": (k, k), "strides": (s, s), "dilation": (d, d), "padding": padding,
             "use_bias": draw(st.booleans()), "activation": draw(ACTS)}
    if op == "depthwise_conv2d":
        attrs["depth_multiplier"] = draw(st.sampled_from([1, 1, 1, 2, 3]))
    else:
        attrs.update(filters=draw(st.integers(1, 9)), groups=1, residual=False)
    return shape, attrs, draw(st.sampled_from([np.float32, np.float64])), draw(st.integers(0, 99))


@settings(max_examples=40, deadline=None)
@given(padded_cases("depthwise_conv2d"))
def test_depthwise_matches_reference(case):
    shape, attrs, dtype, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert_kernel_matches("depthwise_conv2d", [x],
                          params_for("depthwise_conv2d", [x], attrs, rng), attrs,
                          rtol=tol, atol=tol)


@settings(max_examples=15, deadline=None)
@given(padded_cases("conv2d"))
def test_conv2d_explicit_padding_matches_reference(case):
    shape, attrs, dtype, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert_kernel_matches("conv2d", [x], params_for("conv2d", [x], attrs, rng), attrs,
                          rtol=tol, atol=tol)


@pytest.mark.parametrize("s, padding", [(1, "same"), (2, ((1, 1), (1, 1))), (2, "same"),
                                        (1, ((0, 2), (2, 0)))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_3x3_parallel_path(s, padding, dtype):
    """Outputs above the threshold run on the threaded driver: MobileNet-like layers."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 40, 36, 24)).astype(dtype)
    attrs = {"kernel_size": (3, 3), "strides": (s, s), "padding": padding, "use_bias": True,
             "activation": "relu"}
    got = assert_kernel_matches("depthwise_conv2d", [x],
                                params_for("depthwise_conv2d", [x], attrs, rng), attrs)
    assert got.size >= PARALLEL_MIN_ELEMENTS // 4  # stride 2 halves each side


def test_depthwise_nan_and_inf_propagate_like_reference():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 9, 8, 5)).astype(np.float32)
    x[0, 4, 4, 1] = np.nan
    x[0, 0, 0, 2] = np.inf
    attrs = {"kernel_size": (3, 3), "padding": "same", "activation": "relu"}
    got = assert_kernel_matches("depthwise_conv2d", [x],
                                params_for("depthwise_conv2d", [x], attrs, rng), attrs)
    assert np.isnan(got[0, 3:6, 3:6, 1]).all()
