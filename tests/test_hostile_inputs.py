"""Malformed inputs and configurations: a documented error or the right answer, never a crash.

The table below is the documentation. Each row is one hostile input and what deferc does with
it, for a compiled plan (``plan``), a built model (``model``) and a model that has not seen any
data yet (``fresh``). ``OK`` means: cast to float32 like ``np.asarray(x, np.float32)`` and equal
to the NumPy reference. After every row the weights are unchanged and a valid call still gives
the right answer.

Decisions worth stating: bools are cast to 0/1 (like ints); complex, string, object, datetime
and structured inputs raise ``DTypeError`` (a cast would drop or invent data); masked arrays are
accepted only without masked elements; NaN and +-inf propagate as IEEE arithmetic does in NumPy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from compiler import (
    CompilerError,
    DeferredInitializationError,
    DTypeError,
    Input,
    Model,
    Sequential,
    ShapeError,
    TensorSpec,
    compile,
    layers,
)

WIDTH, UNITS = 4, 3
VALID = np.linspace(-1, 1, 2 * WIDTH, dtype=np.float32).reshape(2, WIDTH)


def make_net() -> Sequential:
    return Sequential([layers.Dense(8, activation="relu"), layers.Dense(UNITS)])


def forward(weights, x) -> np.ndarray:
    """The NumPy reference of ``make_net`` on ``x`` cast to float32."""
    w1, b1, w2, b2 = weights
    x = np.asarray(x, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.maximum(x @ w1 + b1, 0) @ w2 + b2


# -- expectations ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Raises:
    exc: type
    match: str


class _Ok:
    def __repr__(self) -> str:
        return "OK"


OK = _Ok()
SKIP = None


@dataclass
class Case:
    id: str
    make: Callable[[], tuple]          # -> (args, kwargs)
    expect: Any                        # for every runner unless overridden
    per_runner: dict = field(default_factory=dict)

    def expected(self, runner: str) -> Any:
        return self.per_runner.get(runner, self.expect)


def a(*args, **kwargs) -> Callable[[], tuple]:
    """Inputs made lazily (fresh arrays per test, so no test sees another's mutations)."""
    return lambda: (tuple(x() if callable(x) else x for x in args), kwargs)


def arr(shape, dtype=np.float32, fill=None) -> Callable[[], np.ndarray]:
    def build():
        size = int(np.prod(shape))
        base = np.arange(size, dtype=np.float64).reshape(shape) / max(size, 1) - 0.5
        out = base.astype(dtype) if fill is None else np.full(shape, fill, dtype)
        return out
    return build


def _readonly():
    x = VALID.copy()
    x.flags.writeable = False
    return x


def _with(values):
    def build():
        x = VALID.astype(np.float64)
        for (i, j), v in values.items():
            x[i, j] = v
        return x
    return build


def _masked(mask_any: bool):
    def build():
        mask = np.zeros(VALID.shape, bool)
        mask[0, 1] = mask_any
        return np.ma.array(VALID, mask=mask)
    return build


WIDTH_MSG = r"expected (size )?4, received 5"
RANK1 = r"rank.*received rank 1"
RANK0 = r"rank.*received rank 0"
NUMERIC = r"must be numeric"

CASES = [
    # shapes
    Case("wrong width", a(arr((2, 5))), Raises(ShapeError, WIDTH_MSG), {"fresh": OK}),
    Case("zero width", a(arr((2, 0))), Raises(ShapeError, r"expected (size )?4, received 0"),
         {"fresh": Raises(ShapeError, r"size-0 axis")}),
    Case("rank 1", a(arr((WIDTH,))), Raises(ShapeError, RANK1)),
    Case("rank 3", a(arr((2, 3, WIDTH))), OK,
         {"plan": Raises(ShapeError, r"expected rank 2 \(N, 4\), received rank 3")}),
    Case("rank 3 wrong width", a(arr((2, 4, 1))), Raises(ShapeError, r"rank|expected 4, rec"),
         {"fresh": OK}),
    Case("0-d array", a(lambda: np.array(1.5, np.float32)), Raises(ShapeError, RANK0)),
    Case("0-d float64 array", a(lambda: np.array(1.5)), Raises(ShapeError, RANK0)),
    Case("python float", a(3.0), Raises(ShapeError, RANK0)),
    Case("python int", a(3), Raises(ShapeError, RANK0)),
    Case("empty batch", a(arr((0, WIDTH))), OK),
    Case("empty batch rank 1", a(arr((0,))), Raises(ShapeError, RANK1)),
    Case("broadcast view, zero strides", a(lambda: np.broadcast_to(VALID[:1], (100_000, WIDTH))),
         OK),
    # containers
    Case("list of lists", a(lambda: VALID.tolist()), OK),
    Case("tuple of tuples", a(lambda: tuple(map(tuple, VALID.tolist()))), OK),
    Case("list of arrays", a(lambda: list(VALID)), OK),
    Case("ragged list", a([[1.0, 2.0, 3.0, 4.0], [1.0]]),
         Raises(CompilerError, r"cannot be read as an array")),
    Case("np.matrix", a(lambda: np.asmatrix(VALID)), OK),
    Case("memoryview", a(lambda: memoryview(VALID.copy())), OK),
    # dtypes
    Case("string", a("1,2,3,4"), Raises(DTypeError, NUMERIC)),
    Case("bytes", a(b"\x00\x01"), Raises(DTypeError, NUMERIC)),
    Case("string array", a(lambda: VALID.astype(str)), Raises(DTypeError, NUMERIC)),
    Case("None", a(None), Raises(DTypeError, NUMERIC)),
    Case("dict", a({"x": VALID}), Raises(DTypeError, NUMERIC)),
    Case("object array of floats", a(lambda: VALID.astype(object)), Raises(DTypeError, NUMERIC)),
    Case("int too large for int64", a([[10 ** 30] * WIDTH]), Raises(DTypeError, NUMERIC)),
    Case("datetime64", a(lambda: np.zeros((2, WIDTH), "M8[s]")), Raises(DTypeError, NUMERIC)),
    Case("structured", a(lambda: np.zeros((2, WIDTH), [("v", "f4")])),
         Raises(DTypeError, NUMERIC)),
    Case("complex128", a(arr((2, WIDTH), np.complex128)), Raises(DTypeError, r"complex")),
    Case("complex64, zero imaginary", a(arr((2, WIDTH), np.complex64)),
         Raises(DTypeError, r"imaginary")),
    Case("bool (cast to 0/1)", a(lambda: VALID > 0), OK),
    Case("int32", a(arr((2, WIDTH), np.int32, fill=3)), OK),
    Case("int64 large", a(arr((2, WIDTH), np.int64, fill=2 ** 40)), OK),
    Case("uint8", a(arr((3, WIDTH), np.uint8, fill=255)), OK),
    Case("uint64 max", a(arr((2, WIDTH), np.uint64, fill=2 ** 64 - 1)), OK),
    Case("float16", a(lambda: VALID.astype(np.float16)), OK),
    Case("float64", a(lambda: VALID.astype(np.float64) + 1e-9), OK),
    Case("float64 beyond float32 range", a(_with({(0, 0): 1e300, (1, 2): -1e300})), OK),
    Case("masked, nothing masked", a(_masked(False)), OK),
    Case("masked element", a(_masked(True)), Raises(CompilerError, r"masked")),
    # layouts
    Case("fortran order", a(lambda: np.asfortranarray(VALID)), OK),
    Case("column-strided view", a(lambda: np.repeat(VALID, 2, axis=1)[:, ::2]), OK),
    Case("row-strided view", a(lambda: np.repeat(VALID, 3, axis=0)[::3]), OK),
    Case("negative row stride", a(lambda: VALID[::-1]), OK),
    Case("negative column stride", a(lambda: VALID[:, ::-1]), OK),
    Case("transposed view", a(lambda: np.ascontiguousarray(VALID.T).T), OK),
    Case("read-only", a(_readonly), OK),
    Case("unaligned", a(lambda: np.frombuffer(b"\0" + VALID.tobytes(), np.float32,
                                              VALID.size, 1).reshape(VALID.shape)), OK),
    # IEEE specials
    Case("nan", a(_with({(0, 1): np.nan})), OK),
    Case("+inf", a(_with({(1, 0): np.inf})), OK),
    Case("-inf", a(_with({(0, 3): -np.inf})), OK),
    Case("nan and inf mixed", a(_with({(0, 0): np.nan, (0, 1): np.inf, (1, 1): -np.inf})), OK),
    Case("all nan", a(arr((2, WIDTH), fill=np.nan)), OK),
    # arguments
    Case("two inputs", a(arr((2, WIDTH)), arr((2, WIDTH))),
         Raises(CompilerError, r"takes 1 input\(s\), received 2")),
    Case("no input", a(), Raises(CompilerError, r"takes 1 input\(s\), received 0")),
    Case("keyword input", a(x=VALID), Raises(TypeError, r"keyword|unexpected")),
    Case("keyword plus positional", a(arr((2, WIDTH)), training=False),
         Raises(TypeError, r"keyword|unexpected")),
    # A model called on a symbolic tensor nests (tests/test_nesting.py); a plan cannot.
    Case("symbolic tensor", a(lambda: Input((WIDTH,))), Raises(CompilerError, r"symbolic|numeric"),
         {"model": SKIP, "fresh": SKIP}),
    Case("a model as input", a(make_net), Raises(DTypeError, NUMERIC)),
    Case("another model's output", a(arr((2, UNITS))),
         Raises(ShapeError, r"expected (size )?4, received 3"), {"fresh": OK}),
]

RUNNERS = ("plan", "model", "fresh")


@pytest.fixture(scope="module")
def built():
    """One built model and its plan, shared by every row: rows must not change them."""
    net = make_net()
    net.build((None, WIDTH))
    return net, compile(net, TensorSpec((None, WIDTH)))


def _check(call, expected, args, kwargs, weights_of):
    if isinstance(expected, Raises):
        with pytest.raises(expected.exc, match=expected.match):
            call(*args, **kwargs)
        return
    before = [np.array(x, copy=True) if isinstance(x, np.ndarray) else None for x in args]
    y = call(*args, **kwargs)
    x = np.asarray(args[0])
    ref = forward(weights_of(), x)
    assert y.shape == ref.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6, equal_nan=True)
    for original, arg in zip(before, args):  # inputs are never written to
        if original is not None:
            np.testing.assert_array_equal(original, arg)


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, runner: str, built):
    expected = case.expected(runner)
    if expected is SKIP:
        pytest.skip("not applicable")
    args, kwargs = case.make()
    if runner == "fresh":
        net = make_net()
        _check(net, expected, args, kwargs, net.get_weights)
        if isinstance(expected, Raises):
            assert not net.built  # the failed first call initialized nothing
            with pytest.raises(DeferredInitializationError):
                net.get_weights()
            y = net(VALID)  # ... and a valid first call still works
            np.testing.assert_allclose(y, forward(net.get_weights(), VALID), rtol=1e-5,
                                       atol=1e-6)
        return
    net, plan = built
    weights = net.get_weights()
    plans = dict(net._plans)
    call = plan if runner == "plan" else net
    _check(call, expected, args, kwargs, lambda: weights)
    # unchanged: weights, earlier plans, and valid calls
    for w, w2 in zip(weights, net.get_weights()):
        np.testing.assert_array_equal(w, w2)
    assert all(net._plans.get(k) is p for k, p in plans.items())
    np.testing.assert_allclose(call(VALID), forward(weights, VALID), rtol=1e-5, atol=1e-6)


def test_the_table_is_large_enough():
    assert len(CASES) >= 30
    assert {type(c.expect) for c in CASES} >= {Raises, _Ok}


# -- outputs that alias inputs or earlier outputs -----------------------------------------------

def test_feeding_an_output_back_in_leaves_it_intact():
    net = Sequential([layers.Dense(6, activation="tanh"), layers.Dense(6)])
    net.build((None, 6))
    plan = compile(net, TensorSpec((None, 6)))
    w = net.get_weights()

    def ref(x):
        return np.tanh(x @ w[0] + w[1]) @ w[2] + w[3]

    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    y1 = plan(x)
    keep = y1.copy()
    y2 = plan(y1)            # the input is the previous output buffer
    y3 = plan(y1[1:4])       # ... or a view into it
    y4 = plan(x)
    np.testing.assert_array_equal(y1, keep)
    np.testing.assert_allclose(y2, ref(keep), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y3, ref(keep[1:4]), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(y4, keep)
    assert not any(np.shares_memory(p, q) for p, q in [(y1, y2), (y1, y3), (y1, y4), (y2, y4)])


@pytest.mark.parametrize("stack", [
    [layers.Dropout(0.5)], [layers.Flatten()], [layers.Reshape((2, 3))],
    [layers.Reshape((6,)), layers.Dropout(0.1)], [layers.Activation("linear")],
], ids=["dropout", "flatten", "reshape", "reshape+dropout", "linear"])
def test_identity_like_models_never_return_the_callers_buffer(stack):
    net = Sequential(stack)
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    for call in (net, compile(net, TensorSpec((None, 6)))):
        y = call(x)
        assert not np.shares_memory(y, x)
        y[...] = -1
        np.testing.assert_array_equal(x, np.arange(12, dtype=np.float32).reshape(2, 6))


# -- bad configuration is rejected when the layer is constructed --------------------------------

NAN = float("nan")

BAD_LAYERS = [
    (lambda: layers.Dense(0), CompilerError, "0"),
    (lambda: layers.Dense(-3), CompilerError, "-3"),
    (lambda: layers.Dense(2.5), CompilerError, "2.5"),
    (lambda: layers.Dense("10"), CompilerError, "'10'"),
    (lambda: layers.Dense(True), CompilerError, "True"),
    (lambda: layers.Dense(None), CompilerError, "None"),
    (lambda: layers.Dense(NAN), CompilerError, "nan"),
    (lambda: layers.Dense(4, activation="relu7"), CompilerError, "'relu7'"),
    (lambda: layers.Dense(4, activation=3), CompilerError, "3"),
    (lambda: layers.Activation("swishy"), CompilerError, "'swishy'"),
    (lambda: layers.Dense(4, kernel_initializer="glorot_unifrom"), CompilerError,
     "'glorot_unifrom'"),
    (lambda: layers.Dense(4, bias_initializer=42), CompilerError, "42"),
    (lambda: layers.Dense(4, kernel_initializer={"name": "normal", "config": {"stddev": "wide"}}),
     CompilerError, "'wide'"),
    (lambda: layers.Dense(4, kernel_initializer={"name": "normal", "config": {"spread": 1}}),
     CompilerError, "spread"),
    (lambda: layers.Dropout(1.0), CompilerError, "1.0"),
    (lambda: layers.Dropout(-0.1), CompilerError, "-0.1"),
    (lambda: layers.Dropout(1.5), CompilerError, "1.5"),
    (lambda: layers.Dropout("0.5"), CompilerError, "'0.5'"),
    (lambda: layers.Dropout(None), CompilerError, "None"),
    (lambda: layers.Dropout(NAN), CompilerError, "nan"),
    (lambda: layers.Reshape((0,)), CompilerError, "(0,)"),
    (lambda: layers.Reshape((-1, -1)), CompilerError, "(-1, -1)"),
    (lambda: layers.Reshape((2.5, 2)), CompilerError, "(2.5, 2)"),
    (lambda: layers.Reshape((-2, 3)), CompilerError, "(-2, 3)"),
    (lambda: layers.Reshape(5), CompilerError, "5"),
    (lambda: layers.Reshape("ab"), CompilerError, "'ab'"),
    (lambda: layers.Reshape(None), CompilerError, "None"),
    (lambda: layers.LeakyReLU("steep"), CompilerError, "'steep'"),
    (lambda: layers.LeakyReLU(NAN), CompilerError, "nan"),
    (lambda: layers.Softmax(axis=0), CompilerError, "axis=0"),
    (lambda: layers.Dense(4, input_dim=0), CompilerError, "0"),
    (lambda: layers.Dense(4, input_shape=(0,)), CompilerError, "0"),
    (lambda: layers.Dense(4, input_shape=5.5), CompilerError, "5.5"),
    (lambda: layers.Dense(4, input_shape=(3, -1)), CompilerError, "-1"),
    (lambda: layers.Dense(4, name=""), CompilerError, "''"),
    (lambda: layers.Dense(4, dtype="int32"), DTypeError, "int32"),
    (lambda: layers.Dense(4, dtype="complex64"), DTypeError, "complex64"),
    (lambda: layers.Dense(4, dtype="bogus"), DTypeError, "'bogus'"),
    (lambda: layers.Dense(4, unit=3), TypeError, "unit"),
    (lambda: Input((0,)), CompilerError, "0"),
    (lambda: Input((4, -2)), CompilerError, "-2"),
    (lambda: Input("abc"), CompilerError, "'abc'"),
]


@pytest.mark.parametrize("factory, exc, received", BAD_LAYERS,
                         ids=[f"bad{i}" for i in range(len(BAD_LAYERS))])
def test_bad_layer_configuration_is_rejected_quoting_the_value(factory, exc, received):
    with pytest.raises(exc, match=re.escape(received)):
        factory()


# -- hostile sizes at build and compile time ----------------------------------------------------

@pytest.mark.parametrize("build", [
    lambda net: net.build((None, 10 ** 12)),
    lambda net: net.build((None, 2 ** 70)),
    lambda net: compile(net, TensorSpec((None, 10 ** 13))),
    lambda net: net.build((None, 0)),
    lambda net: net.build((None, -4)),
    lambda net: net.build((None, 2.5)),
    lambda net: net.build(20),
    lambda net: net.build([(None, 4), (None, 4)]),
    lambda net: net.build((None,)),
], ids=["1e12 wide", "2**70 wide", "compile 1e13 wide", "0 wide", "negative", "float", "int",
        "two specs", "rank 1"])
def test_hostile_build_shapes_raise_and_leave_the_model_unbuilt(build):
    net = make_net()
    with pytest.raises(CompilerError):
        build(net)
    assert not net.built
    net.build((None, WIDTH))
    np.testing.assert_allclose(net(VALID), forward(net.get_weights(), VALID), rtol=1e-5,
                               atol=1e-6)


def test_huge_layer_sizes_raise_before_allocating():
    with pytest.raises(CompilerError, match=r"layer 'dense'.*kernel.*GiB"):
        Sequential([layers.Dense(10 ** 12)]).build((None, 4))
    x = Input((10 ** 12,))
    with pytest.raises(CompilerError, match=r"GiB"):
        Model(x, layers.Dense(2)(x))


def test_built_model_rejects_a_spec_of_another_width():
    net = make_net()
    net.build((None, WIDTH))
    weights = net.get_weights()
    with pytest.raises(ShapeError, match=r"expected 4, received 1000000000000"):
        compile(net, TensorSpec((None, 10 ** 12)))
    for w, w2 in zip(weights, net.get_weights()):
        np.testing.assert_array_equal(w, w2)
