"""add / multiply / concatenate / softmax(axis): shape rules, kernels vs NumPy, torch softmax."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_harness import assert_kernel_matches, infer, reference

from compiler.errors import ShapeError
from compiler.ops import Unifier, get_op
from compiler.symbolic import Dim
from compiler.types import TensorType

N, L = Dim.symbol("N"), Dim.symbol("L")


@pytest.mark.parametrize("name", ["add", "multiply"])
def test_elementwise_shapes(name):
    assert infer(name, [(2, 3), (2, 3), (2, 3)], {}).shape == (2, 3)
    assert infer(name, [(N, 3), (N, 3)], {}).shape == (N, 3)
    assert infer(name, [(N, None), (None, 3)], {}).shape == (N, 3)
    assert infer(name, [None, (N, 4)], {}).shape == (N, 4)
    layer = {"add": "Add", "multiply": "Multiply"}[name]
    with pytest.raises(ShapeError, match=rf"{layer} input 1 vs input 0 axis 1: expected 3, "
                                         r"received 4"):
        infer(name, [(2, 3), (2, 4)], {})
    # ranks broadcast as in NumPy (leading 1s), so a rank mismatch is only an error on a conflict
    assert infer(name, [(2, 3), (5, 1, 1)], {}).shape == (5, 2, 3)
    with pytest.raises(ShapeError, match=r"axis 1: expected 2, received 3 \(shapes \(2, 3\) and "
                                         r"\(2, 3, 1\) do not broadcast\)"):
        infer(name, [(2, 3), (2, 3, 1)], {})
    # mixed dtypes promote as compiler.ops does (Keras 3), no longer refused
    mixed = [TensorType((2,), np.float32), TensorType((2,), np.float64)]
    assert get_op(name).shape_rule(mixed, {}, {}, Unifier()).dtype == np.float64
    mixed = [TensorType((2,), np.int32), TensorType((2,), np.float32)]
    assert get_op(name).shape_rule(mixed, {}, {}, Unifier()).dtype == np.float32


@pytest.mark.parametrize("shapes, axis, expected", [
    ([(2, 3), (2, 5)], -1, (2, 8)),
    ([(2, 3), (4, 3)], 0, (6, 3)),
    ([(N, 4, 3), (N, 4, 5), (N, 4, 1)], 2, (N, 4, 9)),
    ([(N, L, 3), (N, L, 3)], 1, (N, L * 2, 3)),
    ([(N, None), (N, 5)], -1, (N, None)),
    ([None, (N, 5)], -1, (N, None)),
])
def test_concatenate_shapes(shapes, axis, expected):
    assert infer("concatenate", shapes, {"axis": axis}).shape == expected


@pytest.mark.parametrize("shapes, axis, match", [
    ([(2, 3), (3, 5)], -1, r"Concatenate input 1 axis 0: expected 2, received 3"),
    ([(2, 3), (2, 3, 1)], -1, r"same rank"),
    ([(2, 3), (2, 3)], 2, r"axis 2 is out of range for rank 2"),
])
def test_concatenate_errors(shapes, axis, match):
    with pytest.raises(ShapeError, match=match):
        infer("concatenate", shapes, {"axis": axis})


def test_softmax_shapes():
    assert infer("softmax", [(N, 3, 4)], {"axis": 1}).shape == (N, 3, 4)
    with pytest.raises(ShapeError, match=r"Softmax: axis 3 is out of range for rank 3"):
        infer("softmax", [(N, 3, 4)], {"axis": 3})


shapes = st.lists(st.integers(1, 7), min_size=1, max_size=4).map(tuple)


@settings(max_examples=40, deadline=None)
@given(shapes, st.integers(1, 4), st.sampled_from(["add", "multiply"]),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 99))
def test_elementwise_kernels_match_reference(shape, count, name, dtype, seed):
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(shape).astype(dtype) for _ in range(count)]
    assert_kernel_matches(name, inputs, {}, {})


@settings(max_examples=40, deadline=None)
@given(shapes, st.data(), st.integers(1, 4), st.integers(0, 99))
def test_concatenate_kernel_matches_reference(shape, data, count, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(seed)
    inputs = []
    for _ in range(count):
        s = list(shape)
        s[axis] = data.draw(st.integers(0, 4))
        inputs.append(rng.standard_normal(s).astype(np.float32))
    assert_kernel_matches("concatenate", inputs, {}, {"axis": axis})


@settings(max_examples=40, deadline=None)
@given(shapes, st.data(), st.sampled_from([np.float32, np.float64]), st.integers(0, 99))
def test_softmax_kernel_matches_reference(shape, data, dtype, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = (np.random.default_rng(seed).standard_normal(shape) * 5).astype(dtype)
    got = assert_kernel_matches("softmax", [x], {}, {"axis": axis}, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=axis), 1.0, rtol=1e-5)


def test_large_inputs_and_nan():
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((64, 33, 40)).astype(np.float32) for _ in range(2))
    a[1, 2, 3] = np.nan
    b[4, 5, 6] = np.inf
    for name in ("add", "multiply"):
        assert_kernel_matches(name, [a, b, a], {}, {})
    assert_kernel_matches("concatenate", [a, b], {}, {"axis": 1})
    for axis in (0, 1, 2):
        got = assert_kernel_matches("softmax", [a], {}, {"axis": axis}, rtol=1e-5, atol=1e-6)
        assert np.isnan(got).any()


@settings(max_examples=30, deadline=None)
@given(shapes, st.data(), st.integers(0, 99))
def test_softmax_reference_matches_torch(shape, data, seed):
    torch = pytest.importorskip("torch")
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.random.default_rng(seed).standard_normal(shape) * 5
    np.testing.assert_allclose(reference("softmax", [x], {}, {"axis": axis}),
                               torch.softmax(torch.from_numpy(x), dim=axis).numpy(),
                               rtol=1e-12, atol=1e-14)
