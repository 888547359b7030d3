"""ONNX ops built from our primitives: ConvTranspose, InstanceNormalization, LRN, ArgMax/ArgMin,
Tile on run-time values, Range up to a run-time length, and a clear refusal for ConstantOfShape
whose size is only known at run time.

Compositions cost nothing extra here: InstanceNormalization is two means over the spatial axes of
a channels-last value, LRN a matmul with a banded (C, C) constant over the channel axis, ArgMax
the first (or last) position equal to the max, Tile a concatenation of copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...symbolic import is_concrete
from .converters import _ew, _fail, _input, converter
from .graph import TO_NCHW, Importer, Tensor
from .run_time_dims import positions


def _str(attrs: dict, key: str, default: str) -> str:
    value = attrs.get(key, default)
    return value.decode() if isinstance(value, bytes) else value


# -- ConvTranspose ---------------------------------------------------------------------------------
def _ints(imp: Importer, attrs: dict, key: str, default: tuple, n: int, low: int) -> tuple:
    values = tuple(int(v) for v in attrs.get(key, default))
    if len(values) != n or any(v < low for v in values):
        raise _fail(imp, f"attribute {key} must be {n} ints >= {low}, received {list(values)}")
    return values


@converter("ConvTranspose")
def _conv_transpose(imp: Importer, node: Any, attrs: dict) -> list:
    w = np.asarray(imp.require_known(node.input[1], "the weight W"))
    shape = imp.shape(node.input[0])
    if w.ndim != 4 or shape is None or len(shape) != 4:
        raise _fail(imp, f"only 2-D ConvTranspose (rank-4 input and W) is supported, received "
                         f"input rank {None if shape is None else len(shape)} and W of shape "
                         f"{w.shape}")
    group = int(attrs.get("group", 1))
    if group < 1 or w.shape[0] % group or (is_concrete(shape[1]) and shape[1] != w.shape[0]):
        raise _fail(imp, f"input axis 1 (channels): expected {w.shape[0]} (W's C_in, a multiple "
                         f"of group={group}), received {shape[1]}")
    k = tuple(int(v) for v in w.shape[2:])
    if "kernel_shape" in attrs and tuple(int(v) for v in attrs["kernel_shape"]) != k:
        raise _fail(imp, f"attribute kernel_shape {list(attrs['kernel_shape'])} disagrees with "
                         f"W's spatial shape {list(k)}")
    strides = _ints(imp, attrs, "strides", (1, 1), 2, 1)
    dilations = _ints(imp, attrs, "dilations", (1, 1), 2, 1)
    extra = _ints(imp, attrs, "output_padding", (0, 0), 2, 0)
    if any(e >= max(s, d) for e, s, d in zip(extra, strides, dilations)):
        raise _fail(imp, f"attribute output_padding {list(extra)} must be smaller than the "
                         f"stride or dilation on its axis ({list(strides)}, {list(dilations)})")
    pads = _ints(imp, attrs, "pads", (0, 0, 0, 0), 4, 0)
    pads = ((pads[0], pads[2]), (pads[1], pads[3]))
    auto = _str(attrs, "auto_pad", "NOTSET")
    if auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise _fail(imp, f"attribute auto_pad: unknown value {auto!r}")
    target = attrs.get("output_shape")
    if target is not None or auto.startswith("SAME"):
        pads = []
        for i in range(2):
            size = shape[2 + i]
            if not is_concrete(size):
                raise _fail(imp, f"output_shape/auto_pad={auto} needs a concrete input axis "
                                 f"{2 + i}, received {size}")
            out = int(target[-2 + i]) if target is not None else int(size) * strides[i]
            total = (strides[i] * (int(size) - 1) + extra[i] + (k[i] - 1) * dilations[i] + 1
                     - out)
            if total < 0:
                raise _fail(imp, f"output_shape {list(target)} is larger than the full "
                                 f"output on axis {2 + i}")
            upper = auto == "SAME_UPPER"  # the spec: NOTSET puts the odd cell first
            pads.append((total // 2, total - total // 2) if upper
                        else (total - total // 2, total // 2))
        pads = tuple(pads)
    elif auto == "VALID":
        pads = ((0, 0), (0, 0))
    x = imp.tensor(node.input[0], True)
    operands = [x, imp.tensor(node.input[1])]
    if _input(imp, node, 2):
        operands.append(imp.tensor(node.input[2]))
    out = imp.emit("conv2d_transpose", operands,
                   {"strides": strides, "dilations": dilations, "pads": pads,
                    "output_padding": extra, "groups": group}, nhwc=True)
    return [out]


# -- normalization ---------------------------------------------------------------------------------
def _channels_last(imp: Importer, name: str) -> tuple[Tensor, tuple | None]:
    """``name`` with its channel axis (ONNX axis 1) last, and the permutation back (None for
    rank 4, which is held channels-last)."""
    rank = imp.rank(name)
    if rank == 4:
        return imp.tensor(name, True), None
    perm = (0,) + tuple(range(2, rank)) + (1,)
    x = imp.emit("transpose", [imp.tensor(name)], {"axes": perm})
    return x, tuple(int(i) for i in np.argsort(perm))


def _back(imp: Importer, y: Tensor, back: tuple | None) -> Tensor:
    if back is None:
        y.nhwc = True
        return y
    return imp.emit("transpose", [y], {"axes": back})


@converter("InstanceNormalization")
def _instance_norm(imp: Importer, node: Any, attrs: dict) -> list:
    rank = imp.rank(node.input[0])
    if rank < 3:
        raise _fail(imp, f"input must have rank >= 3 (N, C, ...), received rank {rank}")
    x, back = _channels_last(imp, node.input[0])
    axes = tuple(range(1, rank - 1))
    eps = float(attrs.get("epsilon", 1e-5))
    centered = _ew(imp, "subtract", x, imp.emit("mean", [x], {"axis": axes, "keepdims": True}))
    var = imp.emit("mean", [_ew(imp, "multiply", centered, centered)],
                   {"axis": axes, "keepdims": True})
    y = _ew(imp, "divide", centered, _ew(imp, "sqrt", _ew(imp, "add", var, eps)))
    y = _ew(imp, "add", _ew(imp, "multiply", y, imp.tensor(node.input[1])),
            imp.tensor(node.input[2]))
    return [_back(imp, y, back)]


@converter("LRN")
def _lrn(imp: Importer, node: Any, attrs: dict) -> list:
    size = int(attrs.get("size", 0))
    if size < 1:
        raise _fail(imp, f"attribute size must be a positive int, received {size}")
    rank = imp.rank(node.input[0])
    c = imp.shape(node.input[0])[1] if rank >= 2 else None
    if rank < 3 or not is_concrete(c):
        raise _fail(imp, f"LRN needs an (N, C, ...) input with a known channel count, received "
                         f"rank {rank}, channels {c}")
    x, back = _channels_last(imp, node.input[0])
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    idx = np.arange(int(c))
    band = ((idx[:, None] >= idx[None, :] - lo) & (idx[:, None] <= idx[None, :] + hi))
    sums = imp.emit("matmul", [_ew(imp, "multiply", x, x), imp.constant(band.astype(imp.dtype))])
    alpha, beta = float(attrs.get("alpha", 1e-4)), float(attrs.get("beta", 0.75))
    bias = float(attrs.get("bias", 1.0))
    denom = _ew(imp, "power", _ew(imp, "add", _ew(imp, "multiply", sums, alpha / size), bias),
                beta)
    return [_back(imp, _ew(imp, "divide", x, denom), back)]


# -- ArgMax / ArgMin -------------------------------------------------------------------------------
@converter("ArgMax", "ArgMin")
def _arg_extreme(imp: Importer, node: Any, attrs: dict) -> list:
    value = imp.tensor(node.input[0], None)
    shape = value.onnx_shape
    rank = len(shape)
    axis = int(attrs.get("axis", 0))
    if not -rank <= axis < rank:
        raise _fail(imp, f"attribute axis {axis} is out of range for rank {rank}")
    axis %= rank
    keepdims = bool(attrs.get("keepdims", 1))
    last = bool(attrs.get("select_last_index", 0))
    n = shape[axis]
    if not is_concrete(n):
        raise _fail(imp, f"axis {axis} has size {n}, known only at run time; deferc needs it "
                         f"known at import")
    if value.nhwc and not keepdims:
        value = imp.relayout(value, False)
    data_axis = TO_NCHW[axis] if value.nhwc else axis
    op = "max" if node.op_type == "ArgMax" else "min"
    extreme = imp.emit(op, [value], {"axis": (data_axis,), "keepdims": True}, nhwc=value.nhwc)
    hit = imp.emit("equal", [value, extreme], nhwc=value.nhwc)
    positions = np.arange(int(n), dtype=np.float64).reshape(
        [int(n) if a == data_axis else 1 for a in range(rank)])
    miss = -1.0 if last else float(n)
    cand = imp.emit("where", [hit, imp.constant(positions.astype(imp.dtype)),
                              imp.constant(np.asarray(miss, dtype=imp.dtype))], nhwc=value.nhwc)
    pick = imp.emit("max" if last else "min", [cand], {"axis": (data_axis,),
                                                        "keepdims": keepdims},
                    nhwc=value.nhwc and keepdims)
    return [imp.emit("cast", [pick], {"dtype": "int64"}, nhwc=pick.nhwc)]


# -- Tile, Range, ConstantOfShape on run-time values ---------------------------------------------
@converter("Tile")
def _tile(imp: Importer, node: Any, attrs: dict) -> list:
    x = imp.tensor(node.input[0], None)
    repeats = imp.ints(node.input[1], "repeats")
    rank = len(x.onnx_shape)
    if len(repeats) != rank or any(r < 0 for r in repeats):
        raise _fail(imp, f"repeats {repeats} must be {rank} non-negative ints (one per axis)")
    if 0 in repeats:
        raise _fail(imp, f"repeats {repeats} hold 0 (an empty output); not supported")
    for axis, r in enumerate(repeats):
        if r > 1:
            data_axis = TO_NCHW[axis] if x.nhwc else axis
            x = imp.emit("concatenate", [x] * r, {"axis": data_axis}, nhwc=x.nhwc)
    return [x]


@converter("Range")
def _range(imp: Importer, node: Any, attrs: dict) -> list:
    """``Range(s, T, 1)`` up to a run-time length ``T`` (causal masks, position ids)."""
    start, limit, delta = (imp.known(n) for n in node.input[:3])
    if start is not None and delta is not None and limit is not None and \
            np.asarray(limit).dtype == object and np.ndim(limit) == 0 and \
            is_concrete(_item(start)) and _item(delta) == 1 and _item(start) >= 0:
        out = positions(imp, np.asarray(limit).item())
        if out is not None:
            s = int(_item(start))
            if s:
                out = imp.emit("slice", [out], {"start": (s,), "shape": (-1,)})
            dtype = np.asarray(start).dtype
            if dtype != np.int64:
                out = imp.emit("cast", [out], {"dtype": dtype.name})
            return [out]
    return _sized_at_run_time(imp, node, attrs)


def _item(value: Any) -> Any:
    item = np.asarray(value).reshape(-1)[0] if np.size(value) == 1 else None
    return int(item) if isinstance(item, (np.integer, int)) or (
        isinstance(item, (np.floating, float)) and float(item).is_integer()) else item


@converter("ConstantOfShape")
def _sized_at_run_time(imp: Importer, node: Any, attrs: dict) -> list:
    what = {"Range": "start, limit and delta", "ConstantOfShape": "the shape"}[node.op_type]
    shown = [imp.known(n) for n in node.input]
    shown = ["run-time tensor" if v is None else np.asarray(v).tolist() for v in shown]
    raise _fail(imp, f"its output size depends on {what} ({shown}), which are known only at "
                     f"run time; deferc needs output sizes it can name at import (Range: a start "
                     f">= 0 and delta 1 up to a length some input carries)")
