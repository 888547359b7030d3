"""Each imported ONNX op against ``onnx.reference.ReferenceEvaluator``, at the opsets where its
signature changed, with concrete and symbolic (``dim_param``) input dims."""

import numpy as np
import pytest
from onnx import helper
from onnx_helpers import check, node, rand

DYN4 = ("N", 3, "H", "W")


# -- convolution ----------------------------------------------------------------------------------
@pytest.mark.parametrize("attrs", [
    dict(pads=[0, 1, 1, 2], strides=[2, 1], dilations=[1, 2]),
    dict(pads=[1, 1, 1, 1]),
    dict(auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(auto_pad="VALID"),
])
def test_conv_padding_strides_dilations(attrs):
    x = rand(2, 3, 9, 10)
    w, b = rand(4, 3, 3, 3, seed=1), rand(4, seed=2)
    check([node("Conv", ["x", "w", "b"], **attrs)], {"x": x}, initializers={"w": w, "b": b})


def test_conv_groups_depthwise_and_dynamic_dims():
    x = rand(2, 4, 8, 8)
    grouped = rand(6, 2, 3, 3, seed=1)
    depthwise = rand(8, 1, 3, 3, seed=2)
    nodes = [node("Conv", ["x", "wg"], ["g"], group=2, pads=[1, 1, 1, 1]),
             node("Conv", ["x", "wd"], ["d"], group=4, pads=[1, 0, 1, 0], strides=[2, 2]),
             node("Relu", ["d"], ["y"])]
    check(nodes, {"x": x}, ["g", "y"], {"wg": grouped, "wd": depthwise},
          dims={"x": ("N", 4, "H", "W")})


def test_conv1d():
    x = rand(2, 3, 11)
    check([node("Conv", ["x", "w", "b"], pads=[1, 2], strides=[2])], {"x": x},
          initializers={"w": rand(5, 3, 3, seed=1), "b": rand(5, seed=2)})


# -- matrix products -----------------------------------------------------------------------------
@pytest.mark.parametrize("trans_a,trans_b,alpha,beta", [(0, 1, 1.0, 1.0), (1, 0, 0.5, 2.0)])
def test_gemm(trans_a, trans_b, alpha, beta):
    a = rand(5, 3) if not trans_a else rand(3, 5)
    b = rand(4, 3, seed=1) if trans_b else rand(3, 4, seed=1)
    check([node("Gemm", ["a", "b", "c"], transA=trans_a, transB=trans_b, alpha=alpha,
                beta=beta)], {"a": a}, initializers={"b": b, "c": rand(4, seed=2)})


def test_gemm_and_matmul_with_runtime_operands():
    a, b = rand(5, 3), rand(3, 4, seed=1)
    check([node("Gemm", ["a", "b"], ["g"], alpha=2.0), node("MatMul", ["g", "k"], ["y"])],
          {"a": a, "b": b}, ["y"], {"k": rand(4, 2, seed=3)})
    check([node("MatMul", ["a", "b"])], {"a": rand(2, 5, 3), "b": rand(2, 3, 4, seed=1)})


# -- normalization -------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [7, 9, 15])
def test_batch_normalization(opset):
    """Checked by hand: onnx.reference gets opsets 7 and 9 wrong (and ignores ``spatial``)."""
    c = 3
    stats = {"s": rand(c, seed=1), "b": rand(c, seed=2), "m": rand(c, seed=3),
             "v": rand(c, seed=4, positive=True)}
    extra = {"spatial": 1} if opset < 9 else {}

    def expect(x, axis_shape):
        s = {k: v.reshape(axis_shape) for k, v in stats.items()}
        return [(x - s["m"]) / np.sqrt(s["v"] + 1e-3) * s["s"] + s["b"]]

    x = rand(2, c, 5, 4)
    check([node("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3, **extra)],
          {"x": x}, initializers=stats, opset=opset, dims={"x": DYN4},
          expected=expect(x, (1, c, 1, 1)))
    x2 = rand(4, c)
    check([node("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3)], {"x": x2},
          initializers=stats, opset=opset, expected=expect(x2, (1, c)))


def test_layer_normalization():
    check([node("LayerNormalization", ["x", "s", "b"], epsilon=1e-5)], {"x": rand(2, 5, 6)},
          initializers={"s": rand(6, seed=1), "b": rand(6, seed=2)})


# -- element-wise --------------------------------------------------------------------------------
UNARY = [("Relu", {}), ("LeakyRelu", {"alpha": 0.1}), ("Sigmoid", {}), ("Tanh", {}),
         ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("HardSwish", {}), ("Elu", {}),
         ("Selu", {}), ("Celu", {"alpha": 0.7}), ("Softplus", {}), ("Softsign", {}),
         ("Exp", {}), ("Abs", {}), ("Neg", {}), ("Erf", {}), ("Reciprocal", {}),
         ("Mish", {}), ("Gelu", {}), ("Gelu", {"approximate": "tanh"})]


@pytest.mark.parametrize("op,attrs", UNARY, ids=[f"{o}-{len(a)}" for o, a in UNARY])
def test_unary(op, attrs):
    opset = 20 if op == "Gelu" else 18
    check([node(op, ["x"], **attrs)], {"x": rand(2, 3, 4, 5) * 3}, opset=opset,
          dims={"x": DYN4})


def test_log_sqrt_on_positive_values():
    x = rand(2, 3, 4, positive=True)
    check([node("Log", ["x"], ["l"]), node("Sqrt", ["l"], ["y"])], {"x": x + 1.0})


@pytest.mark.parametrize("opset", [6, 11, 13])
def test_clip(opset):
    x = rand(2, 3, 4, 4) * 4
    if opset < 11:
        check([node("Clip", ["x"], min=0.0, max=6.0)], {"x": x}, opset=opset)
    else:
        check([node("Clip", ["x", "lo", "hi"])], {"x": x}, opset=opset,
              initializers={"lo": np.float32(-1), "hi": np.float32(2)})


def test_prelu_broadcasts_per_channel():
    check([node("PRelu", ["x", "slope"])], {"x": rand(2, 3, 4, 4)},
          initializers={"slope": rand(3, 1, 1, seed=1)})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow"])
def test_binary_broadcasting(op):
    a = rand(2, 3, 4, 5, positive=True)
    b = rand(3, 1, 1, seed=1, positive=True)
    check([node(op, ["a", "b"])], {"a": a, "b": rand(1, 5, seed=2, positive=True)})
    check([node(op, ["a", "c"])], {"a": a}, initializers={"c": b}, dims={"a": DYN4})


def test_opset6_legacy_broadcast_with_axis():
    """B's dims align with A's from ``axis`` (checked by hand: onnx.reference lacks it)."""
    a, b = rand(2, 3, 4, 5), rand(3, 4, seed=1)
    check([node("Add", ["a", "b"], broadcast=1, axis=1)], {"a": a}, initializers={"b": b},
          opset=6, expected=[a + b[None, :, :, None]])


@pytest.mark.parametrize("op", ["Sum", "Max", "Min", "Mean"])
def test_variadic(op):
    check([node(op, ["a", "b", "c"])], {"a": rand(2, 3), "b": rand(2, 3, seed=1),
                                        "c": rand(3, seed=2)})


def test_comparisons_where_and_cast():
    a, b = rand(2, 3, 4), rand(2, 3, 4, seed=1)
    nodes = [node("Greater", ["a", "b"], ["gt"]), node("Where", ["gt", "a", "b"], ["w"]),
             node("Cast", ["gt"], ["y"], to=helper.np_dtype_to_tensor_dtype(np.dtype("float32")))]
    check(nodes, {"a": a, "b": b}, ["w", "y"])


# -- pooling -------------------------------------------------------------------------------------
@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[2, 3], strides=[1, 2], pads=[0, 1, 1, 0], ceil_mode=1),
])
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pooling(op, attrs):
    check([node(op, ["x"], **attrs)], {"x": rand(2, 3, 10, 9)})


@pytest.mark.parametrize("include", [0, 1])
def test_average_pool_count_include_pad(include):
    check([node("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                count_include_pad=include)], {"x": rand(2, 3, 6, 7)}, dims={"x": DYN4})


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pooling(op):
    check([node(op, ["x"])], {"x": rand(2, 3, 5, 6)}, dims={"x": DYN4})


# -- shapes and data movement --------------------------------------------------------------------
@pytest.mark.parametrize("axis", [1, 2, 0])
def test_flatten(axis):
    check([node("Flatten", ["x"], axis=axis)], {"x": rand(2, 3, 4, 5)})


def test_reshape_with_zero_and_minus_one():
    check([node("Reshape", ["x", "s"])], {"x": rand(2, 3, 4, 5)},
          initializers={"s": np.array([0, -1, 5], dtype=np.int64)})


def test_dynamic_batch_shape_chain_folds_symbolically():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape with a dynamic batch: one model, every
    batch size."""
    nodes = [node("Shape", ["x"], ["shape"]),
             node("Gather", ["shape", "zero"], ["n"], axis=0),
             node("Unsqueeze", ["n", "axes"], ["n1"]),
             node("Concat", ["n1", "rest"], ["target"], axis=0),
             node("Reshape", ["x", "target"], ["y"])]
    inits = {"zero": np.array(0, dtype=np.int64), "axes": np.array([0], dtype=np.int64),
             "rest": np.array([-1], dtype=np.int64)}
    net = check(nodes, {"x": rand(2, 3, 4, 5)}, initializers=inits, dims={"x": DYN4})
    assert net(rand(5, 3, 4, 5)).shape == (5, 60)


def test_concat_of_convolutions_and_constants():
    x = rand(2, 3, 6, 6)
    nodes = [node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             node("Conv", ["x", "w2"], ["b"]),
             node("Pad", ["b", "p"], ["bp"]),
             node("Concat", ["a", "bp", "x"], ["y"], axis=1)]
    check(nodes, {"x": x}, initializers={"w1": rand(2, 3, 3, 3, seed=1),
                                         "w2": rand(4, 3, 3, 3, seed=2),
                                         "p": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)})


def test_transpose_after_conv_and_plain():
    x = rand(2, 3, 5, 4)
    nodes = [node("Conv", ["x", "w"], ["c"]), node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
             node("Transpose", ["x"], ["u"], perm=[3, 1, 0, 2])]
    check(nodes, {"x": x}, ["t", "u"], {"w": rand(2, 3, 1, 1, seed=1)})


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze(opset):
    x = rand(2, 1, 4)
    if opset < 13:
        nodes = [node("Squeeze", ["x"], ["s"], axes=[1]),
                 node("Unsqueeze", ["s"], ["y"], axes=[0, 3])]
        inits = {}
    else:
        nodes = [node("Squeeze", ["x", "a1"], ["s"]), node("Unsqueeze", ["s", "a2"], ["y"])]
        inits = {"a1": np.array([1], np.int64), "a2": np.array([0, 3], np.int64)}
    check(nodes, {"x": x}, initializers=inits, opset=opset)


def test_slice_opset9_attributes():
    check([node("Slice", ["x"], starts=[1, 0], ends=[3, -1], axes=[1, 2])],
          {"x": rand(2, 4, 5)}, opset=9)


def test_slice_opset13_inputs_negative_steps_and_dynamic_batch():
    inits = {"s": np.array([-1, 1], np.int64), "e": np.array([-100, 4], np.int64),
             "a": np.array([2, 1], np.int64), "st": np.array([-2, 1], np.int64)}
    check([node("Slice", ["x", "s", "e", "a", "st"])], {"x": rand(2, 5, 7)},
          initializers=inits, dims={"x": ("N", 5, 7)})


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_split(opset):
    x = rand(2, 6, 4)
    if opset < 13:
        nodes, inits = [node("Split", ["x"], ["a", "b"], axis=1, split=[2, 4])], {}
    elif opset < 18:
        nodes = [node("Split", ["x", "sp"], ["a", "b"], axis=1)]
        inits = {"sp": np.array([2, 4], np.int64)}
    else:
        nodes, inits = [node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3)], {}
    outs = list(nodes[0].output)
    check(nodes, {"x": x}, outs, inits, opset=opset)


@pytest.mark.parametrize("opset", [9, 13])
def test_pad_constant(opset):
    x = rand(2, 3, 4)
    if opset < 11:
        check([node("Pad", ["x"], pads=[0, 1, 2, 0, 0, 1], value=1.5)], {"x": x}, opset=opset)
    else:
        check([node("Pad", ["x", "p", "v"])], {"x": x}, opset=opset,
              initializers={"p": np.array([0, 1, 2, 0, 0, 1], np.int64),
                            "v": np.float32(-2.0)})


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_axis_semantics(op, opset):
    """Opset < 13 coerces to 2-D at ``axis`` (checked by hand: onnx.reference applies the
    opset-13 meaning); 13+ normalises along ``axis`` only."""
    x = rand(2, 3, 4)
    expected = None
    if opset < 13:
        flat = x.reshape(2, 12).astype(np.float64)
        shifted = flat - flat.max(1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
        expected = [(np.exp(logp) if op == "Softmax" else logp).reshape(x.shape)]
    check([node(op, ["x"], axis=1)], {"x": x}, opset=opset, expected=expected,
          dims={"x": ("N", 3, 4)})


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax", "ReduceL2", "ReduceSum"])
def test_reductions(op, opset):
    x = rand(2, 3, 4, 5)
    by_input = opset >= 18 or op == "ReduceSum"
    if by_input:
        n = node(op, ["x", "axes"], keepdims=0)
        inits = {"axes": np.array([1, -1], np.int64)}
    else:
        n, inits = node(op, ["x"], axes=[1, -1], keepdims=0), {}
    check([n], {"x": x}, initializers=inits, opset=opset)


def test_reduce_mean_over_spatial_after_conv_keeps_dims():
    nodes = [node("Conv", ["x", "w"], ["c"]), node("ReduceMean", ["c"], ["y"], axes=[2, 3])]
    check(nodes, {"x": rand(2, 3, 5, 4)}, initializers={"w": rand(4, 3, 1, 1, seed=1)},
          opset=13, dims={"x": DYN4})


def test_expand_gather_constant_of_shape_identity():
    nodes = [node("Expand", ["x", "shape"], ["e"]),
             node("Gather", ["e", "idx"], ["g"], axis=1),
             node("ConstantOfShape", ["cs"], ["ones"],
                  value=helper.make_tensor("v", 1, [1], [1.0])),
             node("Add", ["g", "ones"], ["a"]), node("Identity", ["a"], ["y"])]
    inits = {"shape": np.array([2, 3, 4], np.int64), "idx": np.array([2, 0], np.int64),
             "cs": np.array([2, 2, 4], np.int64)}
    check(nodes, {"x": rand(3, 1)}, initializers=inits)


def test_constant_node_and_dropout():
    c = helper.make_node("Constant", [], ["c"], value=helper.make_tensor(
        "c", 1, [3], [1.0, 2.0, 3.0]))
    check([c, node("Mul", ["x", "c"], ["m"]), node("Dropout", ["m"], ["y"])], {"x": rand(2, 3)})
