"""Property-based fuzzing of the whole compiler with random models, inputs and configurations.

Properties:
- the shapes ``propagate_shapes`` predicts are the shapes the runtime (and reference) produces;
- a compiled plan computes what the NumPy reference executor computes on the final IR;
- re-running any pass of the compile pipeline on its own output changes nothing;
- random malformed inputs and random layer configurations raise ``CompilerError`` or
  ``TypeError`` with a message, never anything else, and never crash the process.

Random models are drawn from ``LAYER_GENERATORS``: one entry per layer type, each saying when it
applies to the current shape and how to draw one. New layer types are one more entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import given, note
from hypothesis import strategies as st

from compiler import CompilerError, Input, Model, Sequential, TensorSpec, compile, layers
from compiler.driver import build_graph
from compiler.ir import dump
from compiler.ops.activations import ACTIVATIONS
from compiler.passes import BUILD_PIPELINE, COMPILE_PIPELINE, CompileContext, propagate_shapes
from compiler.reference import run_reference
from compiler.symbolic import Dim

ACTIVATION_NAMES = sorted(ACTIVATIONS)

# -- layer generators ----------------------------------------------------------------------------
# ``shape`` is a value's shape without the batch axis. ``make(draw, shape) -> (layer, out shape)``.


@dataclass(frozen=True)
class LayerGenerator:
    name: str
    applies: Callable[[tuple], bool]
    make: Callable[[Any, tuple], tuple]


def _dense(draw, shape):
    units = draw(st.integers(1, 9))
    layer = layers.Dense(units, activation=draw(st.sampled_from(ACTIVATION_NAMES)),
                         use_bias=draw(st.booleans()),
                         kernel_initializer=draw(st.sampled_from(
                             ["glorot_uniform", "he_normal", "lecun_uniform", "normal"])),
                         bias_initializer=draw(st.sampled_from(["zeros", "ones", "uniform"])))
    return layer, shape[:-1] + (units,)


def _activation(draw, shape):
    return layers.Activation(draw(st.sampled_from(ACTIVATION_NAMES))), shape


def _leaky(draw, shape):
    slope = draw(st.floats(-2, 2, allow_nan=False, allow_infinity=False))
    return layers.LeakyReLU(slope), shape


def _reshape(draw, shape):
    size = int(np.prod(shape))
    dims, rest = [], size
    for _ in range(draw(st.integers(0, 2))):
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        d = draw(st.sampled_from(divisors))
        dims.append(d)
        rest //= d
    dims.append(rest)
    target = tuple(dims)
    out = target
    if draw(st.booleans()):
        i = draw(st.integers(0, len(dims) - 1))
        target = target[:i] + (-1,) + target[i + 1:]
    return layers.Reshape(target), out


def _window_out(size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    """TF/Keras output size, written independently of the compiler's shape rules."""
    if padding == "same":
        return -(-size // stride)
    return (size - dilation * (k - 1) - 1) // stride + 1


def _window(draw, shape, allow_dilation: bool = True):
    h, w = shape[0], shape[1]
    padding = draw(st.sampled_from(["valid", "same"]))
    stride = draw(st.integers(1, 2))
    dilation = draw(st.integers(1, 2)) if allow_dilation and stride == 1 else 1
    limit = min(h, w) if padding == "valid" else 3
    k = draw(st.integers(1, max(1, min(3, (limit - 1) // dilation + 1))))
    oh, ow = (_window_out(d, k, stride, dilation, padding) for d in (h, w))
    return k, stride, dilation, padding, oh, ow


def _image(shape) -> bool:
    return len(shape) == 3


def _conv2d(draw, shape):
    k, stride, dilation, padding, oh, ow = _window(draw, shape)
    channels = shape[2]
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0]))
    filters = groups * draw(st.integers(1, 3))
    layer = layers.Conv2D(filters, k, strides=stride, padding=padding, dilation_rate=dilation,
                          groups=groups, activation=draw(st.sampled_from(ACTIVATION_NAMES)),
                          use_bias=draw(st.booleans()))
    return layer, (oh, ow, filters)


def _depthwise(draw, shape):
    k, stride, dilation, padding, oh, ow = _window(draw, shape)
    mult = draw(st.integers(1, 2))
    return (layers.DepthwiseConv2D(k, strides=stride, padding=padding, depth_multiplier=mult,
                                   dilation_rate=dilation),
            (oh, ow, shape[2] * mult))


def _pool(kind):
    def make(draw, shape):
        k, stride, _, padding, oh, ow = _window(draw, shape, allow_dilation=False)
        return kind(k, strides=stride, padding=padding), (oh, ow, shape[2])
    return make


def _zero_pad(draw, shape):
    (top, bottom), (left, right) = [(draw(st.integers(0, 2)), draw(st.integers(0, 2)))
                                    for _ in range(2)]
    return (layers.ZeroPadding2D(((top, bottom), (left, right))),
            (shape[0] + top + bottom, shape[1] + left + right, shape[2]))


LAYER_GENERATORS = [
    LayerGenerator("dense", lambda s: True, _dense),
    LayerGenerator("activation", lambda s: True, _activation),
    LayerGenerator("relu", lambda s: True, lambda draw, s: (layers.ReLU(), s)),
    LayerGenerator("leaky_relu", lambda s: True, _leaky),
    LayerGenerator("softmax", lambda s: True, lambda draw, s: (layers.Softmax(), s)),
    LayerGenerator("dropout", lambda s: True,
                   lambda draw, s: (layers.Dropout(draw(st.floats(0, 0.9))), s)),
    LayerGenerator("flatten", lambda s: True,
                   lambda draw, s: (layers.Flatten(), (int(np.prod(s)),))),
    LayerGenerator("reshape", lambda s: 0 < np.prod(s) <= 64, _reshape),
    LayerGenerator("conv2d", _image, _conv2d),
    LayerGenerator("depthwise_conv2d", _image, _depthwise),
    LayerGenerator("max_pool2d", _image, _pool(layers.MaxPooling2D)),
    LayerGenerator("avg_pool2d", _image, _pool(layers.AveragePooling2D)),
    LayerGenerator("global_avg_pool2d", _image,
                   lambda draw, s: (layers.GlobalAveragePooling2D(), (s[2],))),
    LayerGenerator("global_max_pool2d", _image,
                   lambda draw, s: (layers.GlobalMaxPooling2D(), (s[2],))),
    LayerGenerator("zero_padding2d", _image, _zero_pad),
    LayerGenerator("batch_norm", lambda s: True,
                   lambda draw, s: (layers.BatchNormalization(), s)),
    LayerGenerator("layer_norm", lambda s: True,
                   lambda draw, s: (layers.LayerNormalization(), s)),
]

#: Layers whose output shape depends on more than the input's last axis: never reused at a
#: second place with another shape by the functional generator.
_SHAPE_SPECIFIC = (layers.Conv2D, layers.DepthwiseConv2D, layers.MaxPooling2D,
                   layers.AveragePooling2D, layers.GlobalAveragePooling2D,
                   layers.ZeroPadding2D, layers.BatchNormalization, layers.LayerNormalization)

feature_shapes = st.one_of(st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple),
                           st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 4)))


@dataclass
class Drawn:
    model: Any
    specs: list          # TensorSpec per input, batch symbolic
    shapes: list         # feature shapes per input
    dtype: np.dtype


@st.composite
def sequential_models(draw) -> Drawn:
    """Stacks; a shape-preserving layer may be tied (used twice in a row), and a run of layers
    may be wrapped into a nested Sequential (at any depth of one)."""
    shape = draw(feature_shapes)
    first = shape
    stack = []
    dtype = np.dtype(draw(st.sampled_from(["float32", "float64"])))
    for _ in range(draw(st.integers(1, 5))):
        gen = draw(st.sampled_from([g for g in LAYER_GENERATORS if g.applies(shape)]))
        before = shape
        layer, shape = gen.make(draw, shape)
        stack.append(layer)
        if shape == before and _can_share(layer, before, shape) and draw(st.booleans()):
            stack.append(layer)  # tied: one set of weights at two places
    if len(stack) >= 2 and draw(st.booleans()):
        i = draw(st.integers(0, len(stack) - 1))
        j = draw(st.integers(i + 1, len(stack)))
        stack[i:j] = [Sequential(stack[i:j], dtype=dtype)]
    if draw(st.booleans()):
        stack = [Input(first)] + stack
    model = Sequential(stack, dtype=dtype)
    return Drawn(model, [TensorSpec((None,) + first)], [first], dtype)


@st.composite
def functional_models(draw) -> Drawn:
    """DAGs: several inputs, branches, shared layers, several outputs."""
    n_inputs = draw(st.integers(1, 2))
    shapes = [draw(feature_shapes) for _ in range(n_inputs)]
    inputs = [Input(s, name=f"in{i}") for i, s in enumerate(shapes)]
    values = list(zip(inputs, shapes))
    applied: list = []  # (layer, the shape it was first applied to, its output shape then)
    for _ in range(draw(st.integers(1, 6))):
        x, shape = values[draw(st.integers(0, len(values) - 1))]
        reusable = [(layer, out) for layer, s, out in applied if _can_share(layer, s, shape)]
        if reusable and draw(st.booleans()):
            layer, first_out = draw(st.sampled_from(reusable))
            out_shape = first_out if isinstance(_core(layer), _SHAPE_SPECIFIC) else \
                _shared_out_shape(_core(layer), shape)
        else:
            gen = draw(st.sampled_from([g for g in LAYER_GENERATORS if g.applies(shape)]))
            layer, out_shape = gen.make(draw, shape)
            if draw(st.integers(0, 3)) == 0:  # the same layer inside a nested model
                layer = Sequential([layer])
            applied.append((layer, shape, out_shape))
        values.append((layer(x), out_shape))
        partners = [v for v in values if v[0] is not x and _broadcast(shape, v[1]) is not None]
        if partners and draw(st.booleans()):  # merge two values of one or broadcasting shapes
            other, other_shape = draw(st.sampled_from(partners))
            merges = [layers.Add, layers.Subtract, layers.Multiply, layers.Maximum,
                      layers.Minimum, layers.Average]
            merge = draw(st.sampled_from(merges + [layers.Concatenate] * (other_shape == shape)))
            merged_shape = shape[:-1] + (2 * shape[-1],) if merge is layers.Concatenate else \
                _broadcast(shape, other_shape)
            values.append((merge()([x, other]), merged_shape))
    produced = values[n_inputs:]
    picks = draw(st.lists(st.integers(0, len(produced) - 1), min_size=1, max_size=3))
    outputs = [produced[i][0] for i in picks]
    single = len(outputs) == 1 and draw(st.booleans())
    model = Model(inputs, outputs[0] if single else outputs)
    return Drawn(model, [TensorSpec((None,) + s) for s in shapes], shapes, np.dtype(np.float32))


def _broadcast(a: tuple, b: tuple) -> tuple | None:
    """Keras merge layers' broadcast of two shapes without the batch axis, or None."""
    rank = max(len(a), len(b))
    a, b = (1,) * (rank - len(a)) + a, (1,) * (rank - len(b)) + b
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        return None
    return tuple(max(x, y) for x, y in zip(a, b))


def _core(layer):
    """The layer a one-layer nested model wraps (the generators' only kind of nesting)."""
    return layer.layers[0] if isinstance(layer, Model) else layer


def _can_share(layer, first_shape: tuple, shape: tuple) -> bool:
    layer = _core(layer)
    if isinstance(layer, _SHAPE_SPECIFIC):
        return first_shape == shape
    if isinstance(layer, layers.Dense):
        return first_shape[-1] == shape[-1]
    if isinstance(layer, layers.Reshape):
        return int(np.prod(first_shape)) == int(np.prod(shape))
    return True  # parameter-free layers apply to anything


def _shared_out_shape(layer, shape: tuple) -> tuple:
    if isinstance(layer, layers.Dense):
        return shape[:-1] + (layer.units,)
    if isinstance(layer, layers.Flatten):
        return (int(np.prod(shape)),)
    if isinstance(layer, layers.Reshape):
        target = layer.target_shape
        known = int(np.prod([d for d in target if d != -1]))
        return tuple(int(np.prod(shape)) // known if d == -1 else d for d in target)
    return shape


models = st.one_of(sequential_models(), functional_models())


# -- helpers ---------------------------------------------------------------------------------------

def _inputs(drawn: Drawn, batch: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch,) + s).astype(drawn.dtype) for s in drawn.shapes]


def _as_list(y) -> list:
    return y if isinstance(y, list) else [y]


def _evaluate(shape: tuple, batch: int) -> tuple:
    return tuple(d.evaluate({s: batch for s in d.free_symbols}) if isinstance(d, Dim) else d
                 for d in shape)


def _tolerance(dtype) -> dict:
    if dtype == np.float32:
        return {"rtol": 1e-4, "atol": 1e-5}
    return {"rtol": 1e-10, "atol": 1e-12}


def _snapshot(g) -> tuple:
    """Everything a pass could change: nodes (values by identity), edges, graph attributes."""
    nodes = {n: {k: (id(v) if k == "value" else v) for k, v in d.items()}
             for n, d in g.nodes(data=True)}
    edges = sorted((u, v, d["positions"]) for u, v, d in g.edges(data=True))
    graph = {k: v for k, v in g.graph.items() if k != "next_id"}
    return nodes, edges, graph, dump(g)


# -- properties ------------------------------------------------------------------------------------

@given(drawn=models, batch=st.integers(0, 5), seed=st.integers(0, 2 ** 16))
def test_compiled_output_and_shapes_match_the_reference(drawn: Drawn, batch: int, seed: int):
    model = drawn.model
    note(repr(model.to_config()))
    model.build(drawn.specs if len(drawn.specs) > 1 else drawn.specs[0])
    xs = _inputs(drawn, batch, seed)
    plan = compile(model, *drawn.specs)
    ys = _as_list(plan(*xs))

    graph, _ = build_graph(model, drawn.specs, BUILD_PIPELINE)
    everything = graph.copy()
    everything.graph["outputs"] = [n for n in graph.nodes if graph.nodes[n]["op"] != "param"]
    values = dict(zip(everything.graph["outputs"], _as_list(run_reference(everything, *xs))))
    for node, value in values.items():  # predicted shape == shape of every reference value
        assert value.shape == _evaluate(graph.nodes[node]["type"].shape, batch), dump(graph)
    outputs = graph.graph["outputs"]
    assert len(ys) == len(outputs)
    for y, node in zip(ys, outputs):  # ... and of every runtime output
        assert y.shape == _evaluate(graph.nodes[node]["type"].shape, batch)
        assert y.dtype == drawn.dtype
        np.testing.assert_allclose(y, values[node], **_tolerance(drawn.dtype))
    for y, ref in zip(ys, _as_list(run_reference(plan.graph, *xs))):  # the final IR, too
        np.testing.assert_allclose(y, ref, **_tolerance(drawn.dtype))
    for y, y2 in zip(ys, _as_list(model(*xs))):
        np.testing.assert_allclose(y, y2, **_tolerance(drawn.dtype))


@given(drawn=models)
def test_rerunning_any_pass_changes_nothing(drawn: Drawn):
    model = drawn.model
    model.build(drawn.specs if len(drawn.specs) > 1 else drawn.specs[0])
    graph, _ = build_graph(model, drawn.specs, COMPILE_PIPELINE)
    before = _snapshot(graph)
    for p in COMPILE_PIPELINE:
        graph = p(graph, CompileContext())
        assert _snapshot(graph) == before, f"re-running {p.__name__} changed the graph"

    built, _ = build_graph(model, drawn.specs, BUILD_PIPELINE)
    types = {n: d["type"] for n, d in built.nodes(data=True)}
    again = propagate_shapes(built, CompileContext())
    assert {n: d["type"] for n, d in again.nodes(data=True)} == types


# -- malformed inputs and configurations -----------------------------------------------------------

def _hostile_values():
    dims = st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple)
    numeric = st.sampled_from(["float16", "float32", "float64", "int8", "int64", "uint16",
                               "bool", "complex64"])

    def array(shape, dtype):
        return (np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) - 2).astype(dtype)

    specials = st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -0.0])
    arrays = st.builds(array, dims, numeric)
    with_specials = st.builds(lambda shape, v: np.full(shape, v), dims, specials)
    odd = st.sampled_from([None, "x", b"\x00", 3, 2.5, True, [], [[]], [[1, 2], [3]], {"a": 1},
                           object(), np.array(["a", "b"]), np.zeros((2, 2), "M8[s]"),
                           np.zeros((2, 3), [("f", "f4")]), np.array([None, 1.0])])
    nested = st.lists(st.lists(st.floats(allow_nan=True), min_size=0, max_size=4), max_size=3)
    views = st.builds(lambda shape, dt: array(shape, dt)[..., ::-1], dims.filter(len), numeric)
    return st.one_of(arrays, with_specials, odd, nested, views)


hostile = _hostile_values()


@given(drawn=sequential_models(), args=st.lists(hostile, min_size=0, max_size=3),
       use_plan=st.booleans())
def test_malformed_inputs_raise_documented_errors(drawn: Drawn, args: list, use_plan: bool):
    model = drawn.model
    model.build(drawn.specs[0])
    weights = model.get_weights()
    call = compile(model, *drawn.specs) if use_plan else model
    try:
        y = call(*args)
    except (CompilerError, TypeError) as e:
        assert str(e), "an error without a message"
    else:  # accepted: then it must be the right answer for the input cast to the model dtype
        assert len(args) == 1
        x = np.asarray(args[0], drawn.dtype)
        graph, _ = build_graph(model, [TensorSpec.from_array(x) if x.ndim else TensorSpec(())],
                               BUILD_PIPELINE)
        for got, ref in zip(_as_list(y), _as_list(run_reference(graph, x))):
            assert got.shape == ref.shape
            np.testing.assert_allclose(got, ref, equal_nan=True, **_tolerance(drawn.dtype))
    for w, w2 in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(w, w2)


ODD = st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True),
                st.text(max_size=4), st.lists(st.integers(-2, 5), max_size=3),
                st.tuples(st.integers(-2, 5), st.integers(-2, 5)),
                st.sampled_from(["relu", "linear", "zeros", "he_normal", "float32", "int8", -1]))

LAYER_FACTORIES = {
    "Dense": (layers.Dense, ["units", "activation", "use_bias", "kernel_initializer",
                             "bias_initializer", "input_dim", "input_shape", "name", "dtype"]),
    "Activation": (layers.Activation, ["activation", "name", "input_shape"]),
    "LeakyReLU": (layers.LeakyReLU, ["negative_slope", "name"]),
    "Softmax": (layers.Softmax, ["axis", "name"]),
    "Dropout": (layers.Dropout, ["rate", "name"]),
    "Reshape": (layers.Reshape, ["target_shape", "name", "input_shape"]),
    "Flatten": (layers.Flatten, ["name", "input_shape", "dtype"]),
    "ReLU": (layers.ReLU, ["name"]),
}


@st.composite
def layer_configs(draw):
    kind = draw(st.sampled_from(sorted(LAYER_FACTORIES)))
    cls, params = LAYER_FACTORIES[kind]
    chosen = draw(st.lists(st.sampled_from(params + ["bogus_argument"]), unique=True,
                           max_size=3))
    return cls, {p: draw(ODD) for p in chosen}


@given(config=layer_configs(), width=st.integers(1, 6), batch=st.integers(0, 3))
def test_random_layer_configurations_fail_cleanly_or_work(config, width, batch):
    cls, kwargs = config
    try:
        layer = cls(**kwargs)
    except (CompilerError, TypeError) as e:
        assert str(e)
        return
    try:
        y = Sequential([layer])(np.ones((batch, width), np.float32))
    except (CompilerError, TypeError) as e:
        assert str(e)
        return
    assert y.shape[0] == batch
