"""An ONNX-loaded model as a layer of other models, and pickled: nesting equals the NumPy
composition of ``onnx.reference`` and a Dense, weights stay reachable by name, and a pickle
round trip in a fresh process gives identical outputs."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from compiler import Input, Model, Sequential, compile, layers  # noqa: E402
from compiler import onnx as conx  # noqa: E402

RNG = np.random.default_rng(3)
ROOT = Path(__file__).resolve().parents[1]


def small_cnn() -> onnx.ModelProto:
    """Conv (padded) -> Relu -> GlobalAveragePool -> Flatten -> Gemm, dynamic batch."""
    inits = {"conv.W": RNG.standard_normal((4, 3, 3, 3)), "conv.B": RNG.standard_normal(4),
             "fc.W": RNG.standard_normal((5, 4)), "fc.B": RNG.standard_normal(5)}
    nodes = [helper.make_node("Conv", ["x", "conv.W", "conv.B"], ["c"], name="conv",
                              pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc.W", "fc.B"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(
        nodes, "small_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                           ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def reference(proto, x, replace: dict | None = None) -> np.ndarray:
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for t in proto.graph.initializer:
        if replace and t.name in replace:
            t.CopyFrom(numpy_helper.from_array(replace[t.name], t.name))
    return ReferenceEvaluator(proto).run(None, {"x": x})[0]


def images(batch: int) -> np.ndarray:
    return RNG.standard_normal((batch, 3, 8, 8)).astype(np.float32)


def dense(h: np.ndarray, layer) -> np.ndarray:
    kernel, bias = layer.get_weights()
    return h @ kernel + bias


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_sequential_with_an_onnx_model_then_dense():
    proto = small_cnn()
    inner = conx.load(proto, name="cnn")
    head = layers.Dense(2)
    net = Sequential([Input((3, 8, 8)), inner, head])
    for batch in (1, 3):
        x = images(batch)
        close(net(x), dense(reference(proto, x), head))
    keys = [v.name for v in net.weights]
    assert "cnn/onnx_weights/conv.W" in keys and len(keys) == 6, keys


def test_functional_model_calls_an_onnx_model_twice_sharing_its_weights():
    proto = small_cnn()
    inner = conx.load(proto)
    a, b = Input((3, 8, 8)), Input((3, 8, 8))
    model = Model([a, b], layers.Dense(3)(layers.Add()([inner(a), inner(b)])))
    plan = compile(model)
    xa, xb = images(2), images(2)
    want = dense(reference(proto, xa) + reference(proto, xb), model.layers[-1])
    close(plan(xa, xb), want)
    assert len(model.get_weights()) == 4 + 2


def test_set_weights_through_the_outer_model_reach_the_onnx_part():
    proto = small_cnn()
    inner = conx.load(proto, name="cnn")
    net = Sequential([Input((3, 8, 8)), inner, layers.Dense(2)])
    x = images(2)
    plan = compile(net)
    weights = net.get_weights()
    names = [v.name for v in net.weights]
    new_fc = RNG.standard_normal((4, 5)).astype(np.float32)  # stored as the (in, out) kernel
    weights[names.index("cnn/onnx_weights/fc.W")] = new_fc
    net.set_weights(weights)
    want = dense(reference(proto, x, {"fc.W": np.ascontiguousarray(new_fc.T)}), net.layers[-1])
    close(plan(x), want)
    close(inner(x), reference(proto, x, {"fc.W": np.ascontiguousarray(new_fc.T)}))


_CHILD = """
import pickle, sys
import numpy as np
obj = pickle.loads(open(sys.argv[1], "rb").read())
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(obj(x)))
"""


def in_fresh_process(tmp_path, obj, x) -> np.ndarray:
    (tmp_path / "obj.pkl").write_bytes(pickle.dumps(obj))
    np.save(tmp_path / "x.npy", x)
    subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "obj.pkl"),
                    str(tmp_path / "x.npy"), str(tmp_path / "y.npy")], cwd=ROOT, check=True,
                   timeout=600)
    return np.load(tmp_path / "y.npy")


def test_pickled_onnx_model_in_a_fresh_process_keeps_its_weights(tmp_path):
    proto = small_cnn()
    model = conx.load(proto, name="cnn")
    weights = model.get_weights()
    model.set_weights([w + 0.5 for w in weights])  # not the file's values any more
    x = images(3)
    ours = np.asarray(model(x))
    np.testing.assert_array_equal(in_fresh_process(tmp_path, model, x), ours)
    again = pickle.loads(pickle.dumps(model))
    assert again.name == "cnn" and [v.name for v in again.weights] == \
        [v.name for v in model.weights]
    np.testing.assert_array_equal(np.asarray(again(x)), ours)
    close(ours, reference(proto, x, {k: np.ascontiguousarray(w + 0.5) for k, w in zip(
        ("conv.W", "conv.B", "fc.W", "fc.B"), _onnx_layout(weights))}))


def _onnx_layout(weights: list) -> list:
    """Our stored layout back to the file's: Conv (kh, kw, in, out) -> OIHW, Dense (in, out)
    -> Gemm's (out, in) with transB."""
    conv_w, conv_b, fc_w, fc_b = weights
    return [conv_w.transpose(3, 2, 0, 1), conv_b, fc_w.T, fc_b]


def test_plan_of_a_model_nesting_an_onnx_model_pickles(tmp_path):
    """(Models built with layers do not pickle themselves; their plans do.)"""
    net = Sequential([Input((3, 8, 8)), conx.load(small_cnn(), name="cnn"), layers.Dense(2)])
    plan = compile(net)
    x = images(2)
    np.testing.assert_array_equal(in_fresh_process(tmp_path, plan, x), np.asarray(plan(x)))


def test_a_model_holding_an_onnx_model_pickles_to_a_fresh_process(tmp_path):
    net = Sequential([conx.load(small_cnn(), name="cnn"), layers.Dense(2)], name="outer")
    x = images(3)
    ours = np.asarray(net(x))
    np.testing.assert_array_equal(in_fresh_process(tmp_path, net, x), ours)
    copy = pickle.loads(pickle.dumps(net))
    assert [v.name for v in copy.weights] == [v.name for v in net.weights]
    np.testing.assert_array_equal(np.asarray(copy(x)), ours)
