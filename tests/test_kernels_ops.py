"""The numba kernels of ``compiler.ops`` primitives against the ops' NumPy references, over
random shapes (with broadcasting), float32 and float64, and both the serial and the threaded
paths (the threaded ones are called directly: their size threshold is not what is tested)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler.ops import get_op
from runtime.kernels import elementwise_ops as ew
from runtime.kernels import reductions as red
from runtime.kernels.registry import get_kernel

DTYPES = st.sampled_from([np.float32, np.float64])
TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


@st.composite
def broadcast_shapes(draw, count):
    rank = draw(st.integers(1, 4))
    full = draw(st.lists(st.integers(0, 5), min_size=rank, max_size=rank))
    shapes = []
    for _ in range(count):
        r = draw(st.integers(0, rank))
        shapes.append(tuple(d if draw(st.booleans()) else 1 for d in full[rank - r:]))
    return shapes


def _values(rng, shape, dtype, name):
    x = rng.normal(size=shape) * 3
    if name in ("equal", "not_equal", "logical_and", "logical_or", "logical_not"):
        x = np.round(x / 3)  # ties and zeros, so equality and truthiness are exercised
    if name == "power":
        x = np.abs(x) + 0.1
    return x.astype(dtype)


def _check(got, want, dtype):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want.astype(dtype), equal_nan=True, **TOL[dtype])


@given(st.sampled_from(sorted(ew.UNARY_CODES)), st.lists(st.integers(0, 6), max_size=4),
       DTYPES, st.integers(0, 2 ** 16), st.booleans())
def test_unary_kernels_match_the_references(name, shape, dtype, seed, parallel):
    x = _values(np.random.default_rng(seed), tuple(shape), dtype, name)
    if name in ("log", "sqrt") and x.size:
        x.flat[0] = -1.0  # NaN, as NumPy gives
    out = np.full(x.shape, 7, dtype)
    if parallel and out.size:
        ew.unary_parallel(x.reshape(-1), out.reshape(-1), ew.UNARY_CODES[name])
    else:
        get_kernel(name).fn(x, out)
    _check(out, get_op(name).reference([x], {}, {}), dtype)


@given(st.data(), st.sampled_from(sorted(ew.BINARY_CODES)), DTYPES, st.integers(0, 2 ** 16),
       st.booleans())
def test_binary_kernels_broadcast_like_numpy(data, name, dtype, seed, parallel):
    rng = np.random.default_rng(seed)
    sa, sb = data.draw(broadcast_shapes(2))
    a, b = _values(rng, sa, dtype, name), _values(rng, sb, dtype, name)
    want = get_op(name).reference([a, b], {}, {})
    out = np.full(want.shape, 7, dtype)
    if parallel and out.size:
        sizes, strides = ew.layout(out.shape, a.shape, b.shape)
        ew.binary_parallel(a.reshape(-1), b.reshape(-1), out.reshape(-1), sizes, strides,
                           ew.BINARY_CODES[name])
    else:
        get_kernel(name).fn(a, b, out)
    _check(out, want, dtype)


@given(st.data(), DTYPES, st.integers(0, 2 ** 16))
def test_where_broadcasts_all_three_operands(data, dtype, seed):
    rng = np.random.default_rng(seed)
    sc, sa, sb = data.draw(broadcast_shapes(3))
    c = (rng.normal(size=sc) > 0).astype(dtype)
    a, b = rng.normal(size=sa).astype(dtype), rng.normal(size=sb).astype(dtype)
    want = get_op("where").reference([c, a, b], {}, {})
    out = np.full(want.shape, 7, dtype)
    get_kernel("where").fn(c, a, b, out)
    _check(out, want, dtype)


@st.composite
def reduction_case(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    axis = draw(st.one_of(st.none(), st.integers(-rank, rank - 1),
                          st.sets(st.integers(0, rank - 1), min_size=1).map(tuple)))
    return shape, axis, draw(st.booleans())


@given(reduction_case(), st.sampled_from(sorted(red.CODES)), DTYPES, st.integers(0, 2 ** 16))
def test_reductions_over_any_axis_set_match_numpy(case, name, dtype, seed):
    shape, axis, keepdims = case
    x = np.random.default_rng(seed).normal(size=shape).astype(dtype)
    attrs = {"axis": axis, "keepdims": keepdims}
    want = np.asarray(get_op(name).reference([x], {}, attrs))
    out = np.full(want.shape, 7, dtype)
    kernel = get_kernel(name)
    kernel.fn(x, out, *kernel.scalars(attrs, [shape], want.shape))
    _check(out, want, dtype)


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_and_min_propagate_nan_and_refuse_empty_axes(name):
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]], np.float32)
    out = np.zeros(2, np.float32)
    get_kernel(name).fn(x, out, {"axis": 1})
    assert np.isnan(out[0]) and out[1] == (6.0 if name == "max" else 4.0)
    with pytest.raises(ValueError, match="zero elements"):
        get_kernel(name).fn(np.zeros((2, 0), np.float32), np.zeros(2, np.float32), {"axis": 1})


@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.data(), DTYPES,
       st.integers(0, 2 ** 16), st.booleans())
def test_log_softmax_matches_the_reference(shape, data, dtype, seed, parallel):
    axis = data.draw(st.integers(0, len(shape) - 1))
    x = (np.random.default_rng(seed).normal(size=shape) * 30).astype(dtype)  # large: stability
    want = get_op("log_softmax").reference([x], {}, {"axis": axis})
    out = np.empty_like(x)
    if parallel:
        outer = int(np.prod(shape[:axis]))
        shape3 = (outer, shape[axis], int(np.prod(shape[axis + 1:])))
        red.log_softmax_parallel(x.reshape(shape3), out.reshape(shape3))
    else:
        get_kernel("log_softmax").fn(x, out, axis)
    assert np.isfinite(out).all()
    assert out.shape == want.shape  # |x| ~ 100: float32 rounding of x - max is ~1e-5 absolute
    np.testing.assert_allclose(out, want, rtol=TOL[dtype]["rtol"],
                               atol=2e-5 if dtype == np.float32 else 1e-12)
