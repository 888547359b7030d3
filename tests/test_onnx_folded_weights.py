"""Initializers that reach an op through folded nodes stay weights: a float16 kernel behind a
``Cast``, a bias behind ``Unsqueeze``/``Reshape``, a tied matrix behind ``Identity`` are set by
``set_weights`` under their initializer names, and compiled plans see the new values."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from compiler import compile  # noqa: E402
from compiler import onnx as conx  # noqa: E402

RNG = np.random.default_rng(11)


def folded_weights_model() -> onnx.ModelProto:
    inits = {"W16": RNG.standard_normal((4, 3, 3, 3)).astype(np.float16),
             "B": RNG.standard_normal(4).astype(np.float32),
             "Wfc": RNG.standard_normal((4, 5)).astype(np.float32),
             "bfc": RNG.standard_normal(5).astype(np.float32),
             "axes": np.asarray([1, 2], np.int64), "row": np.asarray([1, 5], np.int64)}
    nodes = [
        helper.make_node("Cast", ["W16"], ["W"], to=TensorProto.FLOAT, name="cast_w"),
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Unsqueeze", ["B", "axes"], ["B3"], name="bias_axes"),
        helper.make_node("Add", ["c", "B3"], ["cb"], name="bias"),
        helper.make_node("Relu", ["cb"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Identity", ["Wfc"], ["Wtied"], name="tied"),
        helper.make_node("MatMul", ["f", "Wtied"], ["m"], name="fc"),
        helper.make_node("Reshape", ["bfc", "row"], ["b2"], name="fc_bias_row"),
        helper.make_node("Add", ["m", "b2"], ["y"], name="fc_bias"),
    ]
    graph = helper.make_graph(
        nodes, "folded", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def reference(proto, x, scale: float = 1.0) -> np.ndarray:
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for t in proto.graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype.kind == "f":
            t.CopyFrom(numpy_helper.from_array((a * scale).astype(a.dtype), t.name))
    return ReferenceEvaluator(proto).run(None, {"x": x})[0]


def test_initializers_behind_folded_nodes_are_weights_by_their_names():
    proto = folded_weights_model()
    model = conx.load(proto)
    assert sorted(v.name for v in model.weights) == ["B", "W16", "Wfc", "bfc"]
    x = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(model(x), reference(proto, x), rtol=1e-4, atol=1e-4)


def test_set_weights_reaches_them_and_compiled_plans_see_it():
    proto = folded_weights_model()
    model = conx.load(proto)
    plan = compile(model)
    x = RNG.standard_normal((3, 3, 6, 6)).astype(np.float32)
    model.set_weights([2.0 * w for w in model.get_weights()])  # layout-free: a scale
    want = reference(proto, x, scale=2.0)
    np.testing.assert_allclose(plan(x), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model(x), want, rtol=1e-4, atol=1e-4)
    assert not np.allclose(want, reference(proto, x))


# -- behind Transpose and arithmetic with constants ------------------------------------------
def constant_node(name: str, value) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=f"const_{name}",
                            value=numpy_helper.from_array(np.asarray(value, np.float32), name))


def arithmetic_weights_model() -> tuple[onnx.ModelProto, dict]:
    """A conv kernel behind ``Mul(W, 0.5)``, a bias behind ``Sub(B, mean)`` and ``Unsqueeze``,
    a Linear weight behind ``Transpose`` (torch's export), a Gemm weight scaled per row."""
    inits = {"Wc": RNG.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "B": RNG.standard_normal(4).astype(np.float32),
             "Wt": RNG.standard_normal((5, 4)).astype(np.float32),
             "Wg": RNG.standard_normal((5, 4)).astype(np.float32),
             "axes": np.asarray([1, 2], np.int64)}
    nodes = [
        constant_node("half", 0.5),
        constant_node("mean", [0.5, -1.0, 2.0, 0.25]),
        constant_node("rows", [[1.0], [2.0], [-1.0], [0.5], [3.0]]),
        helper.make_node("Mul", ["Wc", "half"], ["Wc2"], name="scale_w"),
        helper.make_node("Conv", ["x", "Wc2"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Sub", ["B", "mean"], ["Bc"], name="center_b"),
        helper.make_node("Unsqueeze", ["Bc", "axes"], ["B3"], name="bias_axes"),
        helper.make_node("Add", ["c", "B3"], ["cb"], name="bias"),
        helper.make_node("Relu", ["cb"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Transpose", ["Wt"], ["WtT"], name="linear_t", perm=[1, 0]),
        helper.make_node("MatMul", ["f", "WtT"], ["m1"], name="linear"),
        helper.make_node("Mul", ["rows", "Wg"], ["Wgs"], name="scale_rows"),
        helper.make_node("Gemm", ["f", "Wgs"], ["m2"], name="gemm", transB=1),
        helper.make_node("Add", ["m1", "m2"], ["y"], name="sum"),
    ]
    graph = helper.make_graph(
        nodes, "arith", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), inits


def reference_with(proto, x, new: dict) -> np.ndarray:
    """The reference run with initializers ``new`` (name -> array, ONNX layout) swapped in."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for t in proto.graph.initializer:
        if t.name in new:
            t.CopyFrom(numpy_helper.from_array(np.asarray(new[t.name], np.float32), t.name))
    return ReferenceEvaluator(proto).run(None, {"x": x})[0]


def test_initializers_behind_transpose_and_arithmetic_are_weights_by_their_names():
    proto, inits = arithmetic_weights_model()
    model = conx.load(proto)
    weights = {v.name: np.asarray(v) for v in model.weights}
    assert sorted(weights) == ["B", "Wc", "Wg", "Wt"]
    # the initializers themselves (in the kernels' layouts), not the folded values
    np.testing.assert_array_equal(weights["Wc"], inits["Wc"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(weights["B"].reshape(-1), inits["B"])  # (1, 1, 1, 4): NHWC
    np.testing.assert_array_equal(weights["Wt"], inits["Wt"].T)
    np.testing.assert_array_equal(weights["Wg"], inits["Wg"].T)
    x = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(model(x), reference_with(proto, x, {}), rtol=1e-4, atol=1e-4)


def test_set_weights_behind_arithmetic_reaches_compiled_plans():
    proto, inits = arithmetic_weights_model()
    model = conx.load(proto)
    plan = compile(model)
    x = RNG.standard_normal((3, 3, 6, 6)).astype(np.float32)
    before = plan(x)
    model.set_weights(model.get_weights())  # a round trip changes nothing
    np.testing.assert_allclose(plan(x), before, rtol=1e-6, atol=1e-6)
    # scaled: Sub(2B, mean) is not 2 * Sub(B, mean), so only a recomputed bias matches
    model.set_weights([2.0 * w for w in model.get_weights()])
    want = reference_with(proto, x, {k: 2.0 * v for k, v in inits.items() if k != "axes"})
    np.testing.assert_allclose(plan(x), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model(x), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(compile(model)(x), want, rtol=1e-4, atol=1e-4)
    assert not np.allclose(want, before, rtol=1e-3)


@pytest.mark.parametrize("scaled", [False, True])
def test_a_1d_conv_kernel_is_a_weight_by_its_name_also_behind_arithmetic(scaled):
    w = RNG.standard_normal((4, 3, 3)).astype(np.float32)
    nodes = [constant_node("half", 0.5),
             helper.make_node("Mul", ["W", "half"], ["Wk"], name="scale_w"),
             helper.make_node("Conv", ["x", "Wk" if scaled else "W"], ["y"], name="conv1d",
                              pads=[1, 1])]
    graph = helper.make_graph(
        nodes, "c1", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "W")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model = conx.load(proto)
    assert [v.name for v in model.weights] == ["W"]
    plan = compile(model)
    x = RNG.standard_normal((2, 3, 7)).astype(np.float32)
    np.testing.assert_allclose(plan(x), reference_with(proto, x, {}), rtol=1e-4, atol=1e-4)
    model.set_weights([3.0 * v for v in model.get_weights()])
    np.testing.assert_allclose(plan(x), reference_with(proto, x, {"W": 3.0 * w}),
                               rtol=1e-4, atol=1e-4)
