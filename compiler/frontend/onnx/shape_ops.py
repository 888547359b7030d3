"""ONNX's shape and data-movement ops: Flatten, Reshape, Concat, Transpose, (Un)Squeeze, Shape,
Gather, Slice, Split, Pad, Expand, Softmax and the reductions.

Operands that steer the shape (Reshape's shape, Slice's starts, axes given as inputs since opset
13/18) must be known at import; they may hold symbolic dims (``Shape(x)`` of a dynamic batch), in
which case the one unknown entry of a target shape becomes ``-1``. An op over the channel axis of
a channels-last value keeps it channels-last with the axis remapped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ops.clamped_slice import BEYOND, slice_range
from ...symbolic import Dim, definitely_equal, is_concrete
from .converters import _broadcast, _fail, _input, _same_layout, converter
from .graph import TO_NCHW, TO_NHWC, Importer, Tensor
from .run_time_dims import carrier, carrier_of_shape


def _norm_axis(imp: Importer, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise _fail(imp, f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def _axes(imp: Importer, node: Any, attrs: dict, input_index: int, since: int) -> list | None:
    """Axes from the attribute (before opset ``since``) or from an input."""
    if imp.opset < since:
        axes = attrs.get("axes")
        return None if axes is None else [int(a) for a in axes]
    name = _input(imp, node, input_index)
    return imp.ints(name, "axes") if name else None


def _dim(value: Any) -> Any:
    return value if isinstance(value, Dim) else int(value)


@converter("Flatten")
def _flatten(imp: Importer, node: Any, attrs: dict) -> list:
    shape = imp.shape(node.input[0])
    rank = len(shape)
    axis = _norm_axis(imp, int(attrs.get("axis", 1)), rank + 1) if rank else 0
    value = imp.values[node.input[0]]
    if (axis == 1 and isinstance(value, Tensor) and value.nhwc and shape[2] == 1
            and shape[3] == 1):
        return [imp.emit("flatten", [value])]  # (N, 1, 1, C): same order either way
    x = imp.tensor(node.input[0])
    if axis == 1:
        return [imp.emit("flatten", [x])]
    return [imp.emit("reshape_array", [x], {"shape": _target(
        imp, (_prod(shape[:axis]), _prod(shape[axis:])))})]


def _prod(dims: tuple) -> Any:
    out: Any = 1
    for d in dims:
        out = out * d
    return out


def _target(imp: Importer, dims: tuple) -> tuple:
    """A reshape target of ints: the one entry that is not known at import becomes -1."""
    unknown = [i for i, d in enumerate(dims) if not is_concrete(d)]
    out = [int(d) if is_concrete(d) else -1 for d in dims]
    if len(unknown) > 1 or (unknown and -1 in [int(d) for d in dims if is_concrete(d)]):
        raise _fail(imp, f"reshape target {tuple(str(d) for d in dims)} has more than one size "
                         f"known only at run time; deferc needs all but one known at import")
    return tuple(out)


@converter("Reshape")
def _reshape(imp: Importer, node: Any, attrs: dict) -> list:
    if imp.opset < 5:
        raw = list(attrs["shape"])
    else:
        raw = list(np.asarray(imp.require_known(node.input[1], "shape")).reshape(-1))
    shape = imp.shape(node.input[0])
    if int(attrs.get("allowzero", 0)) and any(is_concrete(d) and int(d) == 0 for d in raw):
        raise _fail(imp, "allowzero=1 with a 0 in the shape (an empty tensor) is not supported")
    target, unknown = [], []
    for i, d in enumerate(raw):
        d = _dim(d)
        if isinstance(d, int):
            target.append(d)
        elif shape is not None and i < len(shape) and definitely_equal(d, shape[i]) is True:
            target.append(0)  # the input's own run-time size on this axis: copied
        else:
            unknown.append(d)
            target.append(-1)
    x = imp.tensor(node.input[0])
    if target.count(-1) > 1:
        return [_unfold_leading(imp, x, [_dim(d) for d in raw], target)]
    return [imp.emit("reshape_dims", [x], {"shape": tuple(target)})]


def _unfold_leading(imp: Importer, x: Tensor, dims: list, target: list) -> Tensor:
    """A reshape to ``(A, B, c...)`` with two run-time sizes ``A, B`` in front (TimeDistributed's
    ``(N*T, c) -> (N, T, c)``): ``(-1, c...)``, then ``unfold_time`` against a run-time tensor
    that starts with ``(A, B)``."""
    ref = None
    if len(dims) >= 2 and target[:2] == [-1, -1] and -1 not in target[2:]:
        ref = carrier_of_shape(imp, tuple(dims[:2]), prefix=True)
    if ref is None:
        raise _fail(imp, f"reshape target {tuple(str(d) for d in dims)} has more than one size "
                         f"that is neither known at import nor the input's size on that axis "
                         f"(supported: two leading run-time sizes that another tensor starts "
                         f"with)")
    x = imp.emit("reshape_dims", [x], {"shape": (-1, *target[2:])})
    return imp.emit("unfold_time", [x, ref])


@converter("Concat")
def _concat(imp: Importer, node: Any, attrs: dict) -> list:
    names = [n for n in node.input if n]
    rank = imp.rank(names[0])
    axis = _norm_axis(imp, int(attrs.get("axis", 1)), rank)
    operands, nhwc = _same_layout(imp, names)
    dtypes = {t.type.dtype for t in operands}
    if len(dtypes) > 1:
        operands = [t if t.type.dtype == imp.dtype else
                    imp.emit("cast", [t], {"dtype": imp.dtype.name}, nhwc=t.nhwc)
                    for t in operands]
    data_axis = TO_NCHW[axis] if nhwc and rank == 4 else axis
    return [imp.emit("concatenate", operands, {"axis": data_axis}, nhwc=nhwc and rank == 4)]


@converter("Transpose")
def _transpose(imp: Importer, node: Any, attrs: dict) -> list:
    value = imp.tensor(node.input[0], None)
    rank = len(value.onnx_shape)
    perm = tuple(int(p) for p in attrs.get("perm", range(rank)[::-1]))
    if sorted(perm) != list(range(rank)):
        raise _fail(imp, f"perm {perm} is not a permutation of {rank} axes")
    if perm == tuple(range(rank)):
        return [value]
    if value.nhwc:  # the held data is X transposed by TO_NHWC: compose the two
        perm = tuple(TO_NCHW[p] for p in perm)
        if perm == tuple(range(4)):  # exactly the layout change: the held data, relabelled
            return [Tensor(value.node, value.type, nhwc=False)]
    return [imp.emit("transpose", [value], {"axes": perm})]


@converter("Squeeze")
def _squeeze(imp: Importer, node: Any, attrs: dict) -> list:
    axes = _axes(imp, node, attrs, 1, 13)
    x = imp.tensor(node.input[0])
    rank = len(x.onnx_shape)
    axis = None if not axes else tuple(sorted(_norm_axis(imp, a, rank) for a in axes))
    return [imp.emit("squeeze", [x], {"axis": axis})]


@converter("Unsqueeze")
def _unsqueeze(imp: Importer, node: Any, attrs: dict) -> list:
    axes = _axes(imp, node, attrs, 1, 13)
    if not axes:
        raise _fail(imp, "Unsqueeze needs axes")
    x = imp.tensor(node.input[0])
    out_rank = len(x.onnx_shape) + len(axes)
    for a in sorted(_norm_axis(imp, a, out_rank) for a in axes):
        x = imp.emit("expand_dims", [x], {"axis": a})
    return [x]


@converter("Shape")
def _shape(imp: Importer, node: Any, attrs: dict) -> list:
    shape = imp.shape(node.input[0])
    if shape is None or any(d is None for d in shape):
        raise _fail(imp, f"the shape of '{node.input[0]}' is not known at import")
    start, end = int(attrs.get("start", 0)), attrs.get("end")
    dims = list(shape)[start:None if end is None else int(end)]
    return [_dims_array(dims)]


@converter("Size")
def _size(imp: Importer, node: Any, attrs: dict) -> list:
    return [_dims_array([_prod(tuple(imp.shape(node.input[0])))]).reshape(())]


def _dims_array(dims: list) -> np.ndarray:
    if all(is_concrete(d) for d in dims):
        return np.asarray([int(d) for d in dims], dtype=np.int64)
    out = np.empty(len(dims), dtype=object)
    out[:] = dims
    return out


@converter("Gather")
def _gather(imp: Importer, node: Any, attrs: dict) -> list:
    x = imp.tensor(node.input[0])
    rank = len(x.onnx_shape)
    axis = _norm_axis(imp, int(attrs.get("axis", 0)), rank)
    known = imp.known(node.input[1])
    if known is not None:
        idx = np.asarray(known).astype(np.int64)
        size = x.onnx_shape[axis]
        if is_concrete(size):
            if ((idx < -size) | (idx >= size)).any():
                raise _fail(imp, f"index out of range for axis {axis} of size {size}: {idx}")
            idx = idx % size
        elif (idx < 0).any():
            raise _fail(imp, "negative indices on an axis known only at run time")
        indices = imp.constant(idx)
    else:
        indices = imp.tensor(node.input[1])
    return [imp.emit("take", [x, indices], {"axis": axis})]


def _entries(imp: Importer, node: Any, i: int, what: str) -> list | None:
    """A Slice operand's entries: ints, or symbolic dims (a length known at run time)."""
    name = _input(imp, node, i)
    if not name:
        return None
    value = imp.require_known(name, what)
    return [_dim(v) for v in np.asarray(value).reshape(-1)]


@converter("Slice")
def _slice(imp: Importer, node: Any, attrs: dict) -> list:
    """Axes of known size slice (or gather, for steps) now; an axis whose size or end is only
    known at run time gets a ``clamped_slice``, which clamps its bounds as ONNX does."""
    if imp.opset < 10:
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes, steps = attrs.get("axes"), None
    else:
        starts = _entries(imp, node, 1, "starts")
        ends = _entries(imp, node, 2, "ends")
        axes = imp.ints(node.input[3], "axes") if _input(imp, node, 3) else None
        steps = imp.ints(node.input[4], "steps") if _input(imp, node, 4) else None
    value = imp.tensor(node.input[0], None)
    shape = value.onnx_shape
    rank = len(shape)
    axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise _fail(imp, "starts, ends, axes and steps must have one entry per sliced axis")
    begin, size = [0] * rank, [-1] * rank
    gathers = []  # (axis, indices): picks the slice op cannot express
    clamped = {}  # axis -> (start, end, step): bounds clamped at run time
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = _norm_axis(imp, a, rank)
        d = shape[a]
        if st == 0:
            raise _fail(imp, f"step 0 on axis {a}")
        if not is_concrete(s):
            raise _fail(imp, f"start {s} on axis {a} is known only at run time; deferc needs "
                             f"Slice starts known at import")
        if is_concrete(d) and is_concrete(e):
            first, n = slice_range(int(d), int(s), int(e), int(st))
            if st != 1:
                gathers.append((a, imp.constant(first + st * np.arange(n, dtype=np.int64))))
            else:
                begin[a], size[a] = first, n
        elif not (st == 1 and s == 0 and (is_concrete(e) and e >= BEYOND
                                          or definitely_equal(e, d) is True)):
            clamped[a] = (int(s), e, int(st))  # else the whole axis: nothing to do
    nhwc = value.nhwc
    if nhwc:
        begin = [begin[TO_NHWC[j]] for j in range(4)]
        size = [size[TO_NHWC[j]] for j in range(4)]
    x = value
    if any(b for b in begin) or any(n != -1 for n in size):
        x = imp.emit("slice", [x], {"start": tuple(begin), "shape": tuple(size)}, nhwc=nhwc)
    for a, idx in gathers:
        x = imp.emit("take", [x, idx], {"axis": TO_NCHW[a] if nhwc else a}, nhwc=nhwc)
    if clamped:
        x = _clamped(imp, x, clamped)
    return [x]


def _clamped(imp: Importer, x: Tensor, bounds: dict) -> Tensor:
    """``x`` sliced on the axes of ``bounds`` (ONNX axes) with run-time clamping; an end that is
    a run-time size is read off a tensor that carries it."""
    for a, (s, e, st) in bounds.items():
        like, like_axis = x, 0
        if not is_concrete(e):
            found = carrier(imp, e)
            if found is None:
                raise _fail(imp, f"end {e} on axis {a} is a size known only at run time that no "
                                 f"tensor in the graph carries; deferc needs it as an input's "
                                 f"dim")
            (like, like_axis), e = found, None
        attrs = {"axis": TO_NHWC.index(a) if x.nhwc else a, "start": s, "end": e, "step": st,
                 "like_axis": like_axis}
        x = imp.emit("clamped_slice", [x, like], attrs, nhwc=x.nhwc)
    return x


@converter("Split")
def _split(imp: Importer, node: Any, attrs: dict) -> list:
    value = imp.tensor(node.input[0], None)
    shape = value.onnx_shape
    rank = len(shape)
    axis = _norm_axis(imp, int(attrs.get("axis", 0)), rank)
    if imp.opset < 13:
        sizes = attrs.get("split")
        if sizes is None and imp.opset < 2:
            sizes = None
    else:
        sizes = imp.ints(node.input[1], "split") if _input(imp, node, 1) else None
    n = len(node.output)
    d = shape[axis]
    if sizes is None:
        if not is_concrete(d):
            raise _fail(imp, f"splitting axis {axis} of run-time size {d} needs explicit sizes")
        parts = int(attrs.get("num_outputs", n))
        chunk = -(-int(d) // parts)
        sizes = [min(chunk, int(d) - i * chunk) for i in range(parts)]
    sizes = [int(s) for s in sizes]
    if len(sizes) != n:
        raise _fail(imp, f"{len(sizes)} split sizes for {n} outputs")
    data_axis = TO_NCHW[axis] if value.nhwc else axis
    outs, offset = [], 0
    for s in sizes:
        begin = [0] * rank
        size = [-1] * rank
        begin[data_axis], size[data_axis] = offset, s
        outs.append(imp.emit("slice", [value], {"start": tuple(begin), "shape": tuple(size)},
                             nhwc=value.nhwc))
        offset += s
    return outs


@converter("Pad")
def _pad(imp: Importer, node: Any, attrs: dict) -> list:
    mode = attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise _fail(imp, f"attribute mode: unknown Pad mode {mode!r} (expected constant, "
                         f"reflect, edge or wrap)")
    if imp.opset < 11:
        pads, value = list(attrs.get("pads", attrs.get("paddings", []))), attrs.get("value", 0.0)
        axes = None
    else:
        pads = imp.ints(node.input[1], "pads")
        value = (float(np.asarray(imp.require_known(node.input[2], "constant_value")))
                 if _input(imp, node, 2) else 0.0)
        axes = imp.ints(node.input[3], "axes") if _input(imp, node, 3) else None
    x = imp.tensor(node.input[0], None)
    rank = len(x.onnx_shape)
    axes = list(range(rank)) if axes is None else [_norm_axis(imp, a, rank) for a in axes]
    if len(pads) != 2 * len(axes) or any(p < 0 for p in pads):
        raise _fail(imp, f"pads {pads} must be {2 * len(axes)} non-negative ints (negative "
                         f"pads crop; not supported)")
    widths = [(0, 0)] * rank
    for i, a in enumerate(axes):
        widths[a] = (int(pads[i]), int(pads[i + len(axes)]))
    if x.nhwc:
        widths = [widths[TO_NHWC[j]] for j in range(4)]
    if mode != "constant":
        return [_pad_by_index(imp, x, widths, mode)]
    return [imp.emit("pad", [x], {"pad_width": tuple(widths), "constant_values": float(value)},
                     nhwc=x.nhwc)]


def _pad_by_index(imp: Importer, x: Tensor, widths: list, mode: str) -> Tensor:
    """reflect/edge/wrap padding: a gather along each padded axis with the indices NumPy's own
    ``np.pad`` gives an ``arange`` (so the modes agree with NumPy's, which ONNX follows)."""
    for axis, (lo, hi) in enumerate(widths):
        if not (lo or hi):
            continue
        n = x.type.shape[axis]
        if not is_concrete(n):
            raise _fail(imp, f"Pad mode {mode!r} on axis {axis} of run-time size {n}: deferc "
                             f"needs that size known at import")
        if mode == "reflect" and (lo >= n or hi >= n):
            raise _fail(imp, f"Pad mode 'reflect' on axis {axis}: pads ({lo}, {hi}) must be "
                             f"smaller than the axis size {n}")
        idx = np.pad(np.arange(int(n), dtype=np.int64), (lo, hi), mode=mode)
        x = imp.emit("take", [x, imp.constant(idx)], {"axis": axis}, nhwc=x.nhwc)
    return x


@converter("Expand")
def _expand(imp: Importer, node: Any, attrs: dict) -> list:
    known = np.asarray(imp.require_known(node.input[1], "shape")).reshape(-1)
    if known.dtype == object:
        return [_expand_like(imp, node, tuple(_dim(d) for d in known))]
    target = imp.ints(node.input[1], "shape")
    zeros = np.zeros(target, dtype=imp.dtype)
    imp.values[node.input[1] + "#zeros"] = zeros
    return [_broadcast(imp, "add", [node.input[0], node.input[1] + "#zeros"])]


def _expand_like(imp: Importer, node: Any, dims: tuple) -> Tensor:
    """Expand to a shape with run-time sizes: add the zeros of a tensor of that shape."""
    ref = carrier_of_shape(imp, dims)
    if ref is None:
        raise _fail(imp, f"the target shape {tuple(str(d) for d in dims)} holds sizes known "
                         f"only at run time, and no tensor in the graph has that shape")
    x = imp.tensor(node.input[0])
    zeros = imp.emit("zeros_like", [ref])
    if zeros.type.dtype != x.type.dtype:
        zeros = imp.emit("cast", [zeros], {"dtype": x.type.dtype.name})
    return imp.emit("add", [x, zeros])


@converter("Softmax", "LogSoftmax")
def _softmax(imp: Importer, node: Any, attrs: dict) -> list:
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    value = imp.tensor(node.input[0], None)
    shape = value.onnx_shape
    rank = len(shape)
    axis = _norm_axis(imp, int(attrs.get("axis", 1 if imp.opset < 13 else -1)), rank)
    if imp.opset < 13 and axis != rank - 1:  # coerced to 2-D: one softmax over axes [axis:]
        x = imp.relayout(value, False)
        flat = imp.emit("reshape_array", [x], {"shape": _target(
            imp, (_prod(shape[:axis]), _prod(shape[axis:])))})
        y = imp.emit(op, [flat], {"axis": -1})
        return [imp.emit("reshape_array", [y], {"shape": _target(imp, tuple(shape))})]
    data_axis = TO_NCHW[axis] if value.nhwc else axis
    return [imp.emit(op, [value], {"axis": data_axis}, nhwc=value.nhwc)]


_REDUCE = {"ReduceMean": ("mean", 18), "ReduceSum": ("sum", 13), "ReduceMax": ("max", 18),
           "ReduceMin": ("min", 18), "ReduceL2": ("sum", 18), "ReduceSumSquare": ("sum", 18),
           "ReduceL1": ("sum", 18), "ReduceProd": ("prod", 18), "ReduceLogSumExp": ("max", 18)}


@converter(*_REDUCE)
def _reduce(imp: Importer, node: Any, attrs: dict) -> list:
    op, since = _REDUCE[node.op_type]
    value = imp.tensor(node.input[0], None)
    rank = len(value.onnx_shape)
    axes = _axes(imp, node, attrs, 1, since)
    keepdims = bool(attrs.get("keepdims", 1))
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return [value]
        axes = list(range(rank))
    axes = sorted(_norm_axis(imp, a, rank) for a in axes)
    if value.nhwc and not keepdims:
        kept = [TO_NHWC[j] for j in range(4) if TO_NHWC[j] not in axes]
        if kept != sorted(kept):
            value = imp.relayout(value, False)
    data_axes = tuple(sorted(TO_NCHW[a] for a in axes)) if value.nhwc else tuple(axes)
    x = value
    if node.op_type in ("ReduceL2", "ReduceSumSquare"):
        x = imp.emit("multiply", [x, x], nhwc=x.nhwc)
    elif node.op_type == "ReduceL1":
        x = imp.emit("abs", [x], nhwc=x.nhwc)
    y = imp.emit(op, [x], {"axis": data_axes, "keepdims": keepdims},
                 nhwc=value.nhwc and keepdims)
    if node.op_type == "ReduceL2":
        y = imp.emit("sqrt", [y], nhwc=y.nhwc)
    elif node.op_type == "ReduceLogSumExp":  # max + log(sum(exp(x - max))), stable
        peak = imp.emit("max", [x], {"axis": data_axes, "keepdims": True}, nhwc=x.nhwc)
        shifted = imp.emit("exp", [imp.emit("subtract", [x, peak], nhwc=x.nhwc)], nhwc=x.nhwc)
        total = imp.emit("sum", [shifted], {"axis": data_axes, "keepdims": keepdims},
                         nhwc=y.nhwc)
        y = imp.emit("add", [imp.emit("log", [total], nhwc=y.nhwc), y], nhwc=y.nhwc)
    return [y]
