"""Pooling and zero padding: shape rules, kernels vs the NumPy reference, reference vs torch."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_harness import assert_kernel_matches, infer, reference

from compiler.errors import ShapeError
from compiler.symbolic import Dim

N, H, W = Dim.symbol("N"), Dim.symbol("H"), Dim.symbol("W")


def pool(size=2, strides=None, padding="valid"):
    return {"pool_size": (size, size), "padding": padding,
            "strides": None if strides is None else (strides, strides)}


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("shape, attrs, expected", [
    ((2, 8, 9, 3), pool(), (2, 4, 4, 3)),
    ((2, 8, 9, 3), pool(padding="same"), (2, 4, 5, 3)),
    ((2, 8, 9, 3), pool(3, 2), (2, 3, 4, 3)),
    ((2, 8, 9, 3), pool(3, 1, "same"), (2, 8, 9, 3)),
    ((N, 8, 9, 3), pool(), (N, 4, 4, 3)),
    ((None, None, 9, None), pool(), (None, None, 4, None)),
    (None, pool(), (None, None, None, None)),
])
def test_pool_shape_table(name, shape, attrs, expected):
    assert infer(name, [shape], attrs).shape == expected


@pytest.mark.parametrize("size, strides, padding", [
    (2, None, "valid"), (3, 2, "valid"), (2, None, "same"), (3, 2, "same"), (3, 1, "same")])
def test_pool_symbolic_sizes_evaluate_like_concrete(size, strides, padding):
    attrs = pool(size, strides, padding)
    sym = infer("max_pool2d", [(N, H, W, 3)], attrs).shape
    for h in range(size, 25):
        concrete = infer("max_pool2d", [(1, h, h + 1, 3)], attrs).shape
        assert (sym[1].evaluate({"H": h}), sym[2].evaluate({"W": h + 1})) == concrete[1:3]


@pytest.mark.parametrize("shape, attrs, match", [
    ((1, 1, 8, 3), pool(), (r"MaxPooling2D: input axis 1 \(height\) is too small.*size 2.*"
                            r"received 1")),
    ((1, 8, 8), pool(), r"MaxPooling2D expects rank 4"),
    ((1, 8, 8, 3), pool(padding="causal"), r"padding must be 'valid' or 'same'"),
    ((1, 8, 8, 3), {"pool_size": (0, 2)}, r"pool_size must be a positive int"),
])
def test_pool_shape_errors(shape, attrs, match):
    with pytest.raises(ShapeError, match=match):
        infer("max_pool2d", [shape], attrs)


@pytest.mark.parametrize("name", ["global_avg_pool2d", "global_max_pool2d"])
def test_global_pool_shapes(name):
    assert infer(name, [(N, H, W, 5)], {}).shape == (N, 5)
    assert infer(name, [(N, H, W, 5)], {"keepdims": True}).shape == (N, 1, 1, 5)
    assert infer(name, [None], {}).shape == (None, None)
    with pytest.raises(ShapeError, match="expects rank 4, received rank 3"):
        infer(name, [(2, 3, 4)], {})


def test_zero_padding_shapes():
    attrs = {"padding": ((1, 2), (3, 4))}
    assert infer("zero_padding2d", [(2, 5, 6, 3)], attrs).shape == (2, 8, 13, 3)
    sym = infer("zero_padding2d", [(N, H, W, 3)], attrs).shape
    assert sym[1].evaluate({"H": 5}) == 8 and sym[2].evaluate({"W": 6}) == 13
    assert infer("zero_padding2d", [(2, 5, 6, 3)], {"padding": 1}).shape == (2, 7, 8, 3)
    assert infer("zero_padding2d", [(2, 5, 6, 3)], {"padding": (1, 2)}).shape == (2, 7, 10, 3)
    with pytest.raises(ShapeError, match="ZeroPadding2D: padding must be"):
        infer("zero_padding2d", [(2, 5, 6, 3)], {"padding": ((1, -1), (0, 0))})


@st.composite
def pool_cases(draw):
    size = draw(st.integers(1, 4))
    strides = draw(st.sampled_from([None, 1, 2, 3]))
    attrs = {"pool_size": (size, draw(st.integers(1, 4))),
             "strides": None if strides is None else (strides, draw(st.integers(1, 3))),
             "padding": draw(st.sampled_from(["valid", "same"]))}
    shape = (draw(st.integers(1, 3)), draw(st.integers(4, 14)), draw(st.integers(4, 14)),
             draw(st.integers(1, 20)))
    return shape, attrs, draw(st.sampled_from([np.float32, np.float64])), draw(st.integers(0, 99))


@settings(max_examples=60, deadline=None)
@given(pool_cases(), st.sampled_from(["max_pool2d", "avg_pool2d"]))
def test_pool_kernels_match_reference(case, name):
    shape, attrs, dtype, seed = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    assert_kernel_matches(name, [x], {}, attrs)


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d", "global_max_pool2d",
                                  "global_avg_pool2d"])
def test_pool_nan_propagates_like_numpy(name):
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 4)).astype(np.float32)
    x[0, 1, 1, 2] = np.nan
    x[1, 4, 4, 0] = np.inf
    attrs = {} if name.startswith("global") else pool(3, 2, "same")
    got = assert_kernel_matches(name, [x], {}, attrs)
    assert np.isnan(got).any()


def test_large_inputs_take_parallel_paths():
    x = np.random.default_rng(1).standard_normal((4, 64, 64, 32)).astype(np.float32)
    for name, attrs in (("max_pool2d", pool(3, 2, "same")), ("avg_pool2d", pool(2)),
                        ("global_avg_pool2d", {}), ("global_max_pool2d", {"keepdims": True}),
                        ("zero_padding2d", {"padding": ((3, 3), (3, 3))})):
        assert_kernel_matches(name, [x], {}, attrs)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3),
       st.integers(0, 99))
def test_zero_padding_kernel_matches_reference(top, bottom, left, right, seed):
    x = np.random.default_rng(seed).standard_normal((2, 5, 4, 3)).astype(np.float32)
    assert_kernel_matches("zero_padding2d", [x], {}, {"padding": ((top, bottom), (left, right))})


@pytest.mark.parametrize("name", ["global_avg_pool2d", "global_max_pool2d"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pool_kernels(name, keepdims):
    x = np.random.default_rng(2).standard_normal((3, 7, 5, 6))
    assert_kernel_matches(name, [x], {}, {"keepdims": keepdims})


@settings(max_examples=40, deadline=None)
@given(pool_cases(), st.sampled_from(["max_pool2d", "avg_pool2d"]))
def test_pool_reference_matches_torch(case, name):
    torch = pytest.importorskip("torch")
    shape, attrs, _, seed = case
    x = np.random.default_rng(seed).standard_normal(shape)
    k = attrs["pool_size"]
    s = k if attrs["strides"] is None else attrs["strides"]
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    if attrs["padding"] == "same":
        pads = []
        for i in (1, 0):  # torch pads W first
            size, out = shape[1 + i], -(-shape[1 + i] // s[i])
            total = max((out - 1) * s[i] + k[i] - size, 0)
            pads += [total // 2, total - total // 2]
        if name == "max_pool2d":
            xt = torch.nn.functional.pad(xt, pads, value=-np.inf)
            want = torch.nn.functional.max_pool2d(xt, k, s)
        else:  # TF's 'same' average excludes padded cells: divide by the count of real ones
            total = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(xt, pads), k, s,
                                                   divisor_override=1)
            ones = torch.nn.functional.pad(torch.ones_like(xt[:1, :1]), pads)
            want = total / torch.nn.functional.avg_pool2d(ones, k, s, divisor_override=1)
    else:
        fn = torch.nn.functional.max_pool2d if name == "max_pool2d" else \
            torch.nn.functional.avg_pool2d
        want = fn(xt, k, s)
    np.testing.assert_allclose(reference(name, [x], {}, attrs),
                               want.permute(0, 2, 3, 1).numpy(), rtol=1e-10, atol=1e-12)
