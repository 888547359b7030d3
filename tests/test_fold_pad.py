"""fold_pad: Before -> pass -> Expected graphs; outputs unchanged against the reference executor
and the compiled plan; idempotent; folds only when the semantics are identical."""

import numpy as np
import pytest

from compiler import Input, Model, compile, layers, lower, ops
from compiler.errors import ShapeError
from compiler.ir import data_operands, verify
from compiler.passes import BUILD_PIPELINE, CompileContext, fold_pad, run_pipeline
from compiler.reference import run_reference

RNG = np.random.default_rng(0)


def built(model):
    g = lower(model, [s.to_type(model.dtype, i) for i, s in enumerate(model._input_specs)])
    return run_pipeline(g, BUILD_PIPELINE, CompileContext(seed=0))


def ops_of(g):
    return sorted(g.nodes[n]["op"] for n in g if g.nodes[n]["op"] not in ("input", "param"))


def window(g, op):
    (node,) = [n for n in g if g.nodes[n]["op"] == op]
    return g.nodes[node]["attrs"]


def check_fold(model, expect_ops, shape=(2, 9, 11, 3)):
    """Run the pass: the expected ops remain, outputs equal Before's, a second run is a no-op,
    and the compiled plan (which runs the pass) matches the reference of the unfolded graph."""
    g = built(model)
    x = RNG.standard_normal(shape).astype(np.float32)
    before = run_reference(g, x)
    g = fold_pad(g, CompileContext())
    verify(g)
    assert ops_of(g) == sorted(expect_ops)
    np.testing.assert_allclose(run_reference(g, x), before, rtol=1e-5, atol=1e-5)
    again = fold_pad(g, CompileContext())
    assert ops_of(again) == sorted(expect_ops)
    np.testing.assert_allclose(compile(model)(x), before, rtol=1e-4, atol=1e-4)
    return g


def test_zero_padding_folds_into_strided_conv():
    x = Input((9, 11, 3))
    y = layers.ZeroPadding2D(((1, 2), (0, 3)))(x)
    y = layers.Conv2D(4, 3, strides=2, activation="relu")(y)
    g = check_fold(Model(x, y), ["conv2d"])
    assert window(g, "conv2d")["padding"] == ((1, 2), (0, 3))


def test_pad_op_folds_into_depthwise_and_adds_to_explicit_padding():
    x = Input((9, 11, 3))
    y = ops.pad(x, ((0, 0), (1, 1), (2, 0), (0, 0)))
    y = layers.DepthwiseConv2D(3, strides=(2, 1), depth_multiplier=2)(y)
    y = ops.pad(y, ((0, 0), (1, 0), (0, 1), (0, 0)))
    y = layers.DepthwiseConv2D(3)(y)
    g = check_fold(Model(x, y), ["depthwise_conv2d", "depthwise_conv2d"])
    pads = sorted(g.nodes[n]["attrs"]["padding"] for n in g
                  if g.nodes[n]["op"] == "depthwise_conv2d")
    assert pads == [((1, 0), (0, 1)), ((1, 1), (2, 0))]


def test_neg_inf_pad_folds_into_max_pool_only():
    x = Input((9, 11, 3))
    y = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    y = layers.MaxPooling2D(3, strides=2)(y)
    g = check_fold(Model(x, y), ["max_pool2d"])
    assert window(g, "max_pool2d")["padding"] == ((1, 1), (1, 1))


@pytest.mark.parametrize("case", ["avg_pool", "nonzero_value", "neg_inf_into_conv", "channel_pad",
                                  "two_readers", "same_conv", "output"])
def test_not_folded_when_semantics_differ(case):
    x = Input((9, 11, 3))
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    outs = None
    if case == "avg_pool":
        y = layers.AveragePooling2D(3)(ops.pad(x, pad))
    elif case == "nonzero_value":
        y = layers.Conv2D(3, 3)(ops.pad(x, pad, constant_values=1.0))
    elif case == "neg_inf_into_conv":
        y = layers.Conv2D(3, 3)(ops.pad(x, pad, constant_values=-np.inf))
    elif case == "channel_pad":
        y = layers.Conv2D(3, 3)(ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 1))))
    elif case == "two_readers":
        p = ops.pad(x, pad)
        y = layers.Add()([layers.Conv2D(3, 3)(p), layers.Conv2D(3, 3)(p)])
    elif case == "same_conv":
        y = layers.Conv2D(3, 3, strides=2, padding="same")(ops.pad(x, pad))
    else:
        p = ops.pad(x, pad)
        outs = [p, layers.Conv2D(3, 3)(p)]
    model = Model(x, outs if outs is not None else y)
    g = built(model)
    before = ops_of(g)
    assert ops_of(fold_pad(g, CompileContext())) == before


def test_explicit_padding_shape_rule_and_errors():
    from compiler.ops.conv import explicit_pads, spatial_output
    from compiler.types import TensorType

    t = TensorType((2, 9, 11, 3), np.float32)
    attrs = {"padding": ((1, 2), (0, 3)), "strides": (2, 2)}
    assert spatial_output(t, attrs, "Conv2D", (3, 3)) == (5, 6)
    with pytest.raises(ShapeError, match="Conv2D: explicit padding must be non-negative"):
        explicit_pads(((1, -1), (0, 0)), "Conv2D")
    with pytest.raises(ShapeError, match="received 'full'"):
        spatial_output(t, {"padding": "full"}, "Conv2D", (3, 3))
    with pytest.raises(ShapeError, match="axis 1 \\(height\\) is too small"):
        spatial_output(TensorType((1, 2, 9, 1), np.float32), {"padding": ((0, 0), (1, 1))},
                       "Conv2D", (5, 3))


def test_imported_onnx_conv_pads_fold(tmp_path):
    """A file's symmetric pads on a stride-2 conv, a depthwise conv and a max pool: no pad op is
    left after compile, and the plan matches ONNX Runtime."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from compiler import onnx as conx

    w1 = RNG.standard_normal((8, 3, 3, 3)).astype(np.float32)
    w2 = RNG.standard_normal((8, 1, 3, 3)).astype(np.float32)
    b2 = RNG.standard_normal(8).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("MaxPool", ["c2"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[2, 2]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 13, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
         numpy_helper.from_array(b2, "b2")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "pads.onnx"
    onnx.save(proto, str(path))
    plan = compile(conx.load(path))
    ops_left = {plan.graph.nodes[n]["op"] for n in plan.graph}
    assert not ops_left & {"pad", "zero_padding2d"}
    x = RNG.standard_normal((2, 3, 13, 12)).astype(np.float32)
    expected = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    np.testing.assert_allclose(plan(x), expected, rtol=1e-4, atol=1e-4)


def test_data_operands_unchanged_for_other_readers():
    """The folded conv reads the pad's input directly."""
    x = Input((9, 11, 3))
    y = layers.Conv2D(2, 3)(layers.ZeroPadding2D(1)(x))
    g = fold_pad(built(Model(x, y)), CompileContext())
    (conv,) = [n for n in g if g.nodes[n]["op"] == "conv2d"]
    assert g.nodes[data_operands(g, conv)[0]]["op"] == "input"
