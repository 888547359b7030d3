"""The ONNX ops composed from primitives (ConvTranspose, InstanceNormalization, LRN,
Resize/Upsample, Einsum, ArgMax/ArgMin, ReduceProd/ReduceLogSumExp, Pad reflect/edge/wrap, 1-D and
dilated pooling, Tile on run-time values) against ``onnx.reference.ReferenceEvaluator``, at the
opsets where their signatures changed; hostile attributes are ``CompilerError``s naming the node
and the attribute."""

import numpy as np
import pytest
from onnx_helpers import check, make_model, node, rand

from compiler import onnx as conx
from compiler.errors import CompilerError

DYN4 = ("N", 3, "H", "W")


def ort_expected(nodes, inputs, initializers, opset=17):
    ort = pytest.importorskip("onnxruntime")
    model = make_model(nodes, inputs, [nodes[-1].output[0]], initializers, opset)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def refused(nodes, inputs, match, initializers=None, opset=17, dims=None):
    model = make_model(nodes, inputs, [nodes[-1].output[0]], initializers, opset, dims)
    with pytest.raises(CompilerError, match=match):
        conx.load(model)


# -- ConvTranspose ---------------------------------------------------------------------------------
@pytest.mark.parametrize("attrs", [
    dict(),
    dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
    dict(strides=[2, 1], dilations=[1, 2], pads=[0, 1, 2, 0]),
    dict(strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(strides=[2, 2], output_shape=[10, 9]),
])
def test_conv_transpose(attrs):
    x = rand(2, 4, 5, 4)
    w, b = rand(4, 3, 3, 3, seed=1), rand(3, seed=2)
    nodes = [node("ConvTranspose", ["x", "w", "b"], **attrs)]
    # onnx.reference's col2im fails on output_shape: ONNX Runtime there
    expected = ort_expected(nodes, {"x": x}, {"w": w, "b": b}) if "output_shape" in attrs else None
    check(nodes, {"x": x}, initializers={"w": w, "b": b}, dims={"x": ("N", 4, 5, 4)},
          expected=expected)


def test_conv_transpose_groups_dynamic_sides_and_weights():
    x = rand(2, 4, 3, 5)
    w = rand(4, 2, 2, 2, seed=1)
    nodes = [node("ConvTranspose", ["x", "w"], strides=[2, 2], group=2)]
    # onnx.reference gets groups wrong: ONNX Runtime
    net = check(nodes, {"x": x}, initializers={"w": w}, dims={"x": ("N", 4, "H", "W")},
                expected=ort_expected(nodes, {"x": x}, {"w": w}))
    # the initializer stays a weight under its name: set_weights reaches the kernel
    (got,) = net.get_weights()
    np.testing.assert_array_equal(got, w)
    net.set_weights([w * 2])
    doubled = net(x)
    net.set_weights([w])
    np.testing.assert_allclose(doubled, 2 * net(x), rtol=1e-5, atol=1e-6)


def test_conv_transpose_hostile_attributes():
    w = rand(4, 3, 3, 3, seed=1)
    refused([node("ConvTranspose", ["x", "w"], output_padding=[2, 2])], {"x": rand(1, 4, 5, 5)},
            "convtranspose_node.*output_padding", {"w": w})
    refused([node("ConvTranspose", ["x", "w"], strides=[0, 1])], {"x": rand(1, 4, 5, 5)},
            "convtranspose_node.*strides", {"w": w})
    refused([node("ConvTranspose", ["x", "w"])], {"x": rand(1, 5, 5, 5)},
            "convtranspose_node.*axis 1.*expected 4.*received 5", {"w": w})


# -- normalization ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,dims", [((2, 3, 5, 4), DYN4), ((2, 3, 7), ("N", 3, "L"))])
def test_instance_normalization(shape, dims):
    check([node("InstanceNormalization", ["x", "s", "b"], epsilon=1e-3)], {"x": rand(*shape)},
          initializers={"s": rand(3, seed=1), "b": rand(3, seed=2)}, dims={"x": dims})


@pytest.mark.parametrize("size", [3, 4])
def test_lrn(size):
    """The spec's formula by hand (onnx.reference's LRN loops over the batch, not the channels;
    ONNX Runtime refuses even sizes), and ONNX Runtime for odd sizes."""
    nodes = [node("LRN", ["x"], size=size, alpha=0.5, beta=0.6, bias=1.5)]
    x = rand(2, 6, 4, 3)
    sq = np.zeros_like(x)
    for c in range(6):
        lo, hi = max(0, c - (size - 1) // 2), min(5, c + -(-(size - 1) // 2))
        sq[:, c] = (x[:, lo:hi + 1] ** 2).sum(1)
    expected = x / (1.5 + 0.5 / size * sq) ** 0.6
    check(nodes, {"x": x}, dims={"x": ("N", 6, "H", "W")}, expected=[expected])
    if size % 2:
        np.testing.assert_allclose(ort_expected(nodes, {"x": x}, {})[0], expected, rtol=1e-5)


def test_lrn_hostile_size():
    refused([node("LRN", ["x"], size=0)], {"x": rand(1, 3, 2, 2)}, "lrn_node.*size")


# -- Resize / Upsample -----------------------------------------------------------------------------
@pytest.mark.parametrize("mode,transform,nearest", [
    ("nearest", "asymmetric", "floor"),
    ("nearest", "half_pixel", "round_prefer_floor"),
    ("nearest", "align_corners", "round_prefer_ceil"),
    ("nearest", "tf_half_pixel_for_nearest", "ceil"),
    ("linear", "half_pixel", None),
    ("linear", "align_corners", None),
    ("linear", "asymmetric", None),
    ("linear", "pytorch_half_pixel", None),
    ("linear", "half_pixel_symmetric", None),
])
def test_resize_scales(mode, transform, nearest):
    extra = {"nearest_mode": nearest} if nearest else {}
    scales = np.array([1, 1, 2.0, 1.6], np.float32)  # whole output sizes: for align_corners,
    # onnx.reference divides by in*scale, ONNX Runtime and PyTorch by the output size
    nodes = [node("Resize", ["x", "roi", "scales"], mode=mode,
                  coordinate_transformation_mode=transform, **extra)]
    x = {"x": rand(2, 3, 4, 5)}
    inits = {"scales": scales, "roi": np.zeros(0, np.float32)}
    opset = {"half_pixel_symmetric": 19, "tf_half_pixel_for_nearest": 11}.get(transform, 13)
    expected = None
    if transform == "tf_half_pixel_for_nearest":  # opset 11 only; onnx.reference and ONNX
        # Runtime lack it: the spec's formula, (i + 0.5) / scale rounded up, by hand
        ih = np.minimum(np.ceil((np.arange(8) + 0.5) / 2.0), 3).astype(int)
        iw = np.minimum(np.ceil((np.arange(8) + 0.5) / np.float32(1.6)), 4).astype(int)
        expected = [x["x"][:, :, ih][:, :, :, iw]]
    check(nodes, x, initializers=inits, dims={"x": ("N", 3, 4, 5)},
          opset=opset, expected=expected)


@pytest.mark.parametrize("opset", [11, 19])
def test_resize_sizes_from_the_input_shape(opset):
    """As PyTorch exports ``interpolate(size=...)``: sizes = Shape(x)[:2] ++ (H', W'), so the
    dynamic batch is a symbolic dim of the sizes."""
    nodes = [node("Shape", ["x"], ["s"]), node("Slice", ["s", "zero", "two"], ["nc"]),
             node("Concat", ["nc", "hw"], ["sizes"], axis=0),
             node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear")]
    check(nodes, {"x": rand(2, 3, 5, 4)}, opset=opset, dims={"x": ("N", 3, 5, 4)},
          initializers={"zero": np.array([0], np.int64), "two": np.array([2], np.int64),
                        "hw": np.array([3, 7], np.int64)})


def test_resize_opset10_and_upsample():
    scales = np.array([1, 1, 2, 3], np.float32)
    x = rand(1, 2, 3, 4)
    for factors in (scales, np.array([1, 1, 0.6, 0.5], np.float32)):  # onnx.reference fails
        r10 = [node("Resize", ["x", "scales"])]
        check(r10, {"x": x}, initializers={"scales": factors}, opset=10,
              expected=ort_expected(r10, {"x": x}, {"scales": factors}, opset=10))
    up9 = [node("Upsample", ["x", "scales"], mode="linear")]  # onnx.reference fails on it
    check(up9, {"x": x}, initializers={"scales": scales}, opset=9,
          expected=ort_expected(up9, {"x": x}, {"scales": scales}, opset=9))
    expected = [x.repeat(2, axis=2).repeat(3, axis=3)]  # onnx.reference has no Upsample-7
    check([node("Upsample", ["x"], scales=[1.0, 1.0, 2.0, 3.0])], {"x": x}, opset=7,
          expected=expected)


def test_resize_hostile_attributes():
    scales = {"s": np.array([1, 1, 2, 2], np.float32)}
    x = {"x": rand(1, 2, 3, 3)}
    refused([node("Resize", ["x", "", "s"], mode="cubic")], x, "resize_node.*mode.*cubic",
            scales)
    refused([node("Resize", ["x", "", "s"], coordinate_transformation_mode="tf_crop_and_resize")],
            x, "resize_node.*coordinate_transformation_mode", scales)
    refused([node("Resize", ["x", "", "s"])], x, "resize_node.*size", {
        "s": np.array([1, 1, -2, 2], np.float32)})
    refused([node("Resize", ["x", "", "s"])], x, "resize_node.*axis 2.*run-time", scales,
            dims={"x": ("N", 2, "H", 3)})


# -- Einsum ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("equation,shapes", [
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("bhqk,bhkd->bhqd", [(2, 3, 4, 6), (2, 3, 6, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bi,oij,bj->bo", [(2, 3), "w", (2, 5)]),  # a bilinear layer, W (4, 3, 5)
    ("ij->ji", [(3, 4)]),
    ("bnd,df->bnf", [(2, 3, 4), "w"]),  # W (4, 6)
    ("bqhd,bkhd->bhqk", [(2, 4, 3, 5), (2, 6, 3, 5)]),
    ("ij,kl->ijkl", [(2, 3), "w"]),  # W (4, 5)
    ("bij,bij->b", [(2, 3, 4), (2, 3, 4)]),
    ("bij,bjk", [(2, 3, 4), (2, 4, 5)]),  # implicit output: "bik"
])
def test_einsum(equation, shapes):
    """Run-time operands have a dynamic first axis; "w" marks a weight (an initializer)."""
    weights = {"bi,oij,bj->bo": (4, 3, 5), "bnd,df->bnf": (4, 6), "ij,kl->ijkl": (4, 5)}
    names = [f"x{i}" for i in range(len(shapes))]
    inputs = {n: rand(*s, seed=i) for i, (n, s) in enumerate(zip(names, shapes)) if s != "w"}
    inits = {n: rand(*weights[equation], seed=9) for n, s in zip(names, shapes) if s == "w"}
    check([node("Einsum", names, equation=equation)], inputs, initializers=inits, opset=12)


def test_einsum_dynamic_batch():
    inputs = {"q": rand(2, 3, 4, 5), "k": rand(2, 3, 6, 5, seed=1)}
    check([node("Einsum", ["q", "k"], equation="bhqd,bhkd->bhqk")], inputs,
          dims={"q": ("B", 3, "T", 5), "k": ("B", 3, "S", 5)})


@pytest.mark.parametrize("equation,match", [("ii->i", "trace or diagonal"),
                                            ("...i,...i->...", "ellipsis")])
def test_einsum_refused_by_name(equation, match):
    refused([node("Einsum", ["x", "x"] if "," in equation else ["x"], equation=equation)],
            {"x": rand(3, 3)}, f"einsum_node.*{match}")


# -- ArgMax / ArgMin, reductions -----------------------------------------------------------------
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("attrs", [dict(axis=1), dict(axis=-1, keepdims=0),
                                   dict(axis=2, select_last_index=1)])
def test_arg_extremes(op, attrs):
    x = np.round(rand(2, 3, 4, 5) * 2)  # ties, so first/last index matters
    check([node(op, ["x"], **attrs)], {"x": x}, dims={"x": ("N", 3, 4, 5)}, opset=13)


def test_argmax_after_conv_channels_last():
    nodes = [node("Conv", ["x", "w"], ["c"]), node("ArgMax", ["c"], ["y"], axis=1, keepdims=0)]
    check(nodes, {"x": rand(2, 3, 5, 4)}, initializers={"w": rand(4, 3, 1, 1, seed=1)},
          dims={"x": DYN4})


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("op", ["ReduceProd", "ReduceLogSumExp", "ReduceSumSquare", "ReduceL1"])
def test_more_reductions(op, opset):
    x = rand(2, 3, 4, 5)
    if opset >= 18:
        n, inits = node(op, ["x", "axes"], keepdims=1), {"axes": np.array([1, -1], np.int64)}
    else:
        n, inits = node(op, ["x"], axes=[2], keepdims=0), {}
    check([n], {"x": x}, initializers=inits, opset=opset, dims={"x": ("N", 3, 4, 5)})


# -- Pad modes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["reflect", "edge", "wrap"])
def test_pad_modes(mode):
    pads = np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)
    check([node("Pad", ["x", "p"], mode=mode)], {"x": rand(2, 3, 4, 5)},
          initializers={"p": pads}, dims={"x": ("N", 3, 4, 5)}, opset=19)


def test_pad_reflect_opset2_after_conv():
    nodes = [node("Conv", ["x", "w"], ["c"]),
             node("Pad", ["c"], ["y"], mode="reflect", pads=[0, 0, 1, 1, 0, 0, 1, 1])]
    check(nodes, {"x": rand(1, 3, 5, 4)}, initializers={"w": rand(2, 3, 1, 1, seed=1)},
          opset=9)


def test_pad_hostile():
    p = {"p": np.array([0, 0, 4, 0, 0, 0, 0, 0], np.int64)}
    refused([node("Pad", ["x", "p"], mode="reflect")], {"x": rand(1, 1, 3, 3)},
            "pad_node.*reflect.*axis", p)
    refused([node("Pad", ["x", "p"], mode="mirror")], {"x": rand(1, 1, 3, 3)},
            "pad_node.*mode.*mirror", p)


# -- pooling ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3], strides=[2], pads=[1, 1]),
    dict(kernel_shape=[2], strides=[2], ceil_mode=1),
])
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pooling_1d(op, attrs):
    check([node(op, ["x"], **attrs)], {"x": rand(2, 3, 9)}, dims={"x": ("N", 3, 9)})


@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], dilations=[2, 2]),
    dict(kernel_shape=[2, 3], dilations=[2, 1], strides=[2, 2], pads=[1, 1, 1, 0], ceil_mode=1),
    dict(kernel_shape=[3, 3], dilations=[2, 2], auto_pad="SAME_UPPER"),
])
def test_dilated_max_pool(attrs):
    check([node("MaxPool", ["x"], **attrs)], {"x": rand(2, 3, 9, 8)}, dims={"x": ("N", 3, 9, 8)})


def test_dilated_average_pool_refused():
    refused([node("AveragePool", ["x"], kernel_shape=[2, 2], dilations=[2, 2])],
            {"x": rand(1, 1, 5, 5)}, "averagepool_node.*dilations", opset=19)


# -- Tile, Range, ConstantOfShape ------------------------------------------------------------------
def test_tile_on_runtime_values():
    nodes = [node("Conv", ["x", "w"], ["c"]), node("Tile", ["c", "r"], ["y"])]
    check(nodes, {"x": rand(2, 3, 4, 5)}, initializers={
        "w": rand(2, 3, 1, 1, seed=1), "r": np.array([1, 2, 1, 3], np.int64)}, dims={"x": DYN4})
    check([node("Tile", ["x", "r"])], {"x": rand(2, 3)},
          initializers={"r": np.array([2, 1], np.int64)}, dims={"x": ("N", 3)})


def test_constant_of_shape_and_strided_range_sized_at_run_time_refused():
    refused([node("Shape", ["x"], ["s"]), node("ConstantOfShape", ["s"], ["y"])],
            {"x": rand(2, 3)}, "constantofshape_node.*run time", dims={"x": ("N", 3)})
    nodes = [node("Shape", ["x"], ["s"]), node("Gather", ["s", "i"], ["n"], axis=0),
             node("Range", ["zero", "n", "two"], ["y"])]
    refused(nodes, {"x": rand(2, 3)}, "range_node.*run time", {
        "i": np.array(0, np.int64), "zero": np.array(0, np.int64), "two": np.array(2, np.int64)},
        dims={"x": ("N", 3)})


# -- sizes known only at run time (compiler/frontend/onnx/run_time_dims.py) ----------------------
INT64_MAX = np.iinfo(np.int64).max


@pytest.mark.parametrize("start,dtype", [(0, np.int64), (1, np.int64), (0, np.int32)])
def test_range_up_to_a_run_time_length(start, dtype):
    nodes = [node("Shape", ["x"], ["s"]), node("Gather", ["s", "i"], ["n"], axis=0),
             node("Cast", ["n"], ["m"], to=6 if dtype == np.int32 else 7),
             node("Range", ["start", "m", "one"], ["y"])]
    inits = {"i": np.array(1, np.int64), "start": np.array(start, dtype),
             "one": np.array(1, dtype)}
    for t in (5, 2):
        check(nodes, {"x": rand(2, t, 3)}, initializers=inits, dims={"x": ("N", "T", 3)})


@pytest.mark.parametrize("starts,ends,steps", [
    ([-1], [-INT64_MAX], [-1]),  # the whole time axis reversed
    ([1], [-2], [1]),            # cropped at both ends
    ([2], [INT64_MAX], [1]),     # to the end
])
def test_slice_over_a_run_time_length(starts, ends, steps):
    nodes = [node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])]
    inits = {"starts": np.array(starts, np.int64), "ends": np.array(ends, np.int64),
             "axes": np.array([1], np.int64), "steps": np.array(steps, np.int64)}
    for t in (6, 4):
        check(nodes, {"x": rand(2, t, 3)}, initializers=inits, dims={"x": ("N", "T", 3)})


def test_slice_up_to_a_length_then_expand_to_a_run_time_shape():
    """PositionEmbedding's export: a table's first T rows, broadcast to x's shape."""
    nodes = [node("Shape", ["x"], ["s"]),
             node("Slice", ["s", "one", "two"], ["t"]),
             node("Slice", ["table", "zero", "t", "zero"], ["rows"]),
             node("Unsqueeze", ["rows", "zero"], ["rows3"]),
             node("Expand", ["rows3", "s"], ["y"])]
    inits = {"table": rand(10, 3, seed=4), "zero": np.array([0], np.int64),
             "one": np.array([1], np.int64), "two": np.array([2], np.int64)}
    for batch, t in ((1, 7), (3, 2)):
        check(nodes, {"x": rand(batch, t, 3)}, initializers=inits, dims={"x": ("N", "T", 3)})


def test_reshape_back_to_two_leading_run_time_sizes():
    """TimeDistributed's export: (N, T, C) -> (N*T, C) -> op -> Shape(x)."""
    nodes = [node("Reshape", ["x", "rows"], ["flat"]), node("Relu", ["flat"], ["r"]),
             node("Shape", ["x"], ["s"]), node("Reshape", ["r", "s"], ["y"])]
    inits = {"rows": np.array([-1, 3], np.int64)}
    for batch, t in ((2, 5), (1, 3)):
        check(nodes, {"x": rand(batch, t, 3)}, initializers=inits, dims={"x": ("N", "T", 3)})


def test_a_run_time_slice_end_no_tensor_carries_is_refused():
    """An end computed from a run-time size (``U - 1``) that no tensor has as a dim."""
    nodes = [node("Shape", ["u"], ["s"]), node("Sub", ["s", "one"], ["e"]),
             node("Slice", ["x", "zero", "e", "axes"], ["y"])]
    inits = {"zero": np.array([0], np.int64), "one": np.array([1], np.int64),
             "axes": np.array([1], np.int64)}
    refused(nodes, {"x": rand(2, 5), "u": rand(4)}, r"slice_node.*\(Slice\).*end U-1.*axis 1",
            inits, dims={"x": ("N", "T"), "u": ("U",)})


def test_conv_transpose_and_reduce_prod_export_round_trip(tmp_path):
    """Imported, exported again (our NHWC IR -> ONNX), and run by ONNX Runtime."""
    ort = pytest.importorskip("onnxruntime")
    from compiler import TensorSpec

    nodes = [node("ConvTranspose", ["x", "w", "b"], ["c"], strides=[2, 2], pads=[1, 0, 0, 1],
                  output_padding=[1, 1]),
             node("ReduceProd", ["c"], ["y"], axes=[1], keepdims=1)]
    x = rand(2, 4, 3, 5)
    inits = {"w": rand(4, 3, 3, 3, seed=1) * 0.5, "b": rand(3, seed=2)}
    net = check(nodes, {"x": x}, initializers=inits, opset=13, dims={"x": ("N", 4, 3, 5)})
    proto = conx.export(net, None, TensorSpec((None, 4, 3, 5)))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], net(x),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind,direction", [("LSTM", "forward"), ("LSTM", "reverse"),
                                            ("GRU", "forward")])
def test_an_rnn_whose_outputs_are_all_read_runs_its_recurrence_once(kind, direction):
    from compiler import TensorSpec, compile

    gates, hidden, steps, batch, features = {"LSTM": 4, "GRU": 3}[kind], 5, 6, 2, 3
    outputs = ["Y", "Y_h", "Y_c"] if kind == "LSTM" else ["Y", "Y_h"]
    inits = {"W": 0.5 * rand(1, gates * hidden, features, seed=1),
             "R": 0.5 * rand(1, gates * hidden, hidden, seed=2),
             "B": 0.1 * rand(1, 2 * gates * hidden, seed=3)}
    rnn = node(kind, ["x", "W", "R", "B"], outputs, hidden_size=hidden, direction=direction)
    x = rand(steps, batch, features, seed=4)
    net = check([rnn], {"x": x}, outputs, inits, dims={"x": ("T", "N", features)})
    plan = compile(net, TensorSpec((None, None, features)))
    ops = [plan.graph.nodes[n]["op"] for n in plan.graph]
    assert ops.count(kind.lower()) == 1, ops
    # the one plan serves another length and batch
    y = plan(rand(steps + 3, batch + 1, features, seed=5))
    assert [a.shape for a in y][:2] == [(steps + 3, 1, batch + 1, hidden), (1, batch + 1, hidden)]
