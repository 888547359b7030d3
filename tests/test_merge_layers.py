"""Merge layers end to end (broadcasting, Keras 3 names), squeeze-and-excitation, and the number
of inputs every layer type accepts."""

import numpy as np
import pytest

from compiler import (
    CompilerError,
    Input,
    Model,
    Sequential,
    ShapeError,
    TensorSpec,
    compile,
    layers,
    lower,
)
from compiler.ops import get_op
from compiler.ops.registry import check_arity
from compiler.passes import BUILD_PIPELINE, CompileContext, fuse, run_pipeline
from compiler.reference import run_reference

MERGES = {
    layers.Add: lambda xs: sum(np.broadcast_arrays(*xs)),
    layers.Subtract: lambda xs: xs[0] - xs[1],
    layers.Multiply: lambda xs: np.prod(np.broadcast_arrays(*xs), axis=0),
    layers.Maximum: lambda xs: np.maximum.reduce(np.broadcast_arrays(*xs)),
    layers.Minimum: lambda xs: np.minimum.reduce(np.broadcast_arrays(*xs)),
    layers.Average: lambda xs: np.mean(np.broadcast_arrays(*xs), axis=0),
}


def _check(model, *xs, want, rtol=1e-5):
    """Compiled plan vs the NumPy reference executor vs hand-written NumPy."""
    y = model(*xs)
    plan = compile(model)
    np.testing.assert_allclose(plan(*xs), run_reference(plan.graph, *xs), rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(y, want, rtol=rtol, atol=1e-6)
    return y


@pytest.mark.parametrize("cls", list(MERGES), ids=lambda c: c.__name__)
def test_merge_layers_broadcast_like_numpy(cls):
    a, b = Input((3, 4)), Input((1, 4))
    model = Model([a, b], cls()([a, b]))
    assert model(np.zeros((2, 3, 4), np.float32), np.zeros((2, 1, 4), np.float32)).shape == (
        2, 3, 4)
    rng = np.random.default_rng(0)
    xa = rng.standard_normal((5, 3, 4)).astype(np.float32)
    xb = rng.standard_normal((5, 1, 4)).astype(np.float32)
    _check(model, xa, xb, want=MERGES[cls]([xa, xb]))


def test_add_of_n4_and_n1():
    a, b = Input((4,)), Input((1,))
    model = Model([a, b], layers.Add()([a, b]))
    assert model.layers[0].name == "add"
    xa = np.arange(12, dtype=np.float32).reshape(3, 4)
    xb = np.array([[10.0], [20.0], [30.0]], np.float32)
    y = _check(model, xa, xb, want=xa + xb)
    assert y[2, 3] == 41.0


@pytest.mark.parametrize("cls", [layers.Add, layers.Multiply, layers.Maximum, layers.Minimum,
                                 layers.Average], ids=lambda c: c.__name__)
def test_three_inputs_of_three_shapes(cls):
    a, b, c = Input((2, 1, 3)), Input((1, 4, 1)), Input((3,))
    model = Model([a, b, c], cls()([a, b, c]))
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((2,) + s).astype(np.float32) for s in ((2, 1, 3), (1, 4, 1), (3,))]
    xs[2] = xs[2].reshape(2, 1, 1, 3)  # hand-written NumPy: batch axes aligned by hand
    want = MERGES[cls](xs)
    _check(model, xs[0], xs[1], xs[2].reshape(2, 3), want=want)


def test_average_of_one_input_returns_it():
    x = Input((3,))
    model = Model(x, layers.Average()([x]))
    v = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(model(v), v)


def _se_block(x, channels, ratio=4):
    """Squeeze-and-excitation: channel weights from global pooling rescale every pixel."""
    s = layers.GlobalAveragePooling2D()(x)
    s = layers.Dense(channels // ratio, activation="relu")(s)
    s = layers.Dense(channels, activation="sigmoid")(s)
    s = layers.Reshape((1, 1, channels))(s)
    return layers.Multiply()([x, s])


@pytest.mark.parametrize("side", [None, 6])
def test_squeeze_and_excitation_block(side):
    x = Input((side, side, 3))
    h = layers.Conv2D(8, 3, padding="same")(x)
    model = Model(x, _se_block(h, 8))
    rng = np.random.default_rng(2)
    for w in model.layers:  # non-zero biases, so a wrong broadcast cannot hide behind zeros
        w.set_weights([rng.standard_normal(v.shape).astype(np.float32) * 0.5
                       for v in w.get_weights()])
    X = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    conv, d1, d2 = (layer for layer in model.layers if layer.get_weights())
    k, b = conv.get_weights()
    xp = np.pad(X, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h = sum(xp[:, i:i + 6, j:j + 6, :] @ k[i, j] for i in range(3) for j in range(3)) + b
    s = h.mean(axis=(1, 2))
    s = np.maximum(s @ d1.get_weights()[0] + d1.get_weights()[1], 0)
    s = 1 / (1 + np.exp(-(s @ d2.get_weights()[0] + d2.get_weights()[1])))
    want = h * s[:, None, None, :]
    y = _check(model, X, want=want, rtol=1e-4)
    assert y.shape == (2, 6, 6, 8)
    if side is None:  # one plan, any resolution
        X2 = rng.standard_normal((1, 9, 7, 3)).astype(np.float32)
        np.testing.assert_allclose(model(X2), run_reference(compile(model).graph, X2),
                                   rtol=1e-4, atol=1e-5)


def test_provable_conflict_names_layer_axis_and_both_shapes():
    a, b = Input((4,)), Input((3,))
    with pytest.raises(ShapeError, match=r"layer 'clash' \(Add\): Add input 1 vs input 0 axis 1: "
                                         r"expected 4, received 3 \(shapes \(N, 4\) and "
                                         r"\(N, 3\) do not broadcast\)"):
        layers.Add(name="clash")([a, b])
    a, b = Input((None, None, 8)), Input((1, 1, 4))
    with pytest.raises(ShapeError, match=r"Multiply.*axis 3: expected 8, received 4"):
        layers.Multiply()([a, b])


def test_sizes_not_provably_equal_are_checked_at_run_time():
    x = Input((None, None, 3))
    a = layers.Conv2D(4, 3)(x)                              # (N, H-2, W-2, 4)
    b = layers.Conv2D(4, 1, strides=2, padding="same")(x)   # (N, (H+1)//2, (W+1)//2, 4)
    model = Model(x, layers.Add(name="join")([a, b]))
    plan = compile(model)
    x5 = np.random.default_rng(5).standard_normal((2, 5, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(plan(x5), run_reference(plan.graph, x5), rtol=1e-5, atol=1e-6)
    with pytest.raises(ShapeError, match=r"layer 'join' \(Add\): Add input 1 vs input 0 axis 1"):
        plan(np.ones((2, 6, 4, 3), np.float32))  # 4 vs 3: never broadcast by guessing


def test_batch_sizes_of_two_inputs_must_agree():
    a, b = Input((4,)), Input((1,))
    model = Model([a, b], layers.Add()([a, b]))
    with pytest.raises(ShapeError, match=r"bound to 3 by an earlier input, received 2"):
        model(np.ones((3, 4), np.float32), np.ones((2, 1), np.float32))


def test_subtract_takes_exactly_two_inputs():
    a, b, c = Input((2,)), Input((2,)), Input((2,))
    with pytest.raises(CompilerError, match=r"layer 'sub' \(Subtract\) takes exactly 2 inputs, "
                                            r"received 3"):
        layers.Subtract(name="sub")([a, b, c])
    with pytest.raises(CompilerError, match=r"takes exactly 2 inputs, received 1"):
        layers.Subtract(name="sub1")([a])
    with pytest.raises(CompilerError, match=r"takes exactly 2 inputs, received 1"):
        Sequential([layers.Subtract(name="sub2")]).build((None, 2))


def test_broadcasting_add_is_not_fused_into_a_conv():
    x, s = Input((6, 6, 3)), Input((1, 1, 8))
    h = layers.Conv2D(8, 3)(x)
    g = lower(Model([x, s], layers.Add()([h, s])), [TensorSpec((None, 6, 6, 3)).to_type(
        np.dtype(np.float32)), TensorSpec((None, 1, 1, 8)).to_type(np.dtype(np.float32), 1)])
    g = run_pipeline(g, BUILD_PIPELINE, CompileContext(seed=0))
    rng = np.random.default_rng(3)
    X, S = rng.standard_normal((2, 6, 6, 3)), rng.standard_normal((2, 1, 1, 8))
    before = run_reference(g, X, S)
    fuse(g, CompileContext())
    ops = sorted(d["op"] for _, d in g.nodes(data=True) if d["op"] not in ("input", "param"))
    assert ops == ["add", "conv2d"]
    assert not any(d["attrs"].get("residual") for _, d in g.nodes(data=True))
    np.testing.assert_allclose(run_reference(g, X, S), before, rtol=1e-6)
    # the same block with an equal-shape residual still fuses
    x, r = Input((6, 6, 3)), Input((4, 4, 8))
    model = Model([x, r], layers.Add()([layers.Conv2D(8, 3)(x), r]))
    plan = compile(model)
    convs = [d for _, d in plan.graph.nodes(data=True) if d["op"] == "conv2d"]
    assert [d["attrs"].get("residual") for d in convs] == [True]
    assert not any(d["op"] == "add" for _, d in plan.graph.nodes(data=True))


def test_broadcast_model_compiles_without_fusing_and_matches():
    x, s = Input((6, 6, 3)), Input((1, 1, 8))
    model = Model([x, s], layers.ReLU()(layers.Add()([layers.Conv2D(8, 3)(x), s])))
    rng = np.random.default_rng(4)
    X = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    S = rng.standard_normal((2, 1, 1, 8)).astype(np.float32)
    conv = model.layers[0] if model.layers[0].get_weights() else model.layers[1]
    k, b = conv.get_weights()
    h = sum(X[:, i:i + 4, j:j + 4, :] @ k[i, j] for i in range(3) for j in range(3)) + b
    _check(model, X, S, want=np.maximum(h + S, 0), rtol=1e-4)


# -- arity: every layer type refuses a wrong number of inputs -----------------------------------
ONE_INPUT_LAYERS = [
    lambda: layers.Dense(3),
    lambda: layers.Conv2D(8, 3),
    lambda: layers.DepthwiseConv2D(3),
    lambda: layers.MaxPooling2D(),
    lambda: layers.AveragePooling2D(),
    lambda: layers.GlobalAveragePooling2D(),
    lambda: layers.GlobalMaxPooling2D(),
    lambda: layers.ZeroPadding2D(),
    lambda: layers.BatchNormalization(),
    lambda: layers.LayerNormalization(),
    lambda: layers.Activation("tanh"),
    lambda: layers.ReLU(),
    lambda: layers.LeakyReLU(),
    lambda: layers.Softmax(),
    lambda: layers.Softmax(axis=1),
    lambda: layers.Dropout(0.5),
    lambda: layers.Flatten(),
    lambda: layers.Reshape((16, 4, 3)),
]


@pytest.mark.parametrize("make", ONE_INPUT_LAYERS,
                         ids=lambda f: f().__class__.__name__ + repr(f().op_attrs().get("axis")))
def test_single_input_layers_refuse_two_inputs(make):
    layer = make()
    a, b = Input((8, 8, 3)), Input((8, 8, 3))
    kind = type(layer).__name__
    with pytest.raises(CompilerError, match=rf"layer '{layer.name}' \({kind}\) takes 1 input\(s\), "
                                            r"received 2"):
        layer(a, b)
    with pytest.raises(CompilerError, match=r"takes 1 input\(s\), received 2"):
        layer([a, b])
    assert layer(a).shape is not None  # the layer itself is fine


def test_conv2d_on_two_arrays_is_refused_not_read_out_of_bounds():
    x = np.ones((1, 6, 6, 3), np.float32)
    with pytest.raises(CompilerError, match=r"\(Conv2D\) takes 1 input\(s\), received 2"):
        layers.Conv2D(8, 3)(x, x)


@pytest.mark.parametrize("cls", [layers.Add, layers.Multiply, layers.Maximum, layers.Minimum,
                                 layers.Average, layers.Concatenate, layers.Subtract],
                         ids=lambda c: c.__name__)
def test_merge_layer_arity(cls):
    """Keras 3: merge layers take at least one input, Subtract exactly two."""
    layer = cls()
    arity = get_op(layer.op).arity(layer.op_attrs())
    assert arity == ((2, 2) if cls is layers.Subtract else (1, None))
    fewest = "exactly 2 inputs" if cls is layers.Subtract else "at least 1 input"
    with pytest.raises(CompilerError, match=rf"^layer 'x' \({cls.__name__}\) takes {fewest}, "
                                            r"received 0$"):
        check_arity(f"layer 'x' ({cls.__name__})", arity, 0)


# -- mixed dtypes: promoted as compiler.ops promotes (Keras 3) -------------------------------------
_MIXED = [("Add", np.add), ("Subtract", np.subtract), ("Multiply", np.multiply),
          ("Maximum", np.maximum), ("Minimum", np.minimum), ("Average", None),
          ("Concatenate", None)]


def _mixed_model():
    a = Input((3,), dtype="int32", name="a")
    b = Input((3,), name="b")
    c = Input((3,), dtype="int64", name="c")
    outs = [getattr(layers, name)()([a, b]) for name, _ in _MIXED]
    outs += [layers.Add()([a, c]), layers.Concatenate()([c, a]), layers.Average()([a, c]),
             layers.Add()([layers.Dense(3, name="d")(b), a])]
    return Model([a, b, c], outs)


_AV = np.array([[1, -2, 2 ** 24 + 1], [7, 0, -(2 ** 30)]], np.int32)
_BV = np.array([[0.5, 1.5, 1.0], [-2.0, 0.25, 3.0]], np.float32)
_CV = np.array([[2 ** 40, 3, -5], [1, 2 ** 62, 0]], np.int64)


@pytest.mark.parametrize("executor", ["codegen", "steps"])
def test_mixed_dtype_merge_layers_promote_like_the_ops(executor):
    model = _mixed_model()
    got = compile(model, executor=executor)(_AV, _BV, _CV)
    af = _AV.astype(np.float32)  # int op float: the int is converted to the float first
    want = [fn(af, _BV) for _, fn in _MIXED[:5]] + [(af + _BV) / np.float32(2),
                                                     np.concatenate([af, _BV], -1)]
    want += [_AV.astype(np.int64) + _CV, np.concatenate([_CV, _AV.astype(np.int64)], -1),
             ((_AV.astype(np.int64) + _CV) / 2).astype(np.float32)]
    w = {v.name: v.numpy() for v in model.weights}
    want.append(_BV @ w["d/kernel"] + w["d/bias"] + af)
    for k, (g, wv) in enumerate(zip(got, want)):
        assert g.dtype == wv.dtype, (k, g.dtype, wv.dtype)
        np.testing.assert_allclose(g, wv, rtol=1e-6, err_msg=str(k))
    assert got[7][1, 1] == 2 ** 62  # int64 stays exact


def test_mixed_dtype_merge_layers_match_keras():
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    a = keras.Input((3,), dtype="int32")
    b = keras.Input((3,))
    c = keras.Input((3,), dtype="int64")
    outs = [getattr(keras.layers, name)()([a, b]) for name, _ in _MIXED]
    outs += [keras.layers.Add()([a, c]), keras.layers.Concatenate()([c, a])]
    theirs = keras.Model([a, b, c], outs)([_AV, _BV, _CV])
    ours = compile(_mixed_model())(_AV, _BV, _CV)
    for k, t in enumerate(theirs):
        t = keras.ops.convert_to_numpy(t)
        assert ours[k].dtype == t.dtype, (k, ours[k].dtype, t.dtype)
        np.testing.assert_allclose(ours[k], t, rtol=1e-6, err_msg=str(k))
