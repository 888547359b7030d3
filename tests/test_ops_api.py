"""``compiler.ops``: Keras 3 names, eager on arrays (= NumPy), symbolic on tensors (compiled
plans and the reference executor = NumPy), shape rules (concrete, symbolic, errors) and the
Python operators on symbolic tensors."""

import math

import numpy as np
import pytest

from compiler import Input, Model, ShapeError, TensorSpec, compile, lower, ops
from compiler.ops import Unifier, get_op
from compiler.reference import run_reference
from compiler.symbolic import Dim
from compiler.types import TensorType

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4)).astype(np.float32)
B = RNG.standard_normal((3, 4)).astype(np.float32)
ROW = RNG.standard_normal((1, 4)).astype(np.float32)
POS = np.abs(A) + np.float32(0.5)
_erf = np.vectorize(math.erf)

#: (name, ops call on (x, y), NumPy on (x, y), x, y)
CASES = [
    ("add", lambda x, y: ops.add(x, y), np.add, A, ROW),
    ("subtract", lambda x, y: ops.subtract(x, y), np.subtract, A, B),
    ("multiply", lambda x, y: ops.multiply(x, y), np.multiply, A, ROW),
    ("divide", lambda x, y: ops.divide(x, y), np.divide, A, POS),
    ("power", lambda x, y: ops.power(x, y), np.power, POS, B),
    ("maximum", lambda x, y: ops.maximum(x, y), np.maximum, A, ROW),
    ("minimum", lambda x, y: ops.minimum(x, y), np.minimum, A, B),
    ("negative", lambda x, y: ops.negative(x), lambda x, y: -x, A, B),
    ("abs", lambda x, y: ops.abs(x), lambda x, y: np.abs(x), A, B),
    ("exp", lambda x, y: ops.exp(x), lambda x, y: np.exp(x), A, B),
    ("log", lambda x, y: ops.log(x), lambda x, y: np.log(x), POS, B),
    ("sqrt", lambda x, y: ops.sqrt(x), lambda x, y: np.sqrt(x), POS, B),
    ("tanh", lambda x, y: ops.tanh(x), lambda x, y: np.tanh(x), A, B),
    ("sigmoid", lambda x, y: ops.sigmoid(x), lambda x, y: 1 / (1 + np.exp(-x)), A, B),
    ("relu", lambda x, y: ops.relu(x), lambda x, y: np.maximum(x, 0), A, B),
    ("gelu", lambda x, y: ops.gelu(x),
     lambda x, y: (0.5 * x * (1 + _erf(x / np.sqrt(2)))).astype(x.dtype), A, B),
    ("erf", lambda x, y: ops.erf(x), lambda x, y: _erf(x).astype(x.dtype), A, B),
    ("where", lambda x, y: ops.where(ops.greater(x, y), x, y),
     lambda x, y: np.where(x > y, x, y), A, B),
    ("where_scalar", lambda x, y: ops.where(ops.greater(x, 0), x, 0.5),
     lambda x, y: np.where(x > 0, x, np.float32(0.5)), A, B),
    ("equal", lambda x, y: ops.equal(x, y), np.equal, A, A),
    ("not_equal", lambda x, y: ops.not_equal(x, y), np.not_equal, A, B),
    ("greater", lambda x, y: ops.greater(x, y), np.greater, A, ROW),
    ("greater_equal", lambda x, y: ops.greater_equal(x, y), np.greater_equal, A, B),
    ("less", lambda x, y: ops.less(x, y), np.less, A, B),
    ("less_equal", lambda x, y: ops.less_equal(x, y), np.less_equal, A, ROW),
    ("logical_and", lambda x, y: ops.logical_and(ops.greater(x, 0), ops.greater(y, 0)),
     lambda x, y: np.logical_and(x > 0, y > 0), A, B),
    ("logical_or", lambda x, y: ops.logical_or(ops.greater(x, 0), ops.greater(y, 0)),
     lambda x, y: np.logical_or(x > 0, y > 0), A, B),
    ("logical_not", lambda x, y: ops.logical_not(ops.greater(x, 0)),
     lambda x, y: np.logical_not(x > 0), A, B),
    ("cast", lambda x, y: ops.cast(ops.multiply(x, 10.0), "int32"),
     lambda x, y: (x * np.float32(10)).astype(np.int32), A, B),
    ("matmul", lambda x, y: ops.matmul(x, ops.transpose(y)), lambda x, y: x @ y.T, A, B),
    ("transpose", lambda x, y: ops.transpose(x, (1, 0)), lambda x, y: x.T, A, B),
    ("reshape", lambda x, y: ops.reshape(x, (-1, 2)), lambda x, y: x.reshape(-1, 2), A, B),
    ("expand_dims", lambda x, y: ops.expand_dims(x, 1), lambda x, y: x[:, None], A, B),
    ("squeeze", lambda x, y: ops.squeeze(ops.expand_dims(x, -1), -1),
     lambda x, y: x, A, B),
    ("concatenate", lambda x, y: ops.concatenate([x, y], axis=1),
     lambda x, y: np.concatenate([x, y], 1), A, B),
    ("stack", lambda x, y: ops.stack([x, y], axis=1), lambda x, y: np.stack([x, y], 1), A, B),
    ("slice", lambda x, y: ops.slice(x, (0, 1), (-1, 2)), lambda x, y: x[:, 1:3], A, B),
    ("take", lambda x, y: ops.take(x, np.array([3, 0, 0]), axis=1),
     lambda x, y: x[:, [3, 0, 0]], A, B),
    ("sum", lambda x, y: ops.sum(x, axis=1), lambda x, y: x.sum(1), A, B),
    ("sum_keepdims", lambda x, y: ops.sum(x, axis=-1, keepdims=True),
     lambda x, y: x.sum(-1, keepdims=True), A, B),
    ("mean", lambda x, y: ops.mean(x, axis=1), lambda x, y: x.mean(1), A, B),
    ("max", lambda x, y: ops.max(x, axis=1), lambda x, y: x.max(1), A, B),
    ("min", lambda x, y: ops.min(x, axis=1, keepdims=True),
     lambda x, y: x.min(1, keepdims=True), A, B),
    ("softmax", lambda x, y: ops.softmax(x), lambda x, y: np.exp(x) / np.exp(x).sum(
        -1, keepdims=True), A, B),
    ("log_softmax", lambda x, y: ops.log_softmax(x, axis=1),
     lambda x, y: x - np.log(np.exp(x).sum(1, keepdims=True)), A, B),
    ("pad", lambda x, y: ops.pad(x, ((0, 0), (1, 2)), constant_values=2.0),
     lambda x, y: np.pad(x, ((0, 0), (1, 2)), constant_values=2), A, B),
    ("zeros_like", lambda x, y: ops.zeros_like(x), lambda x, y: np.zeros_like(x), A, B),
    ("ones_like", lambda x, y: ops.ones_like(x), lambda x, y: np.ones_like(x), A, B),
    ("split", lambda x, y: ops.split(x, 2, axis=1)[1], lambda x, y: x[:, 2:], A, B),
]
IDS = [c[0] for c in CASES]


def _expected(numpy_fn, x, y):
    with np.errstate(all="ignore"):
        return np.asarray(numpy_fn(x, y))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_eager_ops_equal_numpy(case):
    _, fn, numpy_fn, x, y = case
    got = fn(x, y)
    want = _expected(numpy_fn, x, y)
    assert isinstance(got, np.ndarray) and got.shape == want.shape
    assert got.dtype.kind == want.dtype.kind
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_symbolic_ops_compile_and_equal_numpy(case):
    _, fn, numpy_fn, x, y = case
    a = Input(x.shape[1:])
    # a row operand keeps its batch of 1 (a symbolic batch would have to equal x's)
    b = Input(y.shape[1:], batch_size=1 if y.shape[0] != x.shape[0] else None)
    out = fn(a, b)
    model = Model([a, b], out)
    want = _expected(numpy_fn, x, y)
    got = model(x, y)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    plan = compile(model, TensorSpec((None,) + x.shape[1:]), TensorSpec(b.spec.shape))
    np.testing.assert_allclose(plan(x, y), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run_reference(plan.graph, x, y), want, rtol=1e-5, atol=1e-6)


def test_comparisons_are_bool_values_and_return_bool_arrays():
    x = Input((4,))
    y = x > 0.0
    assert y.dtype == np.bool_
    assert ops.cast(y, "float32").dtype == np.float32
    assert (ops.sum(y, axis=1)).dtype == np.int64
    got = Model(x, y)(A)
    assert got.dtype == np.bool_ and (got == (A > 0)).all()


def test_the_batch_size_may_change_after_compiling():
    x = Input((4,))
    model = Model(x, ops.sum(ops.exp(x) * 2.0, axis=-1))
    for n in (1, 5, 0):
        data = RNG.standard_normal((n, 4)).astype(np.float32)
        np.testing.assert_allclose(model(data), (np.exp(data) * 2).sum(-1), rtol=1e-5)


# -- shape rules ----------------------------------------------------------------------------------
N, M = Dim.symbol("N"), Dim.symbol("M")


def _rule(op, *shapes, **attrs):
    types = [TensorType(s) for s in shapes]
    if op == "take":  # indices are integers (IR dtypes)
        types[1] = TensorType(shapes[1], np.dtype(np.int64))
    return get_op(op).shape_rule(types, {}, attrs, Unifier()).shape


@pytest.mark.parametrize("op, shapes, attrs, expected", [
    ("divide", [(N, 4), (1, 4)], {}, (N, 4)),
    ("divide", [(N, 1, 3), (5, 1)], {}, (N, 5, 3)),
    ("equal", [(N, 4), ()], {}, (N, 4)),
    ("where", [(N, 1), (N, 4), ()], {}, (N, 4)),
    ("matmul", [(N, 3, 4), (4, 5)], {}, (N, 3, 5)),
    ("matmul", [(2, 1, 3, 4), (7, 4, 5)], {}, (2, 7, 3, 5)),
    ("matmul", [(N, 4), (4,)], {}, (N,)),
    ("matmul", [(4,), (N, 4, 2)], {}, (N, 2)),
    ("transpose", [(N, 3, 4)], {"axes": (2, 0, 1)}, (4, N, 3)),
    ("transpose", [(N, 3)], {"axes": None}, (3, N)),
    ("reshape_array", [(N, 3, 4)], {"shape": (-1, 12)}, (N, 12)),
    ("reshape_array", [(6, 4)], {"shape": (3, -1)}, (3, 8)),
    ("expand_dims", [(N, 3)], {"axis": -1}, (N, 3, 1)),
    ("squeeze", [(N, 1, 3, 1)], {"axis": None}, (N, 3)),
    ("stack", [(N, 3), (N, 3)], {"axis": 1}, (N, 2, 3)),
    ("slice", [(N, 10)], {"start": (0, 2), "shape": (-1, 5)}, (N, 5)),
    ("take", [(N, 10), (7,)], {"axis": 1}, (N, 7)),
    ("take", [(10, 4), (N, 3)], {"axis": 0}, (N, 3, 4)),
    ("sum", [(N, 3, 4)], {"axis": (1, 2)}, (N,)),
    ("mean", [(N, 3, 4)], {"axis": 1, "keepdims": True}, (N, 1, 4)),
    ("max", [(N, 3)], {"axis": None}, ()),
    ("pad", [(N, 3)], {"pad_width": ((0, 0), (1, 2))}, (N, 6)),
])
def test_shape_rules(op, shapes, attrs, expected):
    assert _rule(op, *shapes, **attrs) == expected


def test_pad_and_slice_keep_symbolic_sizes_symbolic():
    assert _rule("pad", (N, 3), pad_width=((1, 1), (0, 0))) == (N + 2, 3)
    assert _rule("slice", (N, 3), start=(1, 0), shape=(-1, 3)) == (N - 1, 3)


def test_symbolic_dims_that_may_differ_become_runtime_checks():
    unify = Unifier()
    out = get_op("divide").shape_rule([TensorType((N, 4)), TensorType((M, 4))], {}, {}, unify)
    assert out.shape[1] == 4


@pytest.mark.parametrize("op, shapes, attrs, match", [
    ("divide", [(N, 3), (N, 4)], {}, r"expected 3, received 4.*\(N, 3\) and \(N, 4\)"),
    ("where", [(2, 3), (N, 3), (4, 3)], {}, r"\(2, 3\).*\(4, 3\)|\(N, 3\).*\(4, 3\)"),
    ("matmul", [(N, 3), (4, 5)], {}, r"\(N, 3\) @ \(4, 5\).*expected 3, received 4"),
    ("matmul", [(2, 3, 4), (5, 4, 2)], {}, r"batch axes.*expected 2, received 5"),
    ("transpose", [(N, 3)], {"axes": (0, 0)}, r"not a permutation"),
    ("reshape_array", [(5, 3)], {"shape": (4, -1)}, r"cannot reshape \(5, 3\)"),
    ("reshape_array", [(5, 3)], {"shape": (4, 4)}, r"element count"),
    ("squeeze", [(N, 3)], {"axis": 1}, r"squeeze axis 1.*expected 1, received 3"),
    ("slice", [(N, 3)], {"start": (0, 2), "shape": (-1, 2)}, r"axis 1.*exceeds the size 3"),
    ("sum", [(N, 3)], {"axis": 2}, r"axis 2 is out of range for rank 2"),
    ("max", [(N, 0)], {"axis": 1}, r"empty"),
])
def test_shape_rule_errors(op, shapes, attrs, match):
    with pytest.raises(ShapeError, match=match):
        _rule(op, *shapes, **attrs)


def test_a_broadcast_error_on_symbolic_tensors_names_both_shapes():
    a, b = Input((3,)), Input((4,))
    with pytest.raises(ShapeError, match=r"ops.add.*expected 3, received 4.*\(N, 3\) and \(N, 4\)"):
        a + b


# -- operators --------------------------------------------------------------------------------
def _ops_of(model):
    g = lower(model, [s.to_type(model.dtype, i) for i, s in enumerate(model._input_specs)])
    return [(g.nodes[n]["op"], tuple(sorted((k, str(v)) for k, v in g.nodes[n]["attrs"].items())))
            for n in sorted(g.nodes) if g.nodes[n]["op"] not in ("input", "param")]


def test_operators_build_the_same_graph_as_the_functions():
    def by_operators(x, y):
        return [x + y, x - 1.0, 2.0 * x, x / y, x ** 2.0, x @ y, -x, x > y, x >= 0.5, x < y,
                x <= y, x == y, x != y, 3.0 - x, 1.0 / x, abs(x)]

    def by_functions(x, y):
        return [ops.add(x, y), ops.subtract(x, 1.0), ops.multiply(2.0, x), ops.divide(x, y),
                ops.power(x, 2.0), ops.matmul(x, y), ops.negative(x), ops.greater(x, y),
                ops.greater_equal(x, 0.5), ops.less(x, y), ops.less_equal(x, y),
                ops.equal(x, y), ops.not_equal(x, y), ops.subtract(3.0, x), ops.divide(1.0, x),
                ops.abs(x)]

    graphs = []
    for build in (by_operators, by_functions):
        x, y = Input((4, 4)), Input((4, 4))
        graphs.append(_ops_of(Model([x, y], build(x, y))))
    assert graphs[0] == graphs[1]
    x, y = Input((4, 4)), Input((4, 4))
    data = [RNG.standard_normal((2, 4, 4)).astype(np.float32) + 2 for _ in range(2)]
    got = Model([x, y], by_operators(x, y))(*data)
    a, b = data
    want = [a + b, a - 1, 2 * a, a / b, a ** 2, a @ b, -a, a > b, a >= 0.5, a < b, a <= b,
            a == b, a != b, 3 - a, 1 / a, abs(a)]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5)


def test_scalars_are_constants_in_the_ir_and_keep_the_tensor_dtype():
    x = Input((3,), dtype="float64")
    model = Model(x, x * 2 + 0.5)
    g = lower(model, [model._input_specs[0].to_type(model.dtype)])
    constants = [d for _, d in g.nodes(data=True) if d["op"] == "constant"]
    assert len(constants) == 2 and all(d["type"].dtype == np.float64 for d in constants)
    assert model(np.ones((2, 3))).dtype == np.float64


def test_ndarray_on_the_left_defers_to_the_tensor():
    x = Input((3,))
    y = np.ones(3, np.float32) + x
    assert y.shape == (Dim.symbol("N"), 3)
    np.testing.assert_allclose(Model(x, y)(A[:, :3]), A[:, :3] + 1)


def test_compiler_ops_still_exposes_the_registry():
    from compiler.ops import OpDef, registered_ops

    assert "matmul" in registered_ops() and isinstance(get_op("matmul"), OpDef)
    assert "matmul" in dir(ops)
    with pytest.raises(AttributeError):
        ops.no_such_op  # noqa: B018


def test_reshape_minus_one_over_a_symbolic_element_count_is_checked_at_run_time():
    """The primitive shares the layer's ``-1`` inference (``ops/reshape.py: infer_target``):
    ``(N, L, 3)`` into ``(-1, 2)`` compiles, runs for an even ``N*L*3`` and otherwise raises
    naming the node and both counts."""
    y = Input((None, 3), name="y")
    plan = compile(Model(y, ops.reshape(y, (-1, 2))))
    v = np.arange(12, dtype=np.float32).reshape(1, 4, 3)
    np.testing.assert_array_equal(plan(v), v.reshape(6, 2))
    with pytest.raises(ShapeError, match=r"reshape_array.*reshape to \(-1, 2\): element count "
                                         r"of \(N, L, 3\): expected .* = 8, received .* = 9"):
        plan(np.zeros((1, 3, 3), np.float32))
