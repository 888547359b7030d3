"""An imported ONNX model is an ordinary ``compiler.Model``: weights by initializer name,
``set_weights`` seen by compiled plans, ``compile`` with the declared symbolic signature, NHWC
layout, several inputs and outputs, plans that pickle, a summary and the CLI."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
from onnx_helpers import make_model, node, rand

from compiler import CompilerError, TensorSpec, compile
from compiler import onnx as conx


def small_cnn():
    """conv (bias) -> relu -> maxpool -> global pool -> flatten -> gemm, dynamic N, H, W."""
    nodes = [node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], pads=[1, 1, 1, 1]),
             node("Relu", ["c"], ["r"]),
             node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             node("GlobalAveragePool", ["p"], ["g"]), node("Flatten", ["g"], ["f"]),
             node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1)]
    inits = {"conv.weight": rand(4, 3, 3, 3, seed=1), "conv.bias": rand(4, seed=2),
             "fc.weight": rand(5, 4, seed=3), "fc.bias": rand(5, seed=4)}
    model = make_model(nodes, {"x": rand(1, 3, 8, 8)}, ["y"], inits,
                       dims={"x": ("batch", 3, "height", "width")})
    return model, inits


def numpy_cnn(x, inits):
    """The same network in NumPy, from the ONNX initializers."""
    w, b = inits["conv.weight"], inits["conv.bias"]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    n, _, h, wd = x.shape
    c = np.zeros((n, w.shape[0], h, wd))
    for i in range(3):
        for j in range(3):
            c += np.einsum("nchw,oc->nohw", xp[:, :, i:i + h, j:j + wd], w[:, :, i, j])
    r = np.maximum(c + b[None, :, None, None], 0)
    p = r[:, :, :h // 2 * 2, :wd // 2 * 2].reshape(n, -1, h // 2, 2, wd // 2, 2).max((3, 5))
    return p.mean((2, 3)) @ inits["fc.weight"].T + inits["fc.bias"]


def test_weights_are_named_after_initializers_in_deferc_layout():
    model, inits = small_cnn()
    net = conx.load(model)
    names = [v.name for v in net.weights]
    assert names == ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    w = dict(zip(names, net.get_weights()))
    np.testing.assert_array_equal(w["conv.weight"], inits["conv.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(w["fc.weight"], inits["fc.weight"].T)


def test_compile_uses_the_declared_symbolic_signature():
    model, inits = small_cnn()
    net = conx.load(model)
    plan = compile(net)
    for shape in [(1, 3, 8, 8), (3, 3, 12, 10)]:
        x = rand(*shape, seed=sum(shape))
        np.testing.assert_allclose(plan(x), numpy_cnn(x, inits), rtol=1e-4, atol=1e-4)
    text = net.summary(print_fn=None)
    assert "(batch, 3, height, width)" in text and "(batch, 5)" in text


def test_set_weights_is_seen_by_compiled_plans_and_save_weights(tmp_path):
    model, inits = small_cnn()
    net = conx.load(model)
    x = rand(2, 3, 8, 8)
    before = net(x)
    plan = compile(net)
    weights = net.get_weights()
    weights[3] = weights[3] + 1.0  # fc.bias
    net.set_weights(weights)
    np.testing.assert_allclose(plan(x), before + 1.0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net(x), before + 1.0, rtol=1e-5, atol=1e-5)
    net.save_weights(tmp_path / "w.npz")
    fresh = conx.load(model)
    fresh.load_weights(tmp_path / "w.npz")
    np.testing.assert_allclose(fresh(x), before + 1.0, rtol=1e-5, atol=1e-5)


def test_plan_pickles():
    model, inits = small_cnn()
    plan = compile(conx.load(model))
    x = rand(2, 3, 8, 8)
    clone = pickle.loads(pickle.dumps(plan))
    np.testing.assert_allclose(clone(x), plan(x), rtol=1e-6)


def test_nhwc_layout_takes_channels_last_arrays():
    model, inits = small_cnn()
    net = conx.load(model, layout="NHWC")
    x = rand(2, 3, 8, 8)
    np.testing.assert_allclose(net(x.transpose(0, 2, 3, 1)), numpy_cnn(x, inits), rtol=1e-4,
                               atol=1e-4)
    plan = compile(net)
    assert not any(plan.graph.nodes[n]["op"] == "transpose" for n in plan.graph.nodes)
    with pytest.raises(CompilerError, match="layout"):
        conx.load(model, layout="CHWN")


def test_input_shapes_override_and_bytes_source():
    model, inits = small_cnn()
    net = conx.load(model.SerializeToString(), input_shapes={"x": (None, 3, 8, 8)})
    x = rand(3, 3, 8, 8)
    np.testing.assert_allclose(net(x), numpy_cnn(x, inits), rtol=1e-4, atol=1e-4)
    with pytest.raises(CompilerError, match="not graph inputs"):
        conx.load(model, input_shapes={"nope": (1, 3, 8, 8)})
    with pytest.raises(CompilerError, match="rank"):
        conx.load(model, input_shapes={"x": (1, 3, 8)})


def test_several_inputs_and_outputs():
    model = make_model([node("Add", ["a", "b"], ["s"]), node("Mul", ["a", "b"], ["p"])],
                       {"a": rand(2, 3), "b": rand(2, 3, seed=1)}, ["s", "p"],
                       dims={"a": ("N", 3), "b": ("N", 3)})
    net = conx.load(model)
    a, b = rand(4, 3), rand(4, 3, seed=2)
    s, p = net([a, b])
    np.testing.assert_allclose(s, a + b, rtol=1e-6)
    np.testing.assert_allclose(p, a * b, rtol=1e-6)
    s2, _ = compile(net, TensorSpec((None, 3)), TensorSpec((None, 3)))(a, b)
    np.testing.assert_allclose(s2, a + b, rtol=1e-6)


def test_conv_bn_relu_chain_has_no_transposes_inside():
    """Channels-last values flow between NCHW ops: only the input and output transposes."""
    nodes = [node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]), node("Relu", ["c1"], ["r1"]),
             node("BatchNormalization", ["r1", "s", "b", "m", "v"], ["n1"]),
             node("Conv", ["n1", "w2"], ["c2"]), node("Add", ["c2", "n1"], ["y"])]
    inits = {"w1": rand(4, 3, 3, 3, seed=1), "w2": rand(4, 4, 1, 1, seed=2),
             "s": rand(4, seed=3), "b": rand(4, seed=4), "m": rand(4, seed=5),
             "v": rand(4, seed=6, positive=True)}
    model = make_model(nodes, {"x": rand(1, 3, 6, 6)}, ["y"], inits,
                       dims={"x": ("N", 3, "H", "W")})
    plan = compile(conx.load(model))
    ops = [plan.graph.nodes[n]["op"] for n in plan.graph.nodes]
    assert ops.count("transpose") == 2


def test_cli_reports_inputs_ops_and_transposes(tmp_path):
    model, _ = small_cnn()
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    dot = tmp_path / "m.dot"
    out = subprocess.run([sys.executable, "-m", "compiler.onnx", str(path), "--dot", str(dot)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "input  x: (batch, 3, height, width)" in out.stdout
    assert "Conv 1" in out.stdout and "transposes left" in out.stdout
    assert dot.read_text().startswith("digraph")
    bad = make_model([helper_node("Foo"), helper_node("Bar")], {"x": rand(2)}, ["y2"])
    path.write_bytes(bad.SerializeToString())
    out = subprocess.run([sys.executable, "-m", "compiler.onnx", str(path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 1
    assert "unsupported (2)" in out.stdout and "Foo" in out.stdout and "Bar" in out.stdout


def helper_node(op):
    from onnx import helper

    return helper.make_node(op, ["x"] if op == "Foo" else ["y1"],
                            ["y1"] if op == "Foo" else ["y2"], name=op.lower())


def test_compiler_imports_without_onnx_and_load_says_what_to_install():
    code = ("import sys; sys.modules['onnx'] = None\n"
            "import compiler\nfrom compiler import onnx as conx\n"
            "try:\n    conx.load(b'x')\nexcept compiler.CompilerError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "deferc[onnx]" in out.stdout
