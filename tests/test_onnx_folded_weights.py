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
