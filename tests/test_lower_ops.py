"""The lower tier's fast NumPy ops (``runtime.lower_ops``) against the op references.

Each case runs the fast implementation and the reference (``OpDef.reference``, float64) on the
same float32 inputs: they agree within the reference tests' tolerance, over strides, dilation,
padding, groups, depth multipliers, residuals and activations.
"""

from __future__ import annotations

import numpy as np
import pytest

from compiler.ops import get_op
from runtime.lower_ops import FAST

RTOL, ATOL = 1e-4, 1e-5
rng = np.random.default_rng(7)


def _f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _check(op, inputs, params, attrs):
    got = FAST[op](inputs, params, attrs)
    want = get_op(op).reference(inputs, params, attrs)
    assert got is not None and got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


CONVS = [  # (kernel, cin, cout, strides, dilation, padding, groups, activation, residual, bias)
    ((3, 3), 4, 6, (1, 1), (1, 1), "same", 1, "relu", False, True),
    ((1, 1), 5, 7, (1, 1), (1, 1), "valid", 1, "linear", True, True),    # plain GEMM
    ((1, 1), 4, 4, (2, 2), (1, 1), "valid", 1, "linear", False, False),  # strided 1x1
    ((7, 7), 3, 5, (2, 2), (1, 1), "same", 1, "relu", False, True),      # a ResNet stem
    ((3, 2), 6, 4, (1, 2), (2, 1), "valid", 2, "tanh", False, True),     # grouped, dilated
    ((3, 3), 6, 6, (1, 1), (1, 1), "same", 3, "sigmoid", True, False),
]


@pytest.mark.parametrize("case", CONVS, ids=lambda c: f"{c[0]}s{c[3]}d{c[4]}{c[5]}g{c[6]}")
def test_conv2d(case):
    k, cin, cout, strides, dilation, padding, groups, act, residual, bias = case
    x = _f32(2, 11, 9, cin)
    params = {"kernel": _f32(*k, cin // groups, cout)}
    if bias:
        params["bias"] = _f32(cout)
    attrs = {"kernel_size": k, "strides": strides, "dilation": dilation, "padding": padding,
             "groups": groups, "activation": act, "residual": residual}
    inputs = [x]
    if residual:
        out = get_op("conv2d").reference([x], {"kernel": params["kernel"]},
                                         dict(attrs, residual=False, activation="linear"))
        inputs.append(_f32(*out.shape))
    _check("conv2d", inputs, params, attrs)


@pytest.mark.parametrize("strides,padding,mult", [((1, 1), "same", 1), ((2, 2), "valid", 2),
                                                  ((2, 1), "same", 3)])
def test_depthwise_conv2d(strides, padding, mult):
    c = 4
    params = {"kernel": _f32(3, 3, c, mult), "bias": _f32(c * mult)}
    attrs = {"kernel_size": (3, 3), "strides": strides, "padding": padding,
             "activation": "relu"}
    _check("depthwise_conv2d", [_f32(2, 9, 8, c)], params, attrs)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("pool,strides,padding", [((2, 2), None, "valid"),
                                                  ((3, 3), (2, 2), "same"),
                                                  ((2, 3), (1, 2), "same")])
def test_pooling(op, pool, strides, padding):
    attrs = {"pool_size": pool, "strides": strides, "padding": padding}
    _check(op, [_f32(2, 9, 7, 3)], {}, attrs)


def test_uncovered_dtypes_fall_back_to_the_reference():
    x = rng.integers(-3, 3, (1, 5, 5, 2)).astype(np.int32)
    assert FAST["max_pool2d"]([x], {}, {"pool_size": (2, 2)}) is None
    assert FAST["conv2d"]([x.astype(np.float64)], {"kernel": _f32(3, 3, 2, 2)},
                          {"kernel_size": (3, 3)}) is None  # mixed dtypes
