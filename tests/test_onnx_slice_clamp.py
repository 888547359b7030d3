"""ONNX Slice on sizes known only at run time clamps as ONNX does: a start or end beyond the
axis, counted from its end, an end read off another input's shape, negative steps, a start past
the end (empty). One compiled plan serves every run-time size; each output equals
``onnx.reference``'s, and nothing is read outside the input (the numba kernel runs: tier jit)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from compiler import compile  # noqa: E402
from compiler import onnx as conx  # noqa: E402
from compiler.errors import CompilerError  # noqa: E402

BIG = 2 ** 62


def slice_model(starts, ends, axes, steps, x_dims=(2, "T", 3), end_from_shape=False):
    """``y = Slice(x, starts, ends, axes, steps)``; ``end_from_shape``: ``ends = Shape(u)``."""
    inits = {"s": starts, "a": axes, "st": steps}
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_dims))]
    nodes = []
    if end_from_shape:
        inputs.append(helper.make_tensor_value_info("u", TensorProto.FLOAT, ["U"]))
        nodes.append(helper.make_node("Shape", ["u"], ["e"], name="len_u"))
    else:
        inits["e"] = ends
    nodes.append(helper.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"], name="cut"))
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v, np.int64), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run_sizes(proto, feeds_for, sizes, expect=None):
    """Every size through one plan (and the eager model), against the reference (or
    ``expect(proto, feeds)``)."""
    model = conx.load(proto)
    plan = compile(model, tier="jit")
    for size in sizes:
        feeds = feeds_for(size)
        want = (expect or reference)(proto, feeds)
        arrays = list(feeds.values())
        for got in (plan(*arrays), model(arrays if len(arrays) > 1 else arrays[0])):
            assert got.shape == want.shape, (size, got.shape, want.shape)
            np.testing.assert_array_equal(got, want)


def reference(proto, feeds: dict) -> np.ndarray:
    return ReferenceEvaluator(proto).run(None, feeds)[0]


def onnx_runtime(proto, feeds: dict) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    proto.ir_version = 8
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, feeds.values())))[0]


def x_of(t: int) -> dict:
    return {"x": np.arange(2 * t * 3, dtype=np.float32).reshape(2, t, 3)}


@pytest.mark.parametrize("start,end,step", [
    (0, 5, 1),           # an end beyond short axes
    (1, BIG, 1),         # to the end (INT64 max)
    (4, BIG, 1),         # a start beyond short axes: empty
    (3, 1, 1),           # a start past the end: always empty
    (-3, -1, 1),         # counted from the end, clamped at 0
    (-100, 100, 3),      # both beyond, a step
    (-1, -BIG, -1),      # the whole axis reversed
    (3, 0, -1),          # backwards from a start beyond short axes
    (5, 1, -2),          # backwards with a step
    (10, -10, -2),       # backwards, both bounds clamped
    (-1, -3, -1),        # backwards, counted from the end
])
def test_slice_of_a_run_time_axis_clamps(start, end, step):
    proto = slice_model([start], [end], [1], [step])
    run_sizes(proto, x_of, (1, 3, 6, 2))


@pytest.mark.parametrize("start,end,step", [(-2, -5, -1), (-10, -BIG, -1), (-10, -5, -2)])
def test_a_backward_start_before_the_axis_takes_element_0_as_the_spec_says(start, end, step):
    """ONNX clamps a negative step's start into ``[0, d-1]`` (ONNX Runtime does);
    ``onnx.reference`` slices as Python does (-1: empty), so ONNX Runtime is the judge here."""
    proto = slice_model([start], [end], [1], [step])
    run_sizes(proto, x_of, (1, 2, 6), expect=onnx_runtime)
    assert reference(proto, x_of(1))[0].shape == (0, 3)  # onnx.reference's differing answer


@pytest.mark.parametrize("start,step,u_len", [(0, 1, 8), (0, 1, 2), (2, 1, 8), (1, 2, 5),
                                              (-1, -1, 3), (4, 1, 3)])
def test_slice_end_from_another_inputs_shape(start, step, u_len):
    """``ends = Shape(u)``: ``u`` may be longer than the sliced axis (clamped) or shorter."""
    proto = slice_model([start], None, [1], [step], end_from_shape=True)

    def feeds(t):
        return {**x_of(t), "u": np.zeros(u_len, np.float32)}
    run_sizes(proto, feeds, (1, 4, 9))


def test_slice_end_from_shape_on_an_axis_of_known_size():
    proto = slice_model([1], None, [2], [1], x_dims=("N", 2, 5), end_from_shape=True)

    def feeds(u):
        return {"x": np.arange(3 * 2 * 5, dtype=np.float32).reshape(3, 2, 5),
                "u": np.zeros(u, np.float32)}
    run_sizes(proto, feeds, (1, 3, 7))


def test_several_axes_known_and_run_time_in_one_slice():
    proto = slice_model([1, -2, 0], [BIG, 0, 2], [0, 1, 2], [1, -1, 1], x_dims=(3, "T", 4))
    run_sizes(proto, lambda t: {"x": np.arange(3 * t * 4, dtype=np.float32).reshape(3, t, 4)},
              (1, 2, 5))


def test_slice_of_a_channels_last_value_with_run_time_sides():
    """After a Conv the value is held NHWC: the run-time H axis is remapped, not transposed."""
    w = np.random.default_rng(3).standard_normal((4, 2, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")] + [
        numpy_helper.from_array(np.asarray(v, np.int64), k)
        for k, v in {"s": [1, -1], "e": [7, -BIG], "a": [2, 3], "st": [2, -1]}.items()]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Slice", ["c", "s", "e", "a", "st"], ["s1"], name="cut"),
             helper.make_node("Relu", ["s1"], ["y"], name="relu")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model = conx.load(proto)
    plan = compile(model, tier="jit")
    rng = np.random.default_rng(5)
    for h, wd in ((2, 3), (9, 4), (5, 1)):
        x = rng.standard_normal((2, 2, h, wd)).astype(np.float32)
        want = ReferenceEvaluator(proto).run(None, {"x": x})[0]
        got = plan(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_a_start_known_only_at_run_time_is_refused_at_import():
    proto = slice_model([0], None, [1], [1], end_from_shape=True)
    proto.graph.node[1].input[1] = "e"  # starts = Shape(u) too
    with pytest.raises(CompilerError, match=r"node 'cut' \(Slice\): start U on axis 1"):
        conx.load(proto)


def test_an_imported_clamped_slice_exports_back_and_onnx_runtime_agrees():
    ort = pytest.importorskip("onnxruntime")
    proto = slice_model([-1], None, [1], [-1], end_from_shape=True)
    model = conx.load(proto)
    exported = conx.export(model, None)
    session = ort.InferenceSession(exported.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for t, u in ((5, 2), (2, 7)):
        feeds = {**x_of(t), "u": np.zeros(u, np.float32)}
        want = ReferenceEvaluator(proto).run(None, feeds)[0]
        got = session.run(None, dict(zip(names, feeds.values())))[0]
        np.testing.assert_array_equal(got, want)


def test_slice_range_clamps_like_onnx_runtime():
    """The one clamping rule (known and run-time sizes) against ONNX Runtime, empty axes too."""
    import itertools

    from compiler.ops.clamped_slice import slice_range

    values = (-10, -1, 0, 3, BIG, -BIG)
    for start, end, step in itertools.product(values, values, (1, 2, -1, -2)):
        proto = slice_model([start], [end], [0], [step], x_dims=("T",))
        for d in (0, 1, 4):
            want = onnx_runtime(proto, {"x": np.arange(d, dtype=np.float32)}).astype(int)
            first, n = slice_range(d, start, end, step)
            assert [first + step * i for i in range(n)] == list(want), (d, start, end, step)
