"""``relu6`` (ONNX ``Clip(0, 6)``, MobileNet's activation): imported as one activation that fuses
into the conv before it, computed as the reference does (NaN kept), exported back as ``Clip``."""

import numpy as np
import pytest

from compiler import Input, Model, compile, layers
from compiler.ops.activations import apply_activation
from runtime.kernels.activations import CODES, scalar_activation

RNG = np.random.default_rng(0)


def test_relu6_kernel_matches_reference_with_nan_and_inf():
    x = np.array([-np.inf, -1.0, -0.0, 0.0, 2.5, 6.0, 6.5, np.inf, np.nan])
    want = apply_activation(x, "relu6")
    got = np.array([scalar_activation(v, CODES["relu6"], 0.0) for v in x])
    np.testing.assert_array_equal(got, want)


def _clip_model(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = RNG.standard_normal((6, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 9, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"),
         numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
         numpy_helper.from_array(np.array(6.0, np.float32), "hi")])
    path = tmp_path / "clip.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_onnx_clip_0_6_fuses_into_conv(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from compiler import onnx as conx

    path = _clip_model(tmp_path)
    plan = compile(conx.load(path))
    ops = sorted(plan.graph.nodes[n]["op"] for n in plan.graph
                 if plan.graph.nodes[n]["op"] not in ("input", "param", "transpose"))
    assert ops == ["conv2d"]
    (conv,) = [n for n in plan.graph if plan.graph.nodes[n]["op"] == "conv2d"]
    assert plan.graph.nodes[conv]["attrs"]["activation"] == "relu6"
    x = 4 * RNG.standard_normal((2, 3, 9, 10)).astype(np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    np.testing.assert_allclose(plan(x), want, rtol=1e-4, atol=1e-4)


def test_relu6_layer_exports_as_clip(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from compiler import onnx as conx

    x = Input((6, 5, 2))
    model = Model(x, layers.Conv2D(4, 3, padding="same", activation="relu6")(x))
    data = 4 * RNG.standard_normal((2, 6, 5, 2)).astype(np.float32)
    want = compile(model)(data)
    assert want.max() == 6.0 and want.min() == 0.0
    proto = conx.export(model, tmp_path / "m.onnx")
    assert "Clip" in {n.op_type for n in proto.graph.node}
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: data})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
