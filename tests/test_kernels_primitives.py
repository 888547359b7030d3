"""The numba kernels of the data-movement primitives (``matmul transpose slice pad cast take
stack constant variable``) against NumPy and the ops' references, over random shapes (matmul
with broadcast batch axes and rank-1 operands), floats and ints, serial and threaded variants
(called directly: the size thresholds are not what is tested); then in compiled plans."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler import Input, Model, TensorSpec, compile, ops
from compiler.ops import get_op
from compiler.reference import run_reference
from runtime.kernels import gather, matmul, movement
from runtime.kernels.registry import get_kernel

# two dtypes keep the number of numba specializations (dtype x rank x variant) compiled by a
# test session bounded; float64 and int32 are covered by the fixed-shape tests below
DTYPES = st.sampled_from([np.float32, np.int64])
SEEDS = st.integers(0, 2 ** 16)


def _array(rng, shape, dtype):
    if np.dtype(dtype).kind == "f":
        return np.asarray(rng.normal(size=shape) * 3, dtype)
    return np.asarray(rng.integers(-9, 10, size=shape), dtype)


@st.composite
def matmul_shapes(draw):
    m, k, n = (draw(st.integers(0, 6)) for _ in range(3))
    batch = draw(st.lists(st.integers(1, 3), max_size=2))
    sa, sb = [], []
    for d in batch:  # each operand keeps a suffix of the batch axes, some of them broadcast
        sa.append(d if draw(st.booleans()) else 1)
        sb.append(d if draw(st.booleans()) else 1)
    sa = tuple(sa[len(sa) - draw(st.integers(0, len(sa))):])
    sb = tuple(sb[len(sb) - draw(st.integers(0, len(sb))):])
    a = (k,) if draw(st.booleans()) and not sa else sa + (m, k)
    b = (k,) if draw(st.booleans()) and not sb else sb + (k, n)
    return a, b


@given(matmul_shapes(), DTYPES, SEEDS, st.booleans())
def test_matmul_broadcasts_batch_axes_like_numpy(shapes, dtype, seed, parallel):
    rng = np.random.default_rng(seed)
    a, b = (_array(rng, s, dtype) for s in shapes)
    want = np.matmul(a, b)
    out = np.full(want.shape, 7, dtype)
    (matmul.matmul_parallel if parallel else matmul.matmul)(a, b, out)
    if np.dtype(dtype).kind == "f":
        np.testing.assert_allclose(out, want, rtol=2e-5, atol=1e-4)
    else:
        np.testing.assert_array_equal(out, want)
    np.testing.assert_allclose(out, get_op("matmul").reference([a, b], {}, {}), rtol=2e-5,
                               atol=1e-4)


def test_matmul_parallel_splits_rows_of_one_large_product():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 300, 130)), rng.normal(size=(130, 70))
    out = np.empty((2, 300, 70))
    matmul.matmul_parallel(a, b, out)  # over PARALLEL_MIN_MACS: (batch, row block) tasks
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)


def test_matmul_of_mixed_dtypes_loops_instead_of_blas():
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    b = np.linspace(0, 1, 12).reshape(3, 4)
    out = np.empty((2, 4))
    matmul.matmul(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)


@st.composite
def array_and_perm(draw):
    shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
    perm = tuple(draw(st.permutations(range(len(shape)))))
    return shape, perm


@given(array_and_perm(), DTYPES, SEEDS, st.booleans())
def test_transpose_equals_numpy(case, dtype, seed, parallel):
    shape, perm = case
    x = _array(np.random.default_rng(seed), shape, dtype)
    want = np.transpose(x, perm)
    out = np.empty(want.shape, dtype)
    (scalars,) = get_kernel("transpose").scalars({"axes": perm}, [shape], want.shape)
    (movement.transpose_parallel if parallel else movement.transpose)(x, out, scalars)
    np.testing.assert_array_equal(out, want)


def test_transpose_without_axes_reverses_them():
    x = np.arange(24.0).reshape(2, 3, 4)
    kernel = get_kernel("transpose")
    out = np.empty((4, 3, 2))
    kernel.fn(x, out, *kernel.scalars({}, [x.shape], out.shape))
    np.testing.assert_array_equal(out, x.T)


@st.composite
def slices(draw):
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=1, max_size=3)))
    start, size = [], []
    for d in shape:
        b = draw(st.integers(0, d))
        start.append(b)
        size.append(draw(st.sampled_from([-1, draw(st.integers(0, d - b))])))
    return shape, tuple(start), tuple(size)


@given(slices(), DTYPES, SEEDS, st.booleans())
def test_slice_equals_numpy_indexing(case, dtype, seed, parallel):
    shape, start, size = case
    x = _array(np.random.default_rng(seed), shape, dtype)
    attrs = {"start": start, "shape": size}
    want = get_op("slice").reference([x], {}, attrs)
    np.testing.assert_array_equal(
        want, x[tuple(slice(b, None if n == -1 else b + n) for b, n in zip(start, size))])
    out = np.full(want.shape, 5, dtype)
    kernel = get_kernel("slice")
    fn = kernel.parallel_fn if parallel else kernel.fn
    fn(x, out, *kernel.scalars(attrs, [shape], want.shape))
    np.testing.assert_array_equal(out, want)


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.integers(0, 3)), min_size=1,
                max_size=3),
       DTYPES, SEEDS, st.booleans(), st.sampled_from([0.0, 2.0, -1.0]))
def test_pad_equals_numpy_pad(axes, dtype, seed, parallel, value):
    shape = tuple(d for d, _, _ in axes)
    widths = tuple((b, a) for _, b, a in axes)
    x = _array(np.random.default_rng(seed), shape, dtype)
    want = np.pad(x, np.array(widths, np.int64).reshape(-1, 2), constant_values=value)
    out = np.empty(want.shape, dtype)
    kernel = get_kernel("pad")
    fn = kernel.parallel_fn if parallel else kernel.fn
    fn(x, out, *kernel.scalars({"pad_width": widths, "constant_values": value}, [shape],
                               want.shape))
    np.testing.assert_array_equal(out, want)


def test_threaded_copies_of_large_arrays():
    x = np.random.default_rng(1).normal(size=(40, 30, 50))
    out = np.empty((50, 40, 30))
    movement.transpose_parallel(x, out, (2, 0, 1))
    np.testing.assert_array_equal(out, np.transpose(x, (2, 0, 1)))
    out = np.empty((42, 31, 52))
    movement.pad_parallel(x, out, (1, 0, 2), 3.0)
    np.testing.assert_array_equal(out, np.pad(x, ((1, 1), (0, 1), (2, 0)), constant_values=3))
    out = np.empty((38, 30, 49))
    movement.slice_parallel(x, out, (2, 0, 1))
    np.testing.assert_array_equal(out, x[2:, :, 1:])


def test_threaded_copies_with_a_short_last_axis():
    """A last axis under 16 elements is walked with the one before it (``strided._row_axes``):
    NCHW -> NHWC of 3-channel images, and pads/slices of such arrays, over many row tasks."""
    x = np.random.default_rng(2).normal(size=(3, 3, 70, 45)).astype(np.float32)
    out = np.empty((3, 70, 45, 3), np.float32)
    movement.transpose_parallel(x, out, (0, 2, 3, 1))
    np.testing.assert_array_equal(out, np.transpose(x, (0, 2, 3, 1)))
    y = np.ascontiguousarray(out)
    padded = np.empty((3, 72, 46, 5), np.float32)
    movement.pad_parallel(y, padded, (0, 1, 0, 2), -1.0)
    np.testing.assert_array_equal(padded, np.pad(y, ((0, 0), (1, 1), (0, 1), (2, 0)),
                                                 constant_values=-1))
    part = np.empty((3, 60, 40, 2), np.float32)
    movement.slice_parallel(y, part, (0, 5, 3, 1))
    np.testing.assert_array_equal(part, y[:, 5:65, 3:43, 1:3])


@pytest.mark.parametrize("target", ["float32", "float64", "int32", "int64", "bool"])
@pytest.mark.parametrize("arena", [np.float32, np.float64])
def test_cast_stores_the_reference_values_in_the_arena_dtype(target, arena):
    x = np.array([[-2.7, -0.5, 0.0], [0.4, 1.5, 1e-9 + 1 / 3]], arena)
    kernel = get_kernel("cast")
    out = np.empty(x.shape, arena)
    kernel.fn(x, out, *kernel.scalars({"dtype": target}, [x.shape], x.shape))
    want = get_op("cast").reference([x], {}, {"dtype": target}).astype(arena)
    np.testing.assert_array_equal(out, want)


def test_cast_writes_int_and_bool_outputs_directly():
    x = np.array([-2.7, 0.0, 3.9])
    out = np.empty(3, np.int64)
    movement.cast(x, out, movement.TO_INT)
    np.testing.assert_array_equal(out, [-2, 0, 3])
    flags = np.empty(3, np.bool_)
    movement.cast(x, flags, movement.TO_BOOL)
    np.testing.assert_array_equal(flags, [True, False, True])


@st.composite
def take_cases(draw):
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    axis = draw(st.sampled_from([None, *range(len(shape))]))
    n = int(np.prod(shape)) if axis is None else shape[axis]
    idx_shape = tuple(draw(st.lists(st.integers(0, 4), max_size=2)))
    return shape, axis, idx_shape, n


@given(take_cases(), DTYPES, SEEDS, st.sampled_from([np.int32, np.int64]))
def test_take_gathers_like_numpy_with_negative_indices(case, dtype, seed, idx_dtype):
    shape, axis, idx_shape, n = case
    rng = np.random.default_rng(seed)
    x = _array(rng, shape, dtype)
    idx = rng.integers(-n, n, size=idx_shape).astype(idx_dtype)
    want = np.take(x, idx.astype(np.int64), axis=axis)
    out = np.full(want.shape, 3, dtype)
    kernel = get_kernel("take")
    kernel.fn(x, idx, out, *kernel.scalars({"axis": axis}, [shape, idx_shape], want.shape))
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(out, get_op("take").reference([x, idx], {}, {"axis": axis}))


@pytest.mark.parametrize("bad", [3.0, -4.0, np.nan, 1e30, 2 ** 63])
def test_take_refuses_an_out_of_range_index_before_reading(bad):
    x = np.arange(6.0).reshape(2, 3)
    idx = np.array([0.0, bad, 1.0])
    out = np.full((2, 3), 9.0)
    with pytest.raises(IndexError, match=r"position 1 .* axis 1 of size 3 .* -3\.\.2"):
        gather.take(x, idx, out, 1)
    assert (out == 9.0).all()


def test_take_through_a_plan_names_the_bad_index():
    x = Input((4,))
    i = Input((2,), batch_size=1, dtype="int64")
    plan = compile(Model([x, i], ops.take(x, i, axis=1)), TensorSpec((None, 4)),
                   TensorSpec((1, 2), dtype="int64"))
    np.testing.assert_array_equal(plan(np.eye(4, dtype=np.float32), np.array([[3, -1]])),
                                  np.eye(4)[:, [[3, 3]]])
    with pytest.raises(IndexError, match=r"index 4\b.* axis 1 of size 4"):
        plan(np.eye(4, dtype=np.float32), np.array([[0, 4]]))


@given(st.lists(st.integers(0, 4), max_size=3), st.integers(1, 4), DTYPES, SEEDS)
def test_stack_equals_numpy(shape, count, dtype, seed):
    rng = np.random.default_rng(seed)
    xs = [_array(rng, tuple(shape), dtype) for _ in range(count)]
    for axis in range(-len(shape) - 1, len(shape) + 1):
        want = np.stack(xs, axis=axis)
        out = np.full(want.shape, 4, dtype)
        kernel = get_kernel("stack")
        kernel.fn(*xs, out, *kernel.scalars({"axis": axis}, [x.shape for x in xs], want.shape))
        np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("value", [2.5, [1.0, -2.0, 3.0], [[1, 2], [3, 4]], True, np.nan])
def test_constant_and_variable_fill_their_output(value):
    attrs = {"value": np.asarray(value)}
    want = get_op("constant").reference([], {}, attrs)
    kernel = get_kernel("constant")
    out = np.empty(want.shape)
    kernel.fn(out, *kernel.scalars(attrs, [], want.shape))
    np.testing.assert_array_equal(out, want.astype(np.float64))
    copy = np.empty(want.shape)
    get_kernel("variable").fn(np.asarray(want, np.float64), copy)
    np.testing.assert_array_equal(copy, out)


def test_data_movement_plans_are_generated_code_end_to_end():
    """A chain of the jittable primitives compiles into one generated function (no
    Python-level step) and equals NumPy and the reference executor."""
    x = Input((3, 4))
    w = np.linspace(-1, 1, 20).reshape(4, 5).astype(np.float32)
    y = ops.matmul(x, w)                                    # (N, 3, 5)
    y = ops.transpose(y, (0, 2, 1))                         # (N, 5, 3)
    y = ops.slice(y, (0, 1, 0), (-1, 3, 2))                 # (N, 3, 2)
    y = ops.pad(y, ((0, 0), (1, 0), (0, 2)), constant_values=-2.5)  # (N, 4, 4)
    y = ops.cast(ops.matmul(y, ops.transpose(y, (0, 2, 1))), "int32")
    plan = compile(Model(x, y), TensorSpec((None, 3, 4)))
    assert plan.executor == "codegen" and plan._forward is not None
    for batch in (0, 2, 5):
        xs = np.random.default_rng(batch).normal(size=(batch, 3, 4)).astype(np.float32)
        t = np.transpose(xs @ w, (0, 2, 1))[:, 1:4, 0:2]
        t = np.pad(t, ((0, 0), (1, 0), (0, 2)), constant_values=-2.5)
        with np.errstate(invalid="ignore"):
            want = t @ np.transpose(t, (0, 2, 1))
        got = plan(xs)
        finite = np.isfinite(want)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got[finite], want[finite].astype(np.int32))
        ref = run_reference(plan.graph, xs)
        np.testing.assert_array_equal(got[finite], np.asarray(ref)[finite])
