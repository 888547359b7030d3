"""Export: a deferc model -> an ONNX ``ModelProto`` (opset 17) that ONNX Runtime runs.

The model is lowered and taken through our passes up to fusion (``EXPORT_PIPELINE``: shapes,
weights, identities removed, transposes sunk, and with ``optimize=True`` BatchNorm folded and
epilogues fused), then each IR node becomes a few ONNX nodes (``_EMITTERS``, one function per op).

Layout: the graph stays NHWC, as ours is. ONNX's Conv and pools are NCHW, so each is wrapped in
``Transpose`` nodes (NHWC -> NCHW before, back after) and its bias, residual add and activation
run in NCHW before the transpose back. A conv or pool that reads another one's output reads its
NCHW value directly (``_Emitter.to_nchw``), so a chain of convs has transposes at its ends only;
unused transposes are pruned. Weights become initializers named by their keys
(``"dense_1/kernel"``); a conv kernel is stored in ONNX's OIHW layout under its key, and a folded
BatchNorm's derived kernel under its derived key (``"conv/kernel+bn"``). Dynamic dims are
``dim_param`` symbols (``N``, ``H``...). Values keep their logical dtypes (comparisons are
``bool``), with ``Cast`` nodes where ONNX demands one type.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import networkx as nx
import numpy as np

from ...errors import CompilerError
from ...ir import data_operands, format_node, layer_name, param_operands, topo_nodes
from ...ops.activations import LEAKY_RELU_DEFAULT_SLOPE
from ...ops.conv import explicit_pads, pair, same_padding
from ...ops.merge import normalize_axis
from ...ops.normalization import DEFAULT_EPSILON
from ...ops.pooling import pool_geometry, zero_padding_amounts
from ...ops.primitives import reduction_axes, result_dtype
from ...symbolic import Dim

OPSET = 17
TO_NCHW = (0, 3, 1, 2)
TO_NHWC = (0, 2, 3, 1)


def _onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise CompilerError("compiler.onnx.export needs the 'onnx' package: pip install "
                            "'deferc[onnx]'") from None
    return onnx


def export_pipeline(optimize: bool = True) -> list:
    """The passes a graph goes through before it is written (no scheduling or memory plan)."""
    from ...passes import (
        BUILD_PIPELINE,
        fold_batch_norm,
        fold_pad,
        fuse,
        fuse_add_norm,
        remove_identities,
        sink_transposes,
    )
    # as compile's pipeline up to fusion: fold_pad's explicit cells are ONNX Conv/MaxPool pads
    tail = [fold_pad, fold_batch_norm, fuse, fuse_add_norm] if optimize else []
    return [*BUILD_PIPELINE, remove_identities, sink_transposes, *tail]


def export(model: Any, path: Any = None, *signature: Any, optimize: bool = True,
           seed: int | None = None, name: str | None = None, check: bool = True):
    """Write ``model`` as ONNX (opset 17) to ``path``; returns the ``onnx.ModelProto``.

    Args:
        model: a ``Sequential`` or functional ``Model`` (built or not: an unbuilt model is built
            for ``signature``, creating its weights as a first call would).
        path: a file path, a binary file-like object, or ``None`` (only return the proto).
        signature: one ``TensorSpec`` (or shape tuple, or sample array) per input; default: the
            model's built or declared signature. ``None`` axes become ``dim_param`` symbols.
        optimize: fold BatchNorm into the layer before it and fuse epilogues (fewer nodes);
            ``False`` writes every layer as its own nodes (BatchNorm as arithmetic on its four
            weights).
        seed: seed for weights created now.
        name: the ONNX graph's name (default: the model's).
        check: run ``onnx.checker.check_model(full_check=True)`` on the result.
    Raises:
        CompilerError: an op that has no ONNX form (naming the node and its layer); the model's
            weights are then left as they were.
    """
    onnx = _onnx()
    from ...driver import BUILD_LOCK, _as_spec, build_graph
    from ...frontend.tracing import build_scope
    from ...passes import commit_weights

    specs = [_as_spec(s) for s in signature] or model._built_specs or model._input_specs
    if not specs:
        raise CompilerError(f"export(model '{model.name}') needs input specs, e.g. "
                            f"conx.export(net, 'net.onnx', TensorSpec((None, 20)))")
    with model._lock, BUILD_LOCK, build_scope():
        graph, ctx = build_graph(model, specs, export_pipeline(optimize), seed=seed)
        proto = to_onnx(graph, name=name or model.name)
        if check:
            onnx.checker.check_model(proto, full_check=True)
        commit_weights(ctx)  # only once the file can be written: a failed export changes nothing
        if model._built_specs is None:
            model._built_specs = list(specs)
    _write(proto, path)
    return proto


def _write(proto, path: Any) -> None:
    if path is None:
        return
    data = proto.SerializeToString()
    if isinstance(path, (str, os.PathLike)):
        with open(path, "wb") as f:
            f.write(data)
    elif hasattr(path, "write"):
        path.write(data)
    else:
        raise CompilerError(f"export: path must be a file path, a binary file object or None, "
                            f"received {type(path).__name__}")


# -- the emitter ----------------------------------------------------------------------------------
class _Emitter:
    """Collects ONNX nodes and initializers while the IR is walked in order."""

    def __init__(self, g: nx.DiGraph):
        self.onnx = _onnx()
        self.g = g
        self.nodes: list = []
        self.initializers: dict[str, Any] = {}
        self.dtypes: dict[str, np.dtype] = {}
        self.nchw: dict[str, str] = {}  # an NHWC value -> the same value in NCHW
        self.nhwc: dict[str, str] = {}
        self._used: set[str] = set()
        self._weights: dict[tuple, str] = {}

    # names
    def fresh(self, hint: str) -> str:
        base = hint.replace(" ", "_") or "v"
        name, i = base, 1
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name

    # nodes
    def add(self, op_type: str, inputs: Sequence[str], hint: str, dtype: np.dtype,
            **attrs: Any) -> str:
        out = self.fresh(hint)
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out],
                                                     name=self.fresh(f"{hint}/{op_type}"),
                                                     **attrs))
        self.dtypes[out] = np.dtype(dtype)
        return out

    def const(self, value: Any, hint: str, dtype: Any = None) -> str:
        array = np.asarray(value, dtype=dtype)
        name = self.fresh(hint)
        self.initializers[name] = self.onnx.numpy_helper.from_array(array, name)
        self.dtypes[name] = array.dtype
        return name

    def ints(self, values: Sequence[int], hint: str) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), hint)

    def weight(self, pnode: int, transform: Callable | None = None, tag: str = "") -> str:
        """The initializer of a param node, named by its key (laid out by ``transform``)."""
        data = self.g.nodes[pnode]
        key = data.get("key") or f"param_{pnode}"
        if (key, tag) in self._weights:
            return self._weights[(key, tag)]
        value = np.asarray(data["value"], dtype=data["type"].dtype)
        if transform is not None:
            value = np.ascontiguousarray(transform(value))
        name = self.fresh(key)  # a second layout of one weight gets a suffix
        self.initializers[name] = self.onnx.numpy_helper.from_array(value, name)
        self.dtypes[name] = value.dtype
        self._weights[(key, tag)] = name
        return name

    def cast(self, x: str, dtype: Any, hint: str) -> str:
        dtype = np.dtype(dtype)
        if self.dtypes[x] == dtype:
            return x
        return self.add("Cast", [x], f"{hint}/cast", dtype, to=_tensor_type(dtype))

    def to_nchw(self, x: str, hint: str) -> str:
        if x not in self.nchw:
            y = self.add("Transpose", [x], f"{hint}/to_nchw", self.dtypes[x], perm=list(TO_NCHW))
            self.nchw[x], self.nhwc[y] = y, x
        return self.nchw[x]

    def to_nhwc(self, y: str, hint: str) -> str:
        if y not in self.nhwc:
            x = self.add("Transpose", [y], f"{hint}/to_nhwc", self.dtypes[y], perm=list(TO_NHWC))
            self.nhwc[y], self.nchw[x] = x, y
        return self.nhwc[y]

    def prune(self, outputs: Sequence[str]) -> None:
        """Drop nodes whose outputs nothing reads (transposes a later op made unnecessary)."""
        while True:
            read = set(outputs) | {i for n in self.nodes for i in n.input}
            kept = [n for n in self.nodes if any(o in read for o in n.output)]
            if len(kept) == len(self.nodes):
                break
            self.nodes = kept
        read = {i for n in self.nodes for i in n.input} | set(outputs)
        self.initializers = {k: v for k, v in self.initializers.items() if k in read}


def _tensor_type(dtype: Any) -> int:
    from onnx import helper
    try:
        return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    except (KeyError, TypeError, ValueError):
        raise CompilerError(f"export: dtype {np.dtype(dtype)} has no ONNX tensor type") from None


def _dims(shape: Sequence | None) -> list | None:
    if shape is None:
        return None
    out = []
    for d in shape:
        if isinstance(d, (int, np.integer)):
            out.append(int(d))
        elif isinstance(d, Dim):
            out.append(d.name if d.is_symbol else str(d))
        else:
            out.append(None)
    return out


# -- one function per op ------------------------------------------------------------------------
#: ``emit(em, node, data_inputs, params, attrs, hint, dtype) -> output name``
Emit = Callable[..., str]
_EMITTERS: dict[str, Emit] = {}


def _emits(*ops: str):
    def register(fn: Emit) -> Emit:
        for op in ops:
            _EMITTERS[op] = fn
        return fn
    return register


#: Ops that landed before their ONNX form: exporting a model that uses one is a
#: ``CompilerError`` naming it. A test keeps this list exact, so a new op without an export form
#: fails it. (The sequence ops' forms live in ``export_sequence.py``.)
NOT_EXPORTABLE_YET: frozenset = frozenset()


def exportable_ops() -> list[str]:
    """The IR ops ``export`` writes (everything else is refused with a ``CompilerError``)."""
    return sorted(_EMITTERS)


def _activation(em: _Emitter, x: str, name: str, alpha: float, hint: str, dtype) -> str:
    if name == "linear":
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    if name in simple:
        return em.add(simple[name], [x], f"{hint}/{name}", dtype)
    if name == "leaky_relu":
        return em.add("LeakyRelu", [x], f"{hint}/leaky_relu", dtype, alpha=float(alpha))
    if name == "relu6":
        return em.add("Clip", [x, em.const(0.0, f"{hint}/zero", dtype),
                               em.const(6.0, f"{hint}/six", dtype)], f"{hint}/relu6", dtype)
    if name == "softmax":
        return em.add("Softmax", [x], f"{hint}/softmax", dtype, axis=-1)
    if name == "gelu":  # exact (erf) GELU: opset 17 has no Gelu op
        scaled = em.add("Div", [x, em.const(math.sqrt(2.0), f"{hint}/sqrt2", dtype)],
                        f"{hint}/gelu_scaled", dtype)
        erf = em.add("Erf", [scaled], f"{hint}/gelu_erf", dtype)
        one_plus = em.add("Add", [erf, em.const(1.0, f"{hint}/one", dtype)],
                          f"{hint}/gelu_1p", dtype)
        half = em.add("Mul", [x, em.const(0.5, f"{hint}/half", dtype)], f"{hint}/gelu_half",
                      dtype)
        return em.add("Mul", [half, one_plus], f"{hint}/gelu", dtype)
    raise CompilerError(f"export: activation {name!r} has no ONNX form")


def _epilogue(em, y: str, attrs, hint: str, dtype, residual: str | None = None) -> str:
    if residual is not None:
        y = em.add("Add", [y, residual], f"{hint}/residual", dtype)
    return _activation(em, y, attrs.get("activation", "linear"),
                       attrs.get("alpha", LEAKY_RELU_DEFAULT_SLOPE), hint, dtype)


@_emits("activation")
def _emit_activation(em, node, ins, params, attrs, hint, dtype):
    return _activation(em, ins[0], attrs["activation"],
                       attrs.get("alpha", LEAKY_RELU_DEFAULT_SLOPE), hint, dtype)


@_emits("activation_chain")
def _emit_chain(em, node, ins, params, attrs, hint, dtype):
    x = ins[0]
    for name, alpha in attrs["chain"]:
        x = _activation(em, x, name, alpha, hint, dtype)
    return x


@_emits("identity")
def _emit_identity(em, node, ins, params, attrs, hint, dtype):
    return ins[0]


@_emits("dense")
def _emit_dense(em, node, ins, params, attrs, hint, dtype):
    y = em.add("MatMul", [ins[0], em.weight(params["kernel"])], f"{hint}/matmul", dtype)
    if "bias" in params:
        y = em.add("Add", [y, em.weight(params["bias"])], f"{hint}/bias", dtype)
    return _epilogue(em, y, attrs, hint, dtype)


def _window_attrs(attrs, kernel: tuple, layer: str) -> dict:
    return {"kernel_shape": list(kernel),
            "strides": list(pair(attrs.get("strides", (1, 1)), "strides", layer)),
            **_padding_attrs(attrs.get("padding", "valid"), layer)}


def _padding_attrs(padding, layer: str) -> dict:
    """ONNX ``auto_pad``, or explicit ``pads`` for the cells ``fold_pad`` wrote (zeros for a
    conv, never counted by MaxPool: ONNX's own meaning of ``pads``)."""
    explicit = explicit_pads(padding, layer)
    if explicit is not None:
        (top, bottom), (left, right) = explicit
        return {"pads": [top, left, bottom, right]}
    return {"auto_pad": "SAME_UPPER" if padding == "same" else "VALID"}


def _same_pads(x_shape, k, strides, dilation, hint: str) -> list[int]:
    """TF ``SAME`` pads ``[top, left, bottom, right]``: known without the image size when the
    stride is 1 (``dilation * (k - 1)`` in total, the odd cell after)."""
    before, after = [], []
    for i in range(2):
        size = x_shape[1 + i]
        if strides[i] == 1:
            lo, hi = (dilation[i] * (k[i] - 1)) // 2, dilation[i] * (k[i] - 1) - \
                (dilation[i] * (k[i] - 1)) // 2
        elif isinstance(size, (int, np.integer)):
            lo, hi = same_padding(int(size), -(-int(size) // strides[i]), k[i], strides[i],
                                  dilation[i])
        else:
            raise CompilerError(
                f"export: layer '{hint}': 'same' padding with dilation {tuple(dilation)} and "
                f"strides {tuple(strides)} on axis {1 + i} of symbolic size {size} has no ONNX "
                f"form that ONNX Runtime runs; export with a fixed image size")
        before.append(int(lo))
        after.append(int(hi))
    return before + after


def _nchw_epilogue(em, y: str, node, ins, attrs, hint, dtype) -> str:
    """Residual and activation in NCHW (softmax, over the channels, after the transpose back)."""
    residual = em.to_nchw(ins[1], hint) if attrs.get("residual") else None
    act = attrs.get("activation", "linear")
    if act == "softmax":
        y = _epilogue(em, y, {}, hint, dtype, residual)
        return _activation(em, em.to_nhwc(y, hint), "softmax", 0.0, hint, dtype)
    return em.to_nhwc(_epilogue(em, y, attrs, hint, dtype, residual), hint)


@_emits("conv2d", "depthwise_conv2d")
def _emit_conv(em, node, ins, params, attrs, hint, dtype):
    depthwise = em.g.nodes[node]["op"] == "depthwise_conv2d"
    layer = "DepthwiseConv2D" if depthwise else "Conv2D"
    kernel_shape = em.g.nodes[params["kernel"]]["type"].shape
    kh, kw, cin, cout = (int(d) for d in kernel_shape)
    if depthwise:  # (kh, kw, C, mult) -> (C*mult, 1, kh, kw); output channel c*mult + m
        w = em.weight(params["kernel"], lambda k: k.transpose(2, 3, 0, 1).reshape(
            cin * cout, 1, kh, kw), "OIHW")
        group = cin
    else:  # (kh, kw, C/groups, F) -> (F, C/groups, kh, kw)
        w = em.weight(params["kernel"], lambda k: k.transpose(3, 2, 0, 1), "OIHW")
        group = int(attrs.get("groups", 1))
    inputs = [em.to_nchw(ins[0], hint), w]
    if "bias" in params:
        inputs.append(em.weight(params["bias"]))
    geo = _window_attrs(attrs, (kh, kw), layer)
    dilation = pair(attrs.get("dilation", (1, 1)), "dilation", layer)
    if geo.get("auto_pad") == "SAME_UPPER" and dilation != (1, 1):
        # ONNX Runtime refuses auto_pad SAME with dilations: spell the pads out
        x_shape = em.g.nodes[data_operands(em.g, node)[0]]["type"].shape
        geo["pads"] = _same_pads(x_shape, (kh, kw), geo["strides"], dilation, hint)
        del geo["auto_pad"]
    y = em.add("Conv", inputs, f"{hint}/conv", dtype, group=group, dilations=list(dilation),
               **geo)
    return _nchw_epilogue(em, y, node, ins, attrs, hint, dtype)


@_emits("conv2d_transpose")
def _emit_conv_transpose(em, node, ins, params, attrs, hint, dtype):
    """NHWC in and out; the weight operand is already ONNX's (C_in, C_out/groups, kh, kw)."""
    (pt, pb), (pl, pr) = attrs.get("pads", ((0, 0), (0, 0)))
    y = em.add("ConvTranspose", [em.to_nchw(ins[0], hint), *ins[1:]], f"{hint}/conv_transpose",
               dtype, strides=list(attrs.get("strides", (1, 1))),
               dilations=list(attrs.get("dilations", (1, 1))), pads=[pt, pl, pb, pr],
               output_padding=list(attrs.get("output_padding", (0, 0))),
               group=int(attrs.get("groups", 1)))
    return em.to_nhwc(y, hint)


@_emits("max_pool2d", "avg_pool2d")
def _emit_pool(em, node, ins, params, attrs, hint, dtype):
    op = em.g.nodes[node]["op"]
    layer = "MaxPooling2D" if op == "max_pool2d" else "AveragePooling2D"
    geo = pool_geometry(attrs, layer)
    onnx_attrs = {"kernel_shape": list(geo["pool_size"]), "strides": list(geo["strides"]),
                  **_padding_attrs(geo["padding"], layer)}
    if op == "avg_pool2d":  # TF: padded cells never count
        onnx_attrs["count_include_pad"] = 0
    if np.dtype(dtype).kind in "iu":  # ONNX MaxPool has no int32/int64: pool in float64
        x = em.cast(ins[0], np.float64, hint)  # (exact for int32, int64 up to 2**53)
        y = em.add("MaxPool", [em.to_nchw(x, hint)], f"{hint}/pool", np.float64, **onnx_attrs)
        return em.cast(em.to_nhwc(y, hint), dtype, hint)
    y = em.add("MaxPool" if op == "max_pool2d" else "AveragePool", [em.to_nchw(ins[0], hint)],
               f"{hint}/pool", dtype, **onnx_attrs)
    return em.to_nhwc(y, hint)


@_emits("global_avg_pool2d", "global_max_pool2d")
def _emit_global_pool(em, node, ins, params, attrs, hint, dtype):
    op = "ReduceMean" if em.g.nodes[node]["op"] == "global_avg_pool2d" else "ReduceMax"
    keepdims = bool(attrs.get("keepdims", False))
    if not keepdims and ins[0] in em.nchw:  # (N, C) either way: read a conv's NCHW output
        return em.add(op, [em.nchw[ins[0]]], hint, dtype, axes=[2, 3], keepdims=0)
    return em.add(op, [ins[0]], hint, dtype, axes=[1, 2], keepdims=int(keepdims))


@_emits("zero_padding2d")
def _emit_zero_padding(em, node, ins, params, attrs, hint, dtype):
    (top, bottom), (left, right) = zero_padding_amounts(attrs)
    if ins[0] in em.nchw:  # between two convs: pad the NCHW value, stay NCHW
        pads = em.ints([0, 0, top, left, 0, 0, bottom, right], f"{hint}/pads")
        return em.to_nhwc(em.add("Pad", [em.nchw[ins[0]], pads], hint, dtype), hint)
    pads = em.ints([0, top, left, 0, 0, bottom, right, 0], f"{hint}/pads")
    return em.add("Pad", [ins[0], pads], hint, dtype)


@_emits("batch_norm")
def _emit_batch_norm(em, node, ins, params, attrs, hint, dtype):
    eps = em.const(attrs.get("epsilon", DEFAULT_EPSILON), f"{hint}/epsilon", dtype)
    std = em.add("Sqrt", [em.add("Add", [em.weight(params["moving_variance"]), eps],
                                 f"{hint}/var_eps", dtype)], f"{hint}/std", dtype)
    y = em.add("Sub", [ins[0], em.weight(params["moving_mean"])], f"{hint}/centered", dtype)
    y = em.add("Div", [y, std], f"{hint}/normalized", dtype)
    return _affine(em, y, params, hint, dtype)


def _affine(em, y, params, hint, dtype):
    if "gamma" in params:
        y = em.add("Mul", [y, em.weight(params["gamma"])], f"{hint}/scaled", dtype)
    if "beta" in params:
        y = em.add("Add", [y, em.weight(params["beta"])], f"{hint}/shifted", dtype)
    return y


@_emits("layer_norm")
def _emit_layer_norm(em, node, ins, params, attrs, hint, dtype):
    x = ins[0]
    mean = em.add("ReduceMean", [x], f"{hint}/mean", dtype, axes=[-1], keepdims=1)
    d = em.add("Sub", [x, mean], f"{hint}/centered", dtype)
    var = em.add("ReduceMean", [em.add("Mul", [d, d], f"{hint}/sq", dtype)], f"{hint}/var",
                 dtype, axes=[-1], keepdims=1)
    eps = em.const(attrs.get("epsilon", DEFAULT_EPSILON), f"{hint}/epsilon", dtype)
    std = em.add("Sqrt", [em.add("Add", [var, eps], f"{hint}/var_eps", dtype)], f"{hint}/std",
                 dtype)
    return _affine(em, em.add("Div", [d, std], f"{hint}/normalized", dtype), params, hint, dtype)


@_emits("add_layer_norm")
def _emit_add_layer_norm(em, node, ins, params, attrs, hint, dtype):
    total = em.add("Add", [ins[0], ins[1]], f"{hint}/sum", dtype)
    return _emit_layer_norm(em, node, [total], params, attrs, hint, dtype)


@_emits("softmax", "log_softmax")
def _emit_softmax(em, node, ins, params, attrs, hint, dtype):
    op = "Softmax" if em.g.nodes[node]["op"] == "softmax" else "LogSoftmax"
    return em.add(op, [ins[0]], hint, dtype, axis=int(attrs.get("axis", -1)))


# merges: Keras layers broadcast lower-rank inputs after the batch axis
def _aligned(em, node, ins, attrs, hint, dtype) -> list[str]:
    g = em.g
    rank = len(g.nodes[node]["type"].shape)
    out = []
    for name, src in zip(ins, data_operands(g, node)):
        name = em.cast(name, dtype, hint)
        r = len(g.nodes[src]["type"].shape)
        if attrs.get("expand_after_batch", False) and 0 < r < rank:
            name = em.add("Unsqueeze", [name, em.ints(range(1, 1 + rank - r), f"{hint}/axes")],
                          f"{hint}/expanded", dtype)
        out.append(name)
    return out


_FOLDED = {"add": "Add", "multiply": "Mul", "subtract": "Sub", "divide": "Div", "power": "Pow",
           "matmul": "MatMul"}
_VARIADIC = {"maximum": "Max", "minimum": "Min", "average": "Mean"}


@_emits(*_FOLDED)
def _emit_folded(em, node, ins, params, attrs, hint, dtype):
    op = _FOLDED[em.g.nodes[node]["op"]]
    xs = _aligned(em, node, ins, attrs, hint, dtype)
    y = xs[0]
    for x in xs[1:]:
        y = em.add(op, [y, x], hint, dtype)
    return y if len(xs) > 1 else em.add("Identity", [y], hint, dtype)


@_emits(*_VARIADIC)
def _emit_variadic(em, node, ins, params, attrs, hint, dtype):
    return em.add(_VARIADIC[em.g.nodes[node]["op"]], _aligned(em, node, ins, attrs, hint, dtype),
                  hint, dtype)


@_emits("floor_divide", "mod")
def _emit_floor_divide_or_mod(em, node, ins, params, attrs, hint, dtype):
    """NumPy's ``floor_divide``/``remainder`` (what our kernels compute) from ONNX ``Mod``/``Div``.

    Floats follow NumPy's ``divmod``: ``fmod``, moved to the divisor's sign, a quotient rounded
    to the nearest integer after the floor (``1 // 0.1 == 9``); a zero divisor gives ``a / 0``
    and ``nan``. Ints: ONNX ``Mod(fmod=0)`` already takes the divisor's sign; a zero divisor gives
    0 and ``// -1`` negates (wrapping like NumPy) — the divisor is swapped for 1 first, since a
    hardware division by 0 or of ``INT_MIN`` by -1 traps.
    """
    is_mod = em.g.nodes[node]["op"] == "mod"
    dtype = np.dtype(dtype)
    a, b = _aligned(em, node, ins, attrs, hint, dtype)
    const = lambda v: em.const(np.asarray(v, dtype), f"{hint}/c")  # noqa: E731
    boolean = np.dtype(bool)

    def add(op, inputs, tag, out_dtype=dtype, **kw):
        return em.add(op, inputs, f"{hint}/{tag}", out_dtype, **kw)

    if dtype.kind in "iu":
        b_zero = add("Equal", [b, const(0)], "b_zero", boolean)
        b_minus_one = add("Equal", [b, const(-1)], "b_minus_one", boolean)
        safe = add("Where", [add("Or", [b_zero, b_minus_one], "trap", boolean), const(1), b],
                   "safe_b")
        m = add("Mod", [a, safe], "mod", fmod=0)
        if is_mod:  # b == -1: m is already 0
            return add("Where", [b_zero, const(0), m], "result")
        # ONNX Div truncates: one less where the remainder is nonzero and the signs differ
        # (``(a - m) / b`` would overflow at INT_MIN)
        inexact = add("Not", [add("Equal", [m, const(0)], "m_zero", boolean)], "inexact", boolean)
        signs = add("Xor", [add("Less", [a, const(0)], "a_neg", boolean),
                            add("Less", [safe, const(0)], "b_neg", boolean)], "signs", boolean)
        q = add("Div", [a, safe], "truncated")
        q = add("Where", [add("And", [inexact, signs], "floor_below", boolean),
                          add("Sub", [q, const(1)], "minus_one"), q], "quotient")
        q = add("Where", [b_minus_one, add("Neg", [a], "negated"), q], "minus_one")
        return add("Where", [b_zero, const(0), q], "result")
    m = add("Mod", [a, b], "fmod", fmod=1)
    nonzero = add("Not", [add("Equal", [m, const(0)], "m_zero", boolean)], "m_nonzero", boolean)
    signs_differ = add("Xor", [add("Less", [b, const(0)], "b_neg", boolean),
                               add("Less", [m, const(0)], "m_neg", boolean)], "signs", boolean)
    adjust = add("And", [nonzero, signs_differ], "adjust", boolean)
    if is_mod:
        return add("Where", [adjust, add("Add", [m, b], "m_plus_b"), m], "result")
    div = add("Div", [add("Sub", [a, m], "a_minus_fmod"), b], "div")
    div = add("Where", [adjust, add("Sub", [div, const(1)], "div_minus_one"), div], "div_adj")
    floor = add("Floor", [div], "floor")
    up = add("Greater", [add("Sub", [div, floor], "frac"), const(0.5)], "round_up", boolean)
    floor = add("Where", [up, add("Add", [floor, const(1)], "floor_plus_one"), floor], "rounded")
    b_zero = add("Equal", [b, const(0)], "b_zero", boolean)
    return add("Where", [b_zero, add("Div", [a, b], "a_over_b"), floor], "result")


_UNARY = {"negative": "Neg", "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt",
          "erf": "Erf"}


@_emits(*_UNARY)
def _emit_unary(em, node, ins, params, attrs, hint, dtype):
    return em.add(_UNARY[em.g.nodes[node]["op"]], [em.cast(ins[0], dtype, hint)], hint, dtype)


_COMPARE = {"equal": "Equal", "greater": "Greater", "greater_equal": "GreaterOrEqual",
            "less": "Less", "less_equal": "LessOrEqual", "not_equal": "Equal"}


@_emits(*_COMPARE)
def _emit_compare(em, node, ins, params, attrs, hint, dtype):
    op = em.g.nodes[node]["op"]
    common = result_dtype([em.dtypes[x] for x in ins])
    y = em.add(_COMPARE[op], [em.cast(x, common, hint) for x in ins], hint, np.dtype(bool))
    return em.add("Not", [y], f"{hint}/not", np.dtype(bool)) if op == "not_equal" else y


_LOGICAL = {"logical_and": "And", "logical_or": "Or", "logical_not": "Not"}


@_emits(*_LOGICAL)
def _emit_logical(em, node, ins, params, attrs, hint, dtype):
    return em.add(_LOGICAL[em.g.nodes[node]["op"]], [em.cast(x, bool, hint) for x in ins], hint,
                  np.dtype(bool))


@_emits("where")
def _emit_where(em, node, ins, params, attrs, hint, dtype):
    cond, x, y = ins
    return em.add("Where", [em.cast(cond, bool, hint), em.cast(x, dtype, hint),
                            em.cast(y, dtype, hint)], hint, dtype)


@_emits("cast")
def _emit_cast(em, node, ins, params, attrs, hint, dtype):
    return em.add("Cast", [ins[0]], hint, dtype, to=_tensor_type(dtype))


@_emits("zeros_like", "ones_like")
def _emit_fill(em, node, ins, params, attrs, hint, dtype):
    fill = 0 if em.g.nodes[node]["op"] == "zeros_like" else 1
    shape = em.add("Shape", [ins[0]], f"{hint}/shape", np.dtype(np.int64))
    value = em.onnx.numpy_helper.from_array(np.asarray([fill], dtype=dtype))
    return em.add("ConstantOfShape", [shape], hint, dtype, value=value)


@_emits("constant")
def _emit_constant(em, node, ins, params, attrs, hint, dtype):
    return em.const(np.asarray(attrs["value"], dtype=dtype), hint)


@_emits("variable")
def _emit_variable(em, node, ins, params, attrs, hint, dtype):
    return em.add("Identity", [em.weight(params["value"])], hint, dtype)


@_emits("transpose")
def _emit_transpose(em, node, ins, params, attrs, hint, dtype):
    rank = len(em.g.nodes[node]["type"].shape)
    axes = attrs.get("axes")
    perm = list(range(rank))[::-1] if axes is None else [normalize_axis(a, rank, "transpose")
                                                          for a in axes]
    return em.add("Transpose", [ins[0]], hint, dtype, perm=perm)


@_emits("flatten")
def _emit_flatten(em, node, ins, params, attrs, hint, dtype):
    return em.add("Flatten", [ins[0]], hint, dtype, axis=1)


@_emits("reshape", "reshape_array")
def _emit_reshape(em, node, ins, params, attrs, hint, dtype):
    if em.g.nodes[node]["op"] == "reshape":  # Keras: the target excludes the batch axis
        target = list(attrs["target_shape"])
        if 0 in target:
            raise CompilerError(f"export: layer '{hint}': Reshape to a size-0 axis {target} "
                                f"has no ONNX form")
        shape = em.ints([0, *target], f"{hint}/shape")  # 0: copy the batch size
        return em.add("Reshape", [ins[0], shape], hint, dtype)
    target = list(attrs["shape"])
    return em.add("Reshape", [ins[0], em.ints(target, f"{hint}/shape")], hint, dtype,
                  allowzero=int(0 in target))


@_emits("expand_dims")
def _emit_expand_dims(em, node, ins, params, attrs, hint, dtype):
    rank = len(em.g.nodes[node]["type"].shape)
    axis = normalize_axis(attrs["axis"], rank, "expand_dims")
    return em.add("Unsqueeze", [ins[0], em.ints([axis], f"{hint}/axes")], hint, dtype)


@_emits("squeeze")
def _emit_squeeze(em, node, ins, params, attrs, hint, dtype):
    shape = em.g.nodes[data_operands(em.g, node)[0]]["type"].shape
    axis = attrs.get("axis")
    if axis is None:
        axes = [a for a, d in enumerate(shape) if isinstance(d, int) and d == 1]
    else:
        axes = [normalize_axis(a, len(shape), "squeeze")
                for a in (axis if isinstance(axis, (tuple, list)) else (axis,))]
    return em.add("Squeeze", [ins[0], em.ints(axes, f"{hint}/axes")], hint, dtype)


@_emits("concatenate")
def _emit_concatenate(em, node, ins, params, attrs, hint, dtype):
    rank = len(em.g.nodes[node]["type"].shape)
    return em.add("Concat", [em.cast(x, dtype, hint) for x in ins], hint, dtype,
                  axis=normalize_axis(attrs.get("axis", -1), rank, "Concatenate"))


@_emits("stack")
def _emit_stack(em, node, ins, params, attrs, hint, dtype):
    rank = len(em.g.nodes[node]["type"].shape)
    axis = normalize_axis(attrs.get("axis", 0), rank, "stack")
    axes = em.ints([axis], f"{hint}/axes")
    parts = [em.add("Unsqueeze", [em.cast(x, dtype, hint), axes], f"{hint}/part", dtype)
             for x in ins]
    return em.add("Concat", parts, hint, dtype, axis=axis)


@_emits("slice")
def _emit_slice(em, node, ins, params, attrs, hint, dtype):
    starts = [int(b) for b in attrs["start"]]
    ends = [np.iinfo(np.int64).max if n == -1 else b + n
            for b, n in zip(starts, attrs["shape"])]
    return em.add("Slice", [ins[0], em.ints(starts, f"{hint}/starts"),
                            em.ints(ends, f"{hint}/ends"),
                            em.ints(range(len(starts)), f"{hint}/axes")], hint, dtype)


@_emits("clamped_slice")
def _emit_clamped_slice(em, node, ins, params, attrs, hint, dtype):
    """ONNX Slice clamps as the op does; an end read off ``like`` is ``Shape`` of it."""
    if attrs["end"] is None:
        la = int(attrs["like_axis"])
        end = em.add("Shape", [ins[1]], f"{hint}/ends", np.dtype(np.int64), start=la, end=la + 1)
    else:
        end = em.ints([int(np.clip(attrs["end"], -2 ** 63, 2 ** 63 - 1))], f"{hint}/ends")
    return em.add("Slice", [ins[0], em.ints([attrs["start"]], f"{hint}/starts"), end,
                            em.ints([attrs["axis"]], f"{hint}/axes"),
                            em.ints([attrs["step"]], f"{hint}/steps")], hint, dtype)


@_emits("take")
def _emit_take(em, node, ins, params, attrs, hint, dtype):
    x, idx = ins
    idx = em.cast(idx, np.int64, hint)
    axis = attrs.get("axis")
    if axis is None:  # np.take without an axis indexes the flattened array
        x = em.add("Reshape", [x, em.ints([-1], f"{hint}/flat")], f"{hint}/flat", dtype)
        axis = 0
    else:
        rank = len(em.g.nodes[data_operands(em.g, node)[0]]["type"].shape)
        axis = normalize_axis(axis, rank, "take")
    return em.add("Gather", [x, idx], hint, dtype, axis=axis)


@_emits("pad")
def _emit_pad(em, node, ins, params, attrs, hint, dtype):
    widths = [tuple(int(v) for v in w) for w in attrs["pad_width"]]
    pads = em.ints([b for b, _ in widths] + [a for _, a in widths], f"{hint}/pads")
    value = em.const(attrs.get("constant_values", 0), f"{hint}/value", dtype)
    return em.add("Pad", [ins[0], pads, value], hint, dtype, mode="constant")


_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin",
           "prod": "ReduceProd"}


@_emits(*_REDUCE)
def _emit_reduce(em, node, ins, params, attrs, hint, dtype):
    op = em.g.nodes[node]["op"]
    x = ins[0]
    rank = len(em.g.nodes[data_operands(em.g, node)[0]]["type"].shape)
    axes = list(reduction_axes(attrs.get("axis"), rank, op))
    work = np.dtype(np.int32) if dtype == np.dtype(bool) else dtype  # no bool ReduceMax at 17
    x = em.cast(x, work, hint)
    keep = int(bool(attrs.get("keepdims", False)))
    if op == "sum":  # opset 13: axes is an input
        y = em.add("ReduceSum", [x, em.ints(axes, f"{hint}/axes")], hint, work, keepdims=keep)
    else:
        y = em.add(_REDUCE[op], [x], hint, work, axes=axes, keepdims=keep)
    return em.cast(y, dtype, hint)


# -- the walk -------------------------------------------------------------------------------------
def to_onnx(g: nx.DiGraph, name: str = "model"):
    """An ``onnx.ModelProto`` (opset 17) computing the IR graph ``g`` (params carry values)."""
    onnx = _onnx()
    helper = onnx.helper
    em = _Emitter(g)
    names: dict[int, str] = {}
    graph_inputs = []
    for node in g.graph["inputs"]:
        t = g.nodes[node]["type"]
        iname = em.fresh(str(g.nodes[node]["attrs"].get("name", f"input_{node}")))
        names[node] = iname
        em.dtypes[iname] = np.dtype(t.dtype)
        graph_inputs.append(helper.make_tensor_value_info(iname, _tensor_type(t.dtype),
                                                          _dims(t.shape)))
    for node in topo_nodes(g):
        data = g.nodes[node]
        if data["op"] in ("input", "param"):
            continue
        emit = _EMITTERS.get(data["op"])
        if emit is None:
            raise CompilerError(
                f"export: op '{data['op']}' (layer '{layer_name(g, node)}') has no ONNX form; "
                f"exportable ops: {', '.join(exportable_ops())}\n  at {format_node(g, node)}")
        if data["type"].shape is None:
            raise CompilerError(f"export: layer '{layer_name(g, node)}': the rank of its output "
                                f"is unknown\n  at {format_node(g, node)}")
        ins = [names[n] for n in data_operands(g, node)]
        hint = layer_name(g, node) if data.get("origin") is not None else f"{data['op']}_{node}"
        try:
            out = emit(em, node, ins, param_operands(g, node), data["attrs"], hint,
                       np.dtype(data["type"].dtype))
        except CompilerError:
            raise
        except (ValueError, TypeError, KeyError) as e:
            raise CompilerError(f"export: layer '{layer_name(g, node)}' (op '{data['op']}'): "
                                f"{e}\n  at {format_node(g, node)}") from e
        names[node] = out
    outputs = []
    out_names = []
    for i, node in enumerate(g.graph["outputs"]):
        t = g.nodes[node]["type"]
        oname = em.fresh("output" if len(g.graph["outputs"]) == 1 else f"output_{i}")
        em.nodes.append(helper.make_node("Identity", [names[node]], [oname],
                                         name=em.fresh(f"{oname}/Identity")))
        out_names.append(oname)
        outputs.append(helper.make_tensor_value_info(oname, _tensor_type(t.dtype),
                                                     _dims(t.shape)))
    em.prune(out_names)
    graph = helper.make_graph(em.nodes, str(g.graph.get("name", name)), graph_inputs, outputs,
                              initializer=list(em.initializers.values()))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="deferc")
    model.ir_version = min(model.ir_version, 8)  # opset 17's IR version; older runtimes load it
    return model


from . import export_sequence  # noqa: E402,F401  (registers the sequence ops' emitters)
