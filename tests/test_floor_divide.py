"""``ops.floor_divide`` / ``ops.mod`` and the ``//`` / ``%`` operators on symbolic tensors: shape
and dtype rules, and compiled plans (both executors) against NumPy for int and float dtypes,
negative operands (floor, the divisor's sign), zero divisors (NumPy's 0 for ints, ``inf``/``nan``
for floats) and int64 edge values."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compiler import Dim, Input, Model, compile, ops
from compiler.errors import DTypeError, ShapeError
from compiler.ops import Unifier, get_op
from compiler.types import TensorType
from runtime.kernels.registry import get_kernel

#: name -> (function on two tensors, NumPy function)
CASES = {
    "floor_divide": (ops.floor_divide, np.floor_divide),
    "mod": (ops.mod, np.remainder),
    "//": (lambda a, b: a // b, np.floor_divide),
    "%": (lambda a, b: a % b, np.remainder),
    "scalar //": (lambda a, b: a // 3, lambda a, b: np.floor_divide(a, a.dtype.type(3))),
    "scalar r%": (lambda a, b: 7 % b, lambda a, b: np.remainder(b.dtype.type(7), b)),
}


@functools.cache
def _plan(executor: str, dtype: str):
    x, y = Input((3, 4), dtype=dtype, name="x"), Input((1, 4), dtype=dtype, name="y")
    return compile(Model([x, y], [fn(x, y) for fn, _ in CASES.values()]), executor=executor)


def _want(x, y):
    with np.errstate(all="ignore"):
        return [f(x, y) for _, f in CASES.values()]


def _check(plan, x, y):
    for name, got, want in zip(CASES, plan(x, y), _want(x, y)):
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64"])
@pytest.mark.parametrize("executor", ["codegen", "steps"])
def test_negative_operands_and_zero_divisors_match_numpy(dtype, executor):
    x = np.array([[7, -7, 0, 5], [-1, 1, -6, 6], [9, -9, 3, -3]] * 2, dtype).reshape(2, 3, 4)
    y = np.array([[2, -2, 0, -4]] * 2, dtype).reshape(2, 1, 4)  # a zero divisor
    _check(_plan(executor, dtype), x, y)


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(["int32", "int64"]), st.data())
def test_ints_over_their_whole_range_match_numpy(dtype, data):
    info = np.iinfo(dtype)
    x = data.draw(hnp.arrays(dtype, (2, 3, 4), elements=st.integers(info.min, info.max)))
    y = data.draw(hnp.arrays(dtype, (2, 1, 4), elements=st.integers(info.min, info.max)
                             | st.sampled_from([-1, 0, 1, 2, -3])))
    _check(_plan("steps", dtype), x, y)


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(["float32", "float64"]), st.data())
def test_floats_match_numpy(dtype, data):
    values = st.floats(-1e6, 1e6, width=32) | st.sampled_from([0.0, -0.5, 0.1, 3.0, -2.5])
    x = data.draw(hnp.arrays(dtype, (1, 3, 4), elements=values))
    y = data.draw(hnp.arrays(dtype, (1, 1, 4), elements=values))
    _check(_plan("codegen", dtype), x, y)


def test_int_min_divided_by_minus_one_wraps_as_numpy_does():
    x = np.array([np.iinfo(np.int64).min, -5, 2 ** 62 + 1], np.int64)
    y = np.full(3, -1, np.int64)
    for name, fn in (("floor_divide", np.floor_divide), ("mod", np.remainder)):
        out = np.empty_like(x)
        get_kernel(name).fn(x, y, out)
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(out, fn(x, y), err_msg=name)


def test_shape_and_dtype_rules():
    n = Dim.symbol("N")
    rule = get_op("floor_divide").shape_rule
    out = rule([TensorType((n, 4), np.int32), TensorType((1, 4), np.int32)], {}, {}, Unifier())
    assert out.shape == (n, 4) and out.dtype == np.int32
    out = rule([TensorType((n, 4), np.int32), TensorType((4,), np.float32)], {}, {}, Unifier())
    assert out.dtype == np.float32
    with pytest.raises(ShapeError, match=r"\(N, 4\).*\(3,\)|4.*3"):
        rule([TensorType((n, 4), np.int32), TensorType((3,), np.int32)], {}, {}, Unifier())
    with pytest.raises(DTypeError, match="mod of two bool tensors"):
        get_op("mod").shape_rule([TensorType((2,), bool)] * 2, {}, {}, Unifier())
    x = Input((4,), dtype="int64")
    assert (x // 2).dtype == np.int64 and (x % 2.5).dtype.kind == "f"


def test_eager_arrays_follow_numpy():
    a, b = np.array([-7, 7], np.int32), np.array([2, 0], np.int32)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(ops.floor_divide(a, b), np.floor_divide(a, b))
        np.testing.assert_array_equal(ops.mod(a, b), np.remainder(a, b))
