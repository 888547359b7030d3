"""ONNX's channels-first neural-network ops on our NHWC kernels: Conv, pooling, normalization,
Gemm/MatMul.

Weights are laid out once, at import: a Conv's ``OIHW`` kernel becomes ``(kh, kw, in/groups,
out)`` (a depthwise one ``(kh, kw, C, multiplier)``), a Gemm's ``B`` (with ``transB``) becomes the
``(in, out)`` Dense kernel; the model's weights keep the initializer names in that layout.
Explicit padding that TF's ``same`` cannot express becomes a padding op in front of a ``valid``
window (zeros for convolutions, ``-inf`` for max pooling); average pooling that must not count
padded cells divides by the pooled mask of real cells.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...symbolic import is_concrete
from .converters import _ew, _fail, _input, converter
from .graph import Alias, Importer, Tensor


def _pads2d(imp: Importer, attrs: dict, x_shape: tuple, k: tuple, strides: tuple,
            dilations: tuple, allow_same: bool = True) -> tuple[str, tuple]:
    """``(padding, ((top, bottom), (left, right)))``: ``"same"`` when TF's SAME is exactly what
    the node asks for, else explicit pads for a ``valid`` window."""
    auto = attrs.get("auto_pad", "NOTSET")
    if isinstance(auto, bytes):
        auto = auto.decode()
    if auto == "VALID":
        return "valid", ((0, 0), (0, 0))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if not allow_same:
            raise _fail(imp, f"auto_pad={auto} with count_include_pad=1 is not supported")
        if auto == "SAME_UPPER" or all(
                (d * (kk - 1) + 1 - s) % 2 == 0 and s == 1
                for kk, s, d in zip(k, strides, dilations)):
            return "same", ((0, 0), (0, 0))
        pads = []
        for axis in range(2):
            size = x_shape[2 + axis]
            if not is_concrete(size):
                raise _fail(imp, "auto_pad=SAME_LOWER with strides needs concrete spatial "
                                 "sizes")
            out = -(-size // strides[axis])
            total = max((out - 1) * strides[axis] + dilations[axis] * (k[axis] - 1) + 1 - size, 0)
            pads.append((total - total // 2, total // 2))
        return "valid", tuple(pads)
    if auto != "NOTSET":
        raise _fail(imp, f"unknown auto_pad {auto!r}")
    p = list(attrs.get("pads", [0, 0, 0, 0]))
    if len(p) != 4 or any(v < 0 for v in p):
        raise _fail(imp, f"pads must be 4 non-negative ints for a 2-D window, received {p}")
    pads = ((int(p[0]), int(p[2])), (int(p[1]), int(p[3])))
    if all(v == 0 for pair in pads for v in pair):
        return "valid", pads
    same = all(s == 1 and (d * (kk - 1)) % 2 == 0 and pads[i] == ((d * (kk - 1)) // 2,) * 2
               for i, (kk, s, d) in enumerate(zip(k, strides, dilations)))
    return ("same", ((0, 0), (0, 0))) if same and allow_same else ("valid", pads)


def _window_attrs(imp: Importer, attrs: dict, rank: int, k: tuple) -> tuple:
    if rank != 4:
        raise _fail(imp, f"only 2-D windows (rank-4 NCHW inputs) are supported, received "
                         f"rank {rank}")
    strides = tuple(int(s) for s in attrs.get("strides", (1, 1)))
    dilations = tuple(int(d) for d in attrs.get("dilations", (1, 1)))
    if len(strides) != 2 or len(dilations) != 2 or min(strides + dilations) < 1:
        raise _fail(imp, f"strides {strides} and dilations {dilations} must be 2 positive ints")
    return strides, dilations


def _pad_nhwc(imp: Importer, x: Tensor, pads: tuple, value: float) -> Tensor:
    if value == 0.0:
        return imp.emit("zero_padding2d", [x], {"padding": pads}, nhwc=True)
    width = ((0, 0), pads[0], pads[1], (0, 0))
    return imp.emit("pad", [x], {"pad_width": width, "constant_values": float(value)}, nhwc=True)


# -- convolution -----------------------------------------------------------------------------------
@converter("Conv")
def _conv(imp: Importer, node: Any, attrs: dict) -> list:
    w = np.asarray(imp.require_known(node.input[1], "the weight W"))
    shape = imp.shape(node.input[0])
    rank = len(shape) if shape is not None else None
    if rank == 3:  # 1-D: a 2-D convolution over (N, C, 1, L)
        return [_conv1d(imp, node, attrs, w)]
    if w.ndim != 4:
        raise _fail(imp, f"only 1-D and 2-D convolutions are supported, W has shape {w.shape}")
    k = tuple(int(v) for v in w.shape[2:])
    strides, dilations = _window_attrs(imp, attrs, rank or 4, k)
    group = int(attrs.get("group", 1))
    out_c, cin_g = int(w.shape[0]), int(w.shape[1])
    x = imp.tensor(node.input[0], True)
    padding, pads = _pads2d(imp, attrs, shape, k, strides, dilations)
    if any(v for pair in pads for v in pair):
        x = _pad_nhwc(imp, x, pads, 0.0)
    bias = imp.require_known(node.input[2], "the bias B") if _input(imp, node, 2) else None
    common = {"kernel_size": k, "strides": strides, "padding": padding, "dilation": dilations,
              "activation": "linear", "use_bias": bias is not None}
    if group > 1 and cin_g == 1 and out_c % group == 0 and shape[1] == group:
        mult = out_c // group

        def layout(a: np.ndarray) -> np.ndarray:
            return a.reshape(group, mult, *k).transpose(2, 3, 0, 1)
        op, attrs_ = "depthwise_conv2d", {**common, "depth_multiplier": mult}
    else:
        def layout(a: np.ndarray) -> np.ndarray:
            return a.transpose(2, 3, 1, 0)
        op, attrs_ = "conv2d", {**common, "filters": out_c, "groups": group}
    params = {"kernel": imp.weight_param(node.input[1], "kernel",
                                         np.ascontiguousarray(layout(w)), layout)}
    if bias is not None:
        params["bias"] = imp.weight_param(node.input[2], "bias", np.asarray(bias).reshape(-1),
                                          lambda a: np.asarray(a).reshape(-1))
    return [imp.emit(op, [x], attrs_, params, nhwc=True)]


def _conv1d(imp: Importer, node: Any, attrs: dict, w: np.ndarray) -> Tensor:
    """Conv over (N, C, L): the same node on (N, C, 1, L) with a (O, I, 1, k) weight."""
    name = node.input[0]
    x = imp.tensor(name)
    x4 = imp.emit("expand_dims", [x], {"axis": 2})
    imp.values[name + "#2d"] = x4
    w_name = node.input[1] + "#2d"
    imp.values[w_name] = w[:, :, None, :]
    alias = imp.alias(node.input[1])
    if alias is not None:  # the (O, I, 1, k) view of a weight is still that weight

        def to_2d(a: Any) -> Any:
            return a if a is None or np.ndim(a) == 0 else np.asarray(a)[:, :, None, :]
        imp.aliases[w_name] = Alias(alias.source, to_2d(alias.base),
                                    tuple((op, side, to_2d(c)) for op, side, c in alias.steps))
    inputs = [name + "#2d", w_name] + list(node.input[2:3])
    attrs2 = dict(attrs)
    for key in ("strides", "dilations"):
        if key in attrs:
            attrs2[key] = [1, *attrs[key]]
    if "pads" in attrs:
        attrs2["pads"] = [0, attrs["pads"][0], 0, attrs["pads"][1]]
    if "kernel_shape" in attrs:
        attrs2["kernel_shape"] = [1, *attrs["kernel_shape"]]
    node2 = _Node(node.op_type, inputs, node.name)
    y = _conv(imp, node2, attrs2)[0]
    y = imp.relayout(y, False)
    return imp.emit("squeeze", [y], {"axis": 2})


class _Node:
    """A stand-in ``NodeProto`` for re-dispatching a node with rewritten inputs."""

    def __init__(self, op_type: str, inputs: list, name: str, outputs: tuple = ("",)):
        self.op_type, self.input, self.name, self.output = op_type, inputs, name, outputs


# -- pooling ---------------------------------------------------------------------------------------
@converter("MaxPool", "AveragePool")
def _pool(imp: Importer, node: Any, attrs: dict) -> list:
    if len(node.output) > 1 and node.output[1]:
        raise _fail(imp, "the Indices output of MaxPool is not supported")
    k = tuple(int(v) for v in attrs.get("kernel_shape", ()))
    shape = imp.shape(node.input[0])
    if shape is not None and len(shape) == 3:  # 1-D: the same node over (N, C, 1, L)
        return [_pool1d(imp, node, attrs)]
    if len(k) != 2 or min(k) < 1:
        raise _fail(imp, f"attribute kernel_shape must be 2 positive ints for a 2-D window, "
                         f"received {list(k)}")
    strides, dilations = _window_attrs(imp, attrs, len(shape), k)
    is_max = node.op_type == "MaxPool"
    if dilations != (1, 1) and not is_max:
        raise _fail(imp, f"attribute dilations {list(dilations)}: AveragePool with dilations is "
                         f"not supported (MaxPool's are)")
    span = tuple(d * (kk - 1) + 1 for kk, d in zip(k, dilations))
    include = bool(attrs.get("count_include_pad", 0))
    padding, pads = _pads2d(imp, attrs, shape, k, strides, dilations,
                            allow_same=is_max or not include)
    if dilations != (1, 1) and padding == "same":  # spelled out for the strided gathers
        pads = tuple(_same_pads(imp, shape[2 + a], span[a], strides[a]) for a in range(2))
    ceil_extra = [0, 0]
    if attrs.get("ceil_mode", 0):
        for axis in range(2):
            size = shape[2 + axis]
            lo, hi = pads[axis]
            if is_concrete(size):
                total = size + lo + hi - span[axis]
                out = -(-total // strides[axis]) + 1
                if (out - 1) * strides[axis] >= size + lo:  # last window starts in padding
                    out -= 1
                ceil_extra[axis] = max((out - 1) * strides[axis] + span[axis]
                                       - (size + lo + hi), 0)
            else:
                ceil_extra[axis] = strides[axis] - 1
    x = imp.tensor(node.input[0], True)
    full = tuple((lo, hi + e) for (lo, hi), e in zip(pads, ceil_extra))
    geo = {"pool_size": k, "strides": strides}
    if dilations != (1, 1):
        return [_dilated_max(imp, x, full, k, strides, dilations)]
    if is_max:
        if any(v for pair in full for v in pair):
            x = _pad_nhwc(imp, x, full, -np.inf)
        return [imp.emit("max_pool2d", [x], {**geo, "padding": padding}, nhwc=True)]
    if not any(v for pair in full for v in pair):
        return [imp.emit("avg_pool2d", [x], {**geo, "padding": padding}, nhwc=True)]
    # mean over real cells (and padded ones when count_include_pad): pooled sum / pooled mask
    mask = imp.emit("ones_like", [x], nhwc=True)
    if any(ceil_extra):
        mask = _pad_nhwc(imp, mask, tuple((0, e) for e in ceil_extra), 0.0)
    mask = _pad_nhwc(imp, mask, pads, 1.0 if include else 0.0)
    total = imp.emit("avg_pool2d", [_pad_nhwc(imp, x, full, 0.0)], {**geo, "padding": "valid"},
                     nhwc=True)
    count = imp.emit("avg_pool2d", [mask], {**geo, "padding": "valid"}, nhwc=True)
    return [_ew(imp, "divide", total, count)]


def _same_pads(imp: Importer, size, span: int, stride: int) -> tuple[int, int]:
    if not is_concrete(size):
        raise _fail(imp, f"a dilated MaxPool with auto_pad needs concrete spatial sizes, "
                         f"received {size}")
    out = -(-int(size) // stride)
    total = max((out - 1) * stride + span - int(size), 0)
    return total // 2, total - total // 2


def _dilated_max(imp: Importer, x: Tensor, full: tuple, k: tuple, strides: tuple,
                 dilations: tuple) -> Tensor:
    """Dilated MaxPool: the max of ``kh*kw`` strided gathers of the ``-inf``-padded input (the
    window's taps), sizes known at import."""
    if any(v for pair in full for v in pair):
        x = _pad_nhwc(imp, x, full, -np.inf)
    size = x.type.shape[1:3]
    if not all(is_concrete(d) for d in size):
        raise _fail(imp, f"a dilated MaxPool needs spatial sizes known at import, received "
                         f"{tuple(str(d) for d in size)}")
    outs = [(int(size[a]) - dilations[a] * (k[a] - 1) - 1) // strides[a] + 1 for a in range(2)]
    if min(outs) < 1:
        raise _fail(imp, f"the padded input {tuple(size)} is smaller than the dilated window "
                         f"{k} (dilations {dilations})")
    rows = [imp.emit("take", [x, imp.constant(np.arange(outs[0]) * strides[0] + i * dilations[0])],
                     {"axis": 1}, nhwc=True) for i in range(k[0])]
    taps = [imp.emit("take", [r, imp.constant(np.arange(outs[1]) * strides[1] + j * dilations[1])],
                     {"axis": 2}, nhwc=True) for r in rows for j in range(k[1])]
    return taps[0] if len(taps) == 1 else imp.emit("maximum", taps, nhwc=True)


def _pool1d(imp: Importer, node: Any, attrs: dict) -> Tensor:
    """Pooling over (N, C, L): the same node on (N, C, 1, L) with a (1, k) window."""
    name = node.input[0]
    imp.values[name + "#2d"] = imp.emit("expand_dims", [imp.tensor(name)], {"axis": 2})
    attrs2 = dict(attrs)
    for key in ("kernel_shape", "strides", "dilations"):
        if key in attrs:
            attrs2[key] = [1, *attrs[key]]
    if "pads" in attrs:
        if len(attrs["pads"]) != 2:
            raise _fail(imp, f"attribute pads must be 2 ints for a 1-D window, received "
                             f"{list(attrs['pads'])}")
        attrs2["pads"] = [0, attrs["pads"][0], 0, attrs["pads"][1]]
    y = _pool(imp, _Node(node.op_type, [name + "#2d"], node.name), attrs2)[0]
    return imp.emit("squeeze", [imp.relayout(y, False)], {"axis": 2})


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(imp: Importer, node: Any, attrs: dict) -> list:
    rank = len(imp.shape(node.input[0]))
    if rank != 4:
        x = imp.tensor(node.input[0])
        op = "mean" if node.op_type == "GlobalAveragePool" else "max"
        return [imp.emit(op, [x], {"axis": tuple(range(2, rank)), "keepdims": True})]
    x = imp.tensor(node.input[0], True)
    op = "global_avg_pool2d" if node.op_type == "GlobalAveragePool" else "global_max_pool2d"
    return [imp.emit(op, [x], {"keepdims": True}, nhwc=True)]


# -- normalization ---------------------------------------------------------------------------------
@converter("BatchNormalization")
def _batch_norm(imp: Importer, node: Any, attrs: dict) -> list:
    if any(node.output[1:]):
        raise _fail(imp, "training-mode outputs (running mean/var) are not supported")
    if attrs.get("training_mode", 0):
        raise _fail(imp, "training_mode=1 is not supported (inference only)")
    rank = len(imp.shape(node.input[0]))
    names = [imp.require_known(n, role) for n, role in zip(node.input[1:5], (
        "scale", "B", "mean", "var"))]
    params = {role: imp.weight_param(n, role, np.asarray(v, dtype=imp.dtype).reshape(-1))
              for n, v, role in zip(node.input[1:5], names,
                                    ("gamma", "beta", "moving_mean", "moving_variance"))}
    attrs_ = {"epsilon": float(attrs.get("epsilon", 1e-5)), "center": True, "scale": True}
    if rank == 4:
        x = imp.tensor(node.input[0], True)
        return [imp.emit("batch_norm", [x], attrs_, params, nhwc=True)]
    x = imp.tensor(node.input[0])
    if rank == 2:
        return [imp.emit("batch_norm", [x], attrs_, params)]
    perm = (0,) + tuple(range(2, rank)) + (1,)
    back = tuple(int(i) for i in np.argsort(perm))
    y = imp.emit("batch_norm", [imp.emit("transpose", [x], {"axes": perm})], attrs_, params)
    return [imp.emit("transpose", [y], {"axes": back})]


@converter("LayerNormalization")
def _layer_norm(imp: Importer, node: Any, attrs: dict) -> list:
    rank = len(imp.shape(node.input[0]))
    axis = int(attrs.get("axis", -1)) % rank
    if axis != rank - 1 or any(node.output[1:]):
        raise _fail(imp, "only LayerNormalization over the last axis (one output) is "
                         "supported")
    x = imp.tensor(node.input[0])
    scale = np.asarray(imp.require_known(node.input[1], "Scale"), dtype=imp.dtype).reshape(-1)
    params = {"gamma": imp.weight_param(node.input[1], "gamma", scale)}
    if _input(imp, node, 2):
        bias = np.asarray(imp.require_known(node.input[2], "B"), dtype=imp.dtype).reshape(-1)
        params["beta"] = imp.weight_param(node.input[2], "beta", bias)
    attrs_ = {"epsilon": float(attrs.get("epsilon", 1e-5)), "center": "beta" in params,
              "scale": True}
    return [imp.emit("layer_norm", [x], attrs_, params)]


# -- matrix products -------------------------------------------------------------------------------
def _dense(imp: Importer, x: Tensor, kernel: np.ndarray, kernel_name: str | None,
           bias: np.ndarray | None, bias_name: str | None, transposed: bool = False) -> Tensor:
    """``transposed``: ``kernel`` is the transpose of ``kernel_name``'s value (Gemm transB)."""
    params = {"kernel": imp.weight_param(kernel_name or "", "kernel", kernel.astype(imp.dtype),
                                         (lambda a: a.T) if transposed else (lambda a: a))}
    if bias is not None:
        params["bias"] = imp.weight_param(bias_name or "", "bias", bias.astype(imp.dtype),
                                          lambda a: np.asarray(a).reshape(-1))
    attrs = {"units": int(kernel.shape[1]), "activation": "linear", "use_bias": bias is not None}
    return imp.emit("dense", [x], attrs, params)


@converter("Gemm")
def _gemm(imp: Importer, node: Any, attrs: dict) -> list:
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = int(attrs.get("transA", 0)), int(attrs.get("transB", 0))
    a = imp.tensor(node.input[0])
    if trans_a:
        a = imp.emit("transpose", [a], {"axes": (1, 0)})
    b = imp.known(node.input[1])
    c_name = _input(imp, node, 2)
    c = imp.known(c_name) if c_name else None
    if b is not None:
        kernel = np.asarray(b).T if trans_b else np.asarray(b)
        kname = node.input[1] if alpha == 1.0 else None
        kernel = kernel * alpha if alpha != 1.0 else kernel
        units = kernel.shape[1]
        bias, bname = None, None
        if c is not None and np.size(c) in (1, units) and (np.ndim(c) <= 1 or np.shape(c)[0] == 1):
            bias = np.broadcast_to(np.asarray(c).reshape(-1), (units,)) * beta
            bname = c_name if beta == 1.0 and np.shape(c) == (units,) else None
        y = _dense(imp, a, np.ascontiguousarray(kernel), kname, bias, bname, bool(trans_b))
        if c_name and bias is None:
            y = _ew(imp, "add", y, _ew(imp, "multiply", imp.tensor(c_name), beta))
        return [y]
    bt = imp.tensor(node.input[1])
    if trans_b:
        bt = imp.emit("transpose", [bt], {"axes": (1, 0)})
    y = imp.emit("matmul", [a, bt])
    if alpha != 1.0:
        y = _ew(imp, "multiply", y, alpha)
    if c_name:
        y = _ew(imp, "add", y, _ew(imp, "multiply", imp.tensor(c_name), beta))
    return [y]


@converter("MatMul")
def _matmul(imp: Importer, node: Any, attrs: dict) -> list:
    b = imp.known(node.input[1])
    a_shape = imp.shape(node.input[0])
    if b is not None and np.ndim(b) == 2 and a_shape is not None and len(a_shape) >= 2:
        return [_dense(imp, imp.tensor(node.input[0]), np.asarray(b), node.input[1], None, None)]
    return [imp.emit("matmul", [imp.tensor(node.input[0]), imp.tensor(node.input[1])])]

