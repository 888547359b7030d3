"""Fuzzing ``compiler.ops``: random chains of ops on symbolic inputs (with broadcasting and
scalars), compiled, must equal the same chain run eagerly on the arrays (NumPy references) and
the reference executor on the compiled IR."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from compiler import Input, Model, compile, ops
from compiler.reference import run_reference

UNARY = [ops.negative, ops.abs, ops.exp, ops.tanh, ops.sigmoid, ops.relu, ops.gelu, ops.erf,
         lambda x: ops.sqrt(ops.abs(x)), lambda x: ops.log(ops.abs(x) + 1.0),
         lambda x: ops.softmax(x, axis=-1), lambda x: ops.log_softmax(x, axis=-1),
         lambda x: ops.sum(x, axis=-1, keepdims=True), lambda x: ops.mean(x, axis=1,
                                                                          keepdims=True),
         lambda x: ops.max(x, axis=(1, 2), keepdims=True), lambda x: x * 0.5,
         lambda x: 1.0 - x, lambda x: ops.transpose(ops.transpose(x, (0, 2, 1)), (0, 2, 1))]
BINARY = [ops.add, ops.subtract, ops.multiply, ops.maximum, ops.minimum,
          lambda a, b: ops.divide(a, ops.abs(b) + 1.0),
          lambda a, b: ops.where(a > b, a, b), lambda a, b: ops.where(a <= 0.0, b, 2.0),
          lambda a, b: ops.cast(ops.logical_or(a > 0.5, b < -0.5), "float32"),
          lambda a, b: ops.power(ops.abs(a) + 0.5, ops.tanh(b))]


@st.composite
def programs(draw):
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            steps.append(("u", draw(st.integers(0, len(UNARY) - 1)),
                          draw(st.integers(0, 10))))
        else:
            steps.append(("b", draw(st.integers(0, len(BINARY) - 1)),
                          draw(st.integers(0, 10)), draw(st.integers(0, 10))))
    return steps


def _run(steps, values):
    """Each step reads earlier values (by index modulo their count) and appends its result."""
    values = list(values)
    for step in steps:
        if step[0] == "u":
            values.append(UNARY[step[1]](values[step[2] % len(values)]))
        else:
            values.append(BINARY[step[1]](values[step[2] % len(values)],
                                          values[step[3] % len(values)]))
    return values[-1]


@given(programs(), st.sampled_from([(1, 4), (3, 1), (3, 4)]), st.integers(1, 3),
       st.integers(0, 2 ** 16))
def test_compiled_op_chains_equal_eager_numpy(steps, second, batch, seed):
    rng = np.random.default_rng(seed)
    x = Input((3, 4))
    y = Input(second)
    model = Model([x, y], _run(steps, [x, y]))
    a = rng.normal(size=(batch, 3, 4)).astype(np.float32)
    b = rng.normal(size=(batch,) + second).astype(np.float32)
    want = np.asarray(_run(steps, [a, b]))
    got = model(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
    plan = compile(model)
    np.testing.assert_allclose(run_reference(plan.graph, a, b), want, rtol=2e-4, atol=2e-5)


# -- dtypes: int32/int64/bool inputs through chains that keep, promote and change dtypes ---------
DTYPE_UNARY = [ops.abs, lambda v: v * 2, lambda v: v + 1, ops.logical_not,
               lambda v: ops.cast(v, "int32"), lambda v: ops.cast(v, "float32"),
               lambda v: ops.negative(ops.cast(v, "int64")), lambda v: v > 0,
               lambda v: ops.sum(v, axis=-1, keepdims=True), lambda v: ops.max(v, axis=1)]
DTYPE_BINARY = [ops.add, ops.multiply, ops.maximum, ops.minimum, ops.equal, ops.logical_or,
                lambda a, b: ops.where(a > b, a, b), lambda a, b: ops.where(ops.cast(a, "bool"),
                                                                            b, 3)]


def _run_typed(steps, values):
    values = list(values)
    for step in steps:
        if step[0] == "u":
            values.append(DTYPE_UNARY[step[1] % len(DTYPE_UNARY)](values[step[2] % len(values)]))
        else:
            values.append(DTYPE_BINARY[step[1] % len(DTYPE_BINARY)](
                values[step[2] % len(values)], values[step[3] % len(values)]))
    return values[-1]


@given(programs(), st.sampled_from(["int32", "int64", "bool", "float32"]),
       st.sampled_from([(3, 4), (3, 1), (1, 4)]), st.integers(1, 3), st.integers(0, 2 ** 16))
def test_compiled_op_chains_over_dtypes_equal_eager_numpy(steps, dtype, second, batch, seed):
    """Eager ``compiler.ops`` on arrays follow the same dtype rules as compiled plans: values
    and dtypes must agree, and the reference executor must agree with both."""
    rng = np.random.default_rng(seed)
    x = Input((3, 4), name="x")
    y = Input(second, dtype=dtype, name="y")
    model = Model([x, y], _run_typed(steps, [x, y]))
    a = rng.integers(-3, 4, size=(batch, 3, 4)).astype(np.float32) / 2
    b = rng.integers(-3, 4, size=(batch,) + second)
    b = (b > 0) if dtype == "bool" else b.astype(dtype)
    want = np.asarray(_run_typed(steps, [a, b]))
    got = model(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    plan = compile(model)
    ref = run_reference(plan.graph, a, b)
    assert ref.dtype == got.dtype
    np.testing.assert_allclose(ref, want, rtol=1e-6)
