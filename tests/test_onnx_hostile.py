"""Hostile ONNX files: each is a ``CompilerError`` (never a crash, a hang or a read outside the
model's folder)."""

import os

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_helpers import make_model, node, rand

from compiler import CompilerError
from compiler import onnx as conx


def conv_model():
    return make_model([node("Conv", ["x", "w"], ["c"]), node("Relu", ["c"], ["y"])],
                      {"x": rand(1, 3, 8, 8)}, ["y"], {"w": rand(4, 3, 3, 3, seed=1)})


def test_truncated_file_at_every_cut(tmp_path):
    data = conv_model().SerializeToString()
    for cut in range(1, len(data), max(1, len(data) // 60)):
        path = tmp_path / "cut.onnx"
        path.write_bytes(data[:cut])
        with pytest.raises(CompilerError):
            conx.load(path)


def test_bit_flips_never_crash():
    data = bytearray(conv_model().SerializeToString())
    rng = np.random.default_rng(0)
    for _ in range(60):
        flipped = bytearray(data)
        pos = int(rng.integers(len(flipped)))
        flipped[pos] ^= 1 << int(rng.integers(8))
        try:
            conx.load(bytes(flipped))
        except CompilerError:
            pass  # refused cleanly; a file that still parses and checks may load


def test_wrong_magic_and_not_a_model(tmp_path):
    path = tmp_path / "x.onnx"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(CompilerError, match="not a valid ONNX"):
        conx.load(path)
    with pytest.raises(CompilerError, match="expected a path, bytes"):
        conx.load(12)
    with pytest.raises(CompilerError, match="cannot read"):
        conx.load(tmp_path / "missing.onnx")


def test_giant_declared_dims_are_refused_before_allocating():
    model = conv_model()
    big = TensorProto(name="w", data_type=TensorProto.FLOAT)
    big.dims.extend([1 << 20, 1 << 20, 3, 3])
    model.graph.initializer[0].CopyFrom(big)
    with pytest.raises(CompilerError, match="more than"):
        conx.load(model)
    model = conv_model()
    model.graph.initializer[0].dims[0] = 40  # declares more values than the file holds
    with pytest.raises(CompilerError, match="needs"):
        conx.load(model)
    model = conv_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 1 << 40
    with pytest.raises(CompilerError, match="not a usable size"):
        conx.load(model)


def test_constant_of_shape_with_a_giant_shape():
    model = make_model([node("ConstantOfShape", ["s"], ["c"]), node("Add", ["x", "c"], ["y"])],
                       {"x": rand(2)}, ["y"], {"s": np.array([1 << 30, 1 << 30], np.int64)})
    with pytest.raises(CompilerError, match="more than"):
        conx.load(model)


def _external(model, location: str, offset: int = 0, length: int | None = None):
    t = model.graph.initializer[0]
    raw_len = len(numpy_helper.to_array(t).tobytes())
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)),
                 ("length", str(raw_len if length is None else length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return model


def test_external_data_inside_the_folder_loads(tmp_path):
    model = conv_model()
    w = numpy_helper.to_array(model.graph.initializer[0])
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16 + w.astype("<f4").tobytes())
    _external(model, "weights.bin", offset=16)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    net = conx.load(path)
    np.testing.assert_array_equal(net.get_weights()[0], w.transpose(2, 3, 1, 0))


@pytest.mark.parametrize("location", ["/etc/passwd", "../secret.bin", "sub/../../secret.bin"])
def test_external_data_escaping_the_folder_is_refused(tmp_path, location):
    inner = tmp_path / "model"
    inner.mkdir()
    (tmp_path / "secret.bin").write_bytes(bytes(4 * 108))
    path = inner / "m.onnx"
    path.write_bytes(_external(conv_model(), location).SerializeToString())
    with pytest.raises(CompilerError, match="relative path inside"):
        conx.load(path)


def test_external_data_through_a_symlink_is_refused(tmp_path):
    inner = tmp_path / "model"
    inner.mkdir()
    (tmp_path / "secret.bin").write_bytes(bytes(4 * 108))
    os.symlink(tmp_path / "secret.bin", inner / "w.bin")
    path = inner / "m.onnx"
    path.write_bytes(_external(conv_model(), "w.bin").SerializeToString())
    with pytest.raises(CompilerError, match="symlink"):
        conx.load(path)


def test_external_data_shorter_than_declared_and_from_bytes(tmp_path):
    (tmp_path / "w.bin").write_bytes(bytes(10))
    model = _external(conv_model(), "w.bin")
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(CompilerError, match="holds 10 bytes"):
        conx.load(path)
    with pytest.raises(CompilerError, match="load the model from its path"):
        conx.load(model.SerializeToString())


def test_cycles_and_duplicate_outputs():
    nodes = [node("Relu", ["x", ], ["a"]), node("Add", ["a", "c"], ["b"]),
             node("Relu", ["b"], ["c"])]
    nodes[0].name, nodes[1].name, nodes[2].name = "r1", "add", "r2"
    cyc = make_model(nodes, {"x": rand(2)}, ["c"])
    with pytest.raises(CompilerError, match="cycle"):
        conx.load(cyc)
    dup = make_model([node("Relu", ["x"], ["y"]), node("Sigmoid", ["x"], ["y"])],
                     {"x": rand(2)}, ["y"])
    with pytest.raises(CompilerError, match="defined twice"):
        conx.load(dup)
    twice = make_model([node("Relu", ["x"], ["y"])], {"x": rand(2)}, ["y", "y"])
    with pytest.raises(CompilerError, match="duplicate graph output"):
        conx.load(twice)
    undefined = make_model([node("Relu", ["nowhere"], ["y"])], {"x": rand(2)}, ["y"])
    with pytest.raises(CompilerError, match="nothing defines"):
        conx.load(undefined)


def test_unsupported_ops_are_listed_all_at_once():
    nodes = [node("Relu", ["x"], ["a"]), helper.make_node("Loop2", ["a"], ["b"], name="first"),
             helper.make_node("Frobnicate", ["b"], ["y"], name="second")]
    model = make_model(nodes, {"x": rand(2)}, ["y"])
    with pytest.raises(CompilerError) as e:
        conx.load(model)
    text = str(e.value)
    for part in ("Loop2", "'first'", "Frobnicate", "'second'", "opset 17", "ai.onnx",
                 "Supported ops", "Conv"):
        assert part in text


def test_custom_domain_and_opset_range():
    custom = make_model([helper.make_node("Fancy", ["x"], ["y"], name="f", domain="com.acme")],
                        {"x": rand(2)}, ["y"])
    custom.opset_import.append(helper.make_opsetid("com.acme", 1))
    with pytest.raises(CompilerError, match="custom domains.*Fancy.*com.acme"):
        conx.load(custom)
    for opset in (5, 22):
        with pytest.raises(CompilerError, match="opsets 6 to 21"):
            conx.load(make_model([node("Relu", ["x"])], {"x": rand(2)}, ["y"], opset=opset))


def test_a_dim_contradicting_a_weight():
    model = make_model([node("Conv", ["x", "w"])], {"x": rand(1, 5, 8, 8)}, ["y"],
                       {"w": rand(4, 3, 3, 3, seed=1)})
    with pytest.raises(CompilerError, match="channels"):
        conx.load(model)
