"""Dtypes per value: int/bool inputs end to end, promotion, bool results, casts, validation.

Every compiled result is checked against hand-written NumPy and the reference executor
(``compiler/reference.py``), on both executors (generated code and the step executor).
"""

import os

import numpy as np
import pytest

from compiler import Input, Model, Sequential, TensorSpec, compile, layers, ops
from compiler.errors import DTypeError
from compiler.reference import run_reference

EXECUTORS = ["codegen", "steps"]


def _both(model, *arrays):
    """The outputs of ``model`` compiled for each executor, checked against the reference."""
    results = []
    for executor in EXECUTORS:
        plan = compile(model, executor=executor)
        got = plan(*arrays)
        ref = run_reference(plan.graph, *arrays)
        for g, r in zip(got if isinstance(got, list) else [got],
                        ref if isinstance(ref, list) else [ref]):
            assert g.dtype == r.dtype, (executor, g.dtype, r.dtype)
            np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-6)
        results.append(got)
    return results[0]


# -- take with integer ids ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("axis", [0, None])
def test_take_with_int_ids_matches_numpy(dtype, axis):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(11, 4)).astype(np.float32)
    ids = Input((6,), dtype=dtype, name="ids")
    model = Model(ids, ops.take(table, ids, axis=axis))
    limit = 11 if axis == 0 else table.size
    data = rng.integers(-limit, limit, size=(3, 6)).astype(dtype)
    got = _both(model, data)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.take(table, data, axis=axis))


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("bad", [11, -12, 2 ** 31 - 1])
def test_take_out_of_range_ids_raise_instead_of_reading_out_of_bounds(executor, bad):
    table = np.arange(44, dtype=np.float32).reshape(11, 4)
    ids = Input((3,), dtype="int64", name="ids")
    plan = compile(Model(ids, ops.take(table, ids, axis=0)), executor=executor)
    with pytest.raises(IndexError, match=rf"index {bad}\b.*out of range for axis 0 of size 11"):
        plan(np.array([[0, bad, 1]], np.int64))
    np.testing.assert_array_equal(plan(np.array([[0, 10, -11]])), table[[[0, 10, -11]]])


def test_take_refuses_float_indices_at_build_time():
    x = Input((3,))
    with pytest.raises(DTypeError, match="take: indices must be int32 or int64, received float32"):
        ops.take(np.zeros((4, 2), np.float32), x, axis=0)


# -- comparisons, where, logical ops --------------------------------------------------------------
def test_comparisons_yield_bool_outputs():
    a, b = Input((5,), name="a"), Input((5,), name="b")
    model = Model([a, b], [a > b, ops.less_equal(a, 0.0), ops.equal(a, b), a != b])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    y = np.where(rng.random((4, 5)) < 0.3, x, rng.normal(size=(4, 5))).astype(np.float32)
    got = _both(model, x, y)
    want = [x > y, x <= 0, x == y, x != y]
    for g, w in zip(got, want):
        assert g.dtype == np.bool_
        np.testing.assert_array_equal(g, w)


def test_where_with_a_computed_mask():
    x = Input((6,), name="x")
    ids = Input((6,), dtype="int32", name="ids")
    mask = ops.logical_and(x > 0.0, ids < 3)
    model = Model([x, ids], [ops.where(mask, x, -1.0), ops.where(mask, ids, 7), mask])
    rng = np.random.default_rng(2)
    xv = rng.normal(size=(3, 6)).astype(np.float32)
    iv = rng.integers(0, 6, size=(3, 6)).astype(np.int32)
    f, i, m = _both(model, xv, iv)
    want_mask = (xv > 0) & (iv < 3)
    np.testing.assert_array_equal(m, want_mask)
    np.testing.assert_array_equal(f, np.where(want_mask, xv, np.float32(-1)))
    assert i.dtype == np.int32
    np.testing.assert_array_equal(i, np.where(want_mask, iv, 7))


def test_bool_inputs_and_logical_ops():
    p, q = Input((4,), dtype="bool", name="p"), Input((4,), dtype="bool", name="q")
    model = Model([p, q], [ops.logical_and(p, q), ops.logical_or(p, q), ops.logical_not(p),
                           ops.sum(ops.cast(p, "int32"), axis=-1)])
    pv = np.array([[True, False, True, False]] * 2)
    qv = np.array([[True, True, False, False], [False, False, False, True]])
    a, o, n, s = _both(model, pv, qv)
    for got, want in ((a, pv & qv), (o, pv | qv), (n, ~pv)):
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, want)
    assert s.dtype == np.int32
    np.testing.assert_array_equal(s, pv.sum(-1))


# -- casts and promotion --------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["int32", "int64", "bool", "float64", "float32"])
def test_cast_round_trips(target):
    x = Input((5,), name="x")
    there = ops.cast(x, target)
    model = Model(x, [there, ops.cast(there, "float32")])
    xv = np.array([[-2.0, -1.0, 0.0, 1.0, 3.0], [4.0, 0.0, 0.0, 1.0, -7.0]], np.float32)
    got_there, got_back = _both(model, xv)
    assert got_there.dtype == np.dtype(target)
    np.testing.assert_array_equal(got_there, xv.astype(target))
    np.testing.assert_array_equal(got_back, xv.astype(target).astype(np.float32))


def test_mixed_int_float_promotion_follows_keras():
    """int op float -> the float (not float64 as NumPy says); int32 op int64 -> int64; integer
    division and exp -> float32; a Python float makes ints float32, a Python int keeps them."""
    i32, i64 = Input((3,), dtype="int32", name="i32"), Input((3,), dtype="int64", name="i64")
    f = Input((3,), name="f")
    outs = [i64 + f, i32 * i64, i32 / i32, ops.exp(i32), i32 * 2.5, i32 + 1, ops.mean(i32, -1),
            ops.maximum(i32, f)]
    model = Model([i32, i64, f], outs)
    a = np.array([[1, 2, 3], [4, -5, 6]], np.int32)
    b = np.array([[7, 8, -9], [1, 1, 1]], np.int64)
    c = np.array([[0.5, 1.5, -2.0], [3.0, 0.0, 1.0]], np.float32)
    got = _both(model, a, b, c)
    want = [(b + c).astype(np.float32), a.astype(np.int64) * b, (a / a).astype(np.float32),
            np.exp(a).astype(np.float32), (a * 2.5).astype(np.float32), a + 1,
            a.mean(-1).astype(np.float32), np.maximum(a, c).astype(np.float32)]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_dense_on_int_input_promotes_to_the_model_dtype_like_keras():
    """Keras' Dense computes ``matmul(int_inputs, float_kernel)`` -> float32; so do we."""
    ids = Input((4,), dtype="int32", name="ids")
    dense = layers.Dense(3, name="proj")
    model = Model(ids, dense(ids))
    data = np.array([[1, 0, 2, 5], [3, 3, -1, 0]], np.int32)
    got = _both(model, data)
    kernel, bias = dense.get_weights()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, data.astype(np.float32) @ kernel + bias, rtol=1e-6)


def test_dense_on_int_input_agrees_with_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    ids = Input((4,), dtype="int32", name="ids")
    dense = layers.Dense(3, name="proj")
    model = Model(ids, dense(ids))
    data = np.array([[1, 0, 2, 5], [3, 3, -1, 0]], np.int32)
    ref = keras.layers.Dense(3)
    ref.build((None, 4))
    ref.set_weights(dense.get_weights())
    want = keras.ops.convert_to_numpy(ref(data))
    got = model(data)
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_float16_input_is_cast_to_float32_at_the_boundary():
    x = Input((3,), dtype="float16", name="half")
    model = Model(x, x * 2.0)
    got = model(np.array([[1.5, 2.0, -0.25]], np.float16))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [[3.0, 4.0, -0.5]])


def test_deferred_model_on_int_arrays_still_computes_in_floats():
    model = Sequential([layers.Dense(2)])
    data = np.array([[1, 2, 3]], np.int64)
    got = model(data)
    kernel, bias = model.layers[0].get_weights()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, data @ kernel + bias, rtol=1e-6)


# -- input validation -----------------------------------------------------------------------------
def test_int_input_validation_names_the_input():
    ids = Input((3,), dtype="int32", name="token_ids")
    plan = compile(Model(ids, ids + 1))
    with pytest.raises(DTypeError, match=r"input 'token_ids' is int32; received dtype float64 "
                                         r"with the non-integral value 1.5"):
        plan(np.array([[1.0, 1.5, 2.0]]))
    with pytest.raises(DTypeError, match="input 'token_ids'.*non-integral value nan"):
        plan(np.array([[1.0, np.nan, 2.0]]))
    with pytest.raises(DTypeError, match=r"input 'token_ids' is int32; received values "
                                         r"0..4294967296 outside its range"):
        plan(np.array([[0, 2 ** 32, 1]], np.int64))
    np.testing.assert_array_equal(plan(np.array([[1.0, 2.0, 3.0]])), [[2, 3, 4]])
    assert plan(np.array([[1, 2, 3]], np.int64)).dtype == np.int32


def test_float_and_bool_inputs_accept_what_keras_accepts():
    x = Input((2,), name="x")
    plan = compile(Model(x, x * 1.0))
    np.testing.assert_array_equal(plan(np.array([[1, 2]], np.int64)), [[1.0, 2.0]])
    p = Input((2,), dtype="bool", name="flags")
    bplan = compile(Model(p, ops.logical_not(p)))
    np.testing.assert_array_equal(bplan(np.array([[True, False]])), [[False, True]])
    np.testing.assert_array_equal(bplan(np.array([[1, 0]])), [[False, True]])
    with pytest.raises(DTypeError, match="input 'flags' is bool; received dtype int64 with "
                                         "values other than 0 and 1"):
        bplan(np.array([[2, 0]]))


def test_signature_records_each_input_dtype():
    ids, x = Input((3,), dtype="int64", name="ids"), Input((3,), name="x")
    plan = compile(Model([ids, x], ops.cast(ids, "float32") + x))
    assert [t.dtype for t in plan.signature.types] == [np.dtype(np.int64), np.dtype(np.float32)]
    assert "int64" in repr(plan)


def test_tensorspec_dtype_is_honored():
    model = Sequential([layers.Flatten()])
    plan = compile(model, TensorSpec((None, 2, 2), dtype="int32"))
    got = plan(np.arange(8, dtype=np.int32).reshape(2, 2, 2))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.arange(8).reshape(2, 4))


def test_int_image_through_conv_computes_in_floats_and_max_pooling_keeps_ints():
    """Conv2D on an int image reads it converted to float32 (Keras promotes the same way);
    MaxPooling2D and Flatten keep int32, as Keras 3 does."""
    img = Input((6, 6, 1), dtype="int32", name="img")
    conv = layers.Conv2D(2, 3, name="conv")
    pooled = layers.MaxPooling2D(name="pool")(img)
    model = Model(img, [conv(img), pooled, layers.Flatten(name="flat")(img)])
    data = np.random.default_rng(5).integers(-9, 10, size=(2, 6, 6, 1)).astype(np.int32)
    c, p, f = _both(model, data)
    assert (c.dtype, p.dtype, f.dtype) == (np.float32, np.int32, np.int32)
    np.testing.assert_array_equal(p, data.reshape(2, 3, 2, 3, 2, 1).max(axis=(2, 4)))
    np.testing.assert_array_equal(f, data.reshape(2, -1))


@pytest.mark.parametrize("bad", ["0:", "01"])
def test_dtype_strings_numpy_cannot_parse_are_a_dtype_error(bad):
    """Found by the long fuzz profile: NumPy raises ValueError/SyntaxError for these."""
    with pytest.raises(DTypeError, match="unknown dtype"):
        layers.Flatten(dtype=bad)
    with pytest.raises(DTypeError, match="unknown dtype"):
        Input((3,), dtype=bad)
