"""Broadcasting element-wise ops: ``broadcast_shapes`` (concrete, symbolic, errors) and the
kernels of add/subtract/multiply/maximum/minimum/average against NumPy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_harness import assert_kernel_matches, infer, run_kernel

from compiler.broadcast import broadcast_shapes
from compiler.errors import ShapeError
from compiler.ops import Unifier, get_op
from compiler.symbolic import Dim
from runtime.kernels.broadcast import layout

N, M, H, W, C = (Dim.symbol(s) for s in "NMHWC")
BINARY = ["add", "subtract", "multiply", "maximum", "minimum", "average"]
NUMPY = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
         "maximum": np.maximum, "minimum": np.minimum}


@pytest.mark.parametrize("shapes, expected", [
    ([(2, 3), (2, 3)], (2, 3)),
    ([(2, 4), (2, 1)], (2, 4)),
    ([(2, 1), (1, 4)], (2, 4)),
    ([(5, 1, 3), (4, 1)], (5, 4, 3)),           # rank broadcasting: prepend 1s
    ([(3,), (2, 1, 1)], (2, 1, 3)),
    ([(N, 4), (N, 1)], (N, 4)),
    ([(N, H, W, 8), (N, 1, 1, 8)], (N, H, W, 8)),
    ([(1, H - 2), (N, 1)], (N, H - 2)),
    ([(N, 1), (1,)], (N, 1)),
    ([(N, None), (None, 3)], (N, 3)),           # None: not inferred yet
    ([(None, 1), (N, 1)], (N, 1)),
    ([(None, 4), (1, None)], (None, 4)),        # ``?`` vs 1 stays unknown
    ([None, (N, 4)], (N, 4)),                   # unknown rank: re-derived once known
    ([(2, 1, 3), (1, 5, 1), (2, 5, 3)], (2, 5, 3)),
])
def test_broadcast_shapes(shapes, expected):
    assert broadcast_shapes(shapes, Unifier(), "Add") == expected


def test_keras_layers_expand_lower_ranks_after_the_batch_axis():
    assert broadcast_shapes([(N, 4, 3), (N, 3)], Unifier(), "Add", after_batch=True) == (N, 4, 3)
    numpy_style = Unifier()  # NumPy aligns the batch M of the shorter shape with axis 1
    assert broadcast_shapes([(N, 4, 3), (M, 3)], numpy_style, "Add") == (N, 4, 3)
    assert numpy_style.substitutions == {"M": 4}
    with pytest.raises(ShapeError, match=r"axis 2: expected 3, received 4"):
        broadcast_shapes([(N, 2, 3), (N, 4)], Unifier(), "Add", after_batch=True)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 3))
    attrs = {"expand_after_batch": True}
    for name in BINARY:
        got = assert_kernel_matches(name, [a, b], {}, attrs)
        if name != "average":
            np.testing.assert_allclose(got, NUMPY[name](a, b[:, None, :]))


def test_symbols_that_may_differ_become_checks_not_guesses():
    unify = Unifier()
    # N vs M: one is kept and the other bound to it, so binding checks it at run time
    assert broadcast_shapes([(N, 4), (M, 4)], unify, "Add") in {(N, 4), (M, 4)}
    assert set(unify.substitutions) & {"N", "M"}
    unify = Unifier()
    assert broadcast_shapes([(H - 2, 4), (W + 1, 4)], unify, "Add") == (H - 2, 4)
    ((a, b, what),) = unify.runtime_checks
    assert (a, b) == (H - 2, W + 1) and "Add input 1 vs input 0 axis 0" in what
    with pytest.raises(ShapeError, match=r"not provably equal"):
        broadcast_shapes([(H - 2,), (W + 1,)], None, "Add")


@pytest.mark.parametrize("shapes, match", [
    ([(2, 3), (2, 4)], r"Add input 1 vs input 0 axis 1: expected 3, received 4 \(shapes "
                       r"\(2, 3\) and \(2, 4\) do not broadcast\)"),
    ([(N, H, W, 8), (N, 1, 1, 4)], r"axis 3: expected 8, received 4 \(shapes \(N, H, W, 8\) "
                                   r"and \(N, 1, 1, 4\)"),
    ([(2, 3), (2, 3, 1)], r"axis 1: expected 2, received 3"),
    ([(N, 4), (N, 4), (N, 5)], r"input 2 vs inputs 0..1 axis 1: expected 4, received 5"),
    ([(H - 2, 1), (H - 1, 1)], r"axis 0: expected H-2, received H-1"),
])
def test_broadcast_conflicts_name_axis_and_both_shapes(shapes, match):
    with pytest.raises(ShapeError, match=match):
        broadcast_shapes(shapes, Unifier(), "Add")


@pytest.mark.parametrize("name", BINARY)
def test_shape_rules_broadcast(name):
    two = infer(name, [(N, 4), (N, 1)], {})
    assert two.shape == (N, 4)
    assert infer(name, [(N, H, W, 8), (N, 1, 1, 8)], {}).shape == (N, H, W, 8)
    layer = {"add": "Add", "subtract": "Subtract", "multiply": "Multiply", "maximum": "Maximum",
             "minimum": "Minimum", "average": "Average"}[name]
    with pytest.raises(ShapeError, match=rf"^{layer} input 1 vs input 0 axis 1: expected 3"):
        infer(name, [(2, 3), (2, 4)], {})


def test_arity_comes_from_the_op():
    assert get_op("subtract").arity({}) == (2, 2)
    assert get_op("add").arity({}) == (1, None)
    assert get_op("conv2d").arity({}) == (1, 1)
    assert get_op("conv2d").arity({"residual": True}) == (2, 2)
    assert get_op("dense").arity({}) == (1, 1)


def test_layout_coalesces_axes():
    shape, strides = layout((2, 5, 6, 3), (2, 5, 6, 3), (2, 1, 1, 3))
    assert shape.tolist() == [2, 30, 3]
    assert strides.tolist() == [[90, 3, 1], [3, 0, 1]]
    shape, strides = layout((4, 3), (4, 3), (4, 3))
    assert shape.tolist() == [12] and strides.tolist() == [[1], [1]]
    shape, strides = layout((1, 1), (1, 1), (1,))
    assert shape.tolist() == [1] and strides[1].tolist() == [0]
    # n-ary folds: ``out`` may be larger than both operands of one step
    shape, strides = layout((2, 1, 3), (1,), (1, 1))
    assert shape.tolist() == [6] and strides.tolist() == [[0], [0]]
    shape, strides = layout((2, 3, 4), (2, 1, 4), (3, 1), (4,))  # any number of operands
    assert shape.tolist() == [2, 3, 4] and strides.tolist() == [[4, 0, 1], [0, 1, 0], [0, 0, 1]]


def test_fold_where_out_outgrows_both_operands():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s).astype(np.float32) for s in ((1,), (1,), (1,), (2, 1, 3))]
    for name in ("add", "maximum", "average"):
        assert_kernel_matches(name, xs, {}, {})


@st.composite
def broadcastable_shapes(draw, count):
    """``count`` shapes (ranks 1-4, sizes with many 1s) that broadcast together."""
    rank = draw(st.integers(1, 4))
    full = draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank))
    shapes = []
    for _ in range(count):
        r = draw(st.integers(1, rank))
        shapes.append(tuple(d if draw(st.booleans()) else 1 for d in full[rank - r:]))
    return shapes


@settings(max_examples=60, deadline=None)
@given(st.data(), st.sampled_from(BINARY), st.sampled_from([np.float32, np.float64]),
       st.integers(0, 2 ** 16))
def test_kernels_match_numpy_when_broadcasting(data, name, dtype, seed):
    count = 2 if name == "subtract" else data.draw(st.integers(1, 4))
    shapes = data.draw(broadcastable_shapes(count))
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    got = assert_kernel_matches(name, inputs, {}, {}, rtol=1e-6 if dtype == np.float64 else 1e-5)
    # and against NumPy written out here, not through the op's own reference
    if name == "average":
        want = sum(np.broadcast_arrays(*inputs)) / len(inputs)
    else:
        want = inputs[0]
        for x in inputs[1:]:
            want = NUMPY[name](want, x)
    np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=1e-5, atol=1e-6)
    assert got.dtype == dtype


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shapes", [
    [(64, 33, 40), (64, 33, 40)],       # equal shapes: the flat fast path, threaded
    [(64, 33, 40), (64, 1, 40)],        # broadcast, threaded
    [(8, 1, 1, 4096), (8, 12, 12, 1)],  # both operands broadcast
    [(70000,), (1,)],                   # one long row against a scalar
])
def test_large_inputs_threaded_paths_and_nan(name, shapes):
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    a.reshape(-1)[[3, 100]] = np.nan
    b.reshape(-1)[0] = np.inf
    got = assert_kernel_matches(name, [a, b], {}, {})
    assert np.isnan(got).any()


def test_maximum_minimum_propagate_nan_from_either_side():
    a = np.array([np.nan, 1.0, 2.0, -np.inf], np.float32)
    b = np.array([1.0, np.nan, -1.0, 0.0], np.float32)
    for name, fn in (("maximum", np.maximum), ("minimum", np.minimum)):
        np.testing.assert_array_equal(run_kernel(name, [a, b], {}, {}), fn(a, b))
        np.testing.assert_array_equal(run_kernel(name, [b, a], {}, {}), fn(b, a))


def test_non_contiguous_inputs():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((6, 8)).astype(np.float32)[:, ::2]
    b = np.asfortranarray(rng.standard_normal((6, 1)).astype(np.float32))
    for name in ("add", "maximum"):
        assert_kernel_matches(name, [a, b], {}, {})
