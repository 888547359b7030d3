"""Constant folding at import: every node whose inputs are all known is computed now.

Numeric values go through ``onnx.reference`` (the ONNX reference implementation, so folding
agrees with the spec at the model's opset). Shapes that hold symbolic dims (``Shape(x)`` with a
dynamic batch) are object arrays of dims; the shape-arithmetic ops on them (Gather, Concat,
(Un)Squeeze, Slice, Cast, Add/Sub/Mul/Div, Reshape, Identity) are folded here, so a
``Shape -> Gather -> Concat -> Reshape`` chain becomes a reshape whose one run-time size is -1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import CompilerError
from .reader import checked_count

#: ops whose output size is set by an input's *values*: checked before anything is allocated
_SIZED_BY_VALUE = {"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample"}


def fold(imp: Any, node: Any, attrs: dict) -> list | None:
    """The node's outputs if all its inputs are known at import, else ``None``."""
    names = list(node.input)
    if any(n and imp.known(n) is None for n in names):
        return None
    values = [imp.known(n) if n else None for n in names]
    if any(v is not None and np.asarray(v).dtype == object for v in values):
        fn = _SYMBOLIC.get(node.op_type)
        if fn is None:
            return None
        try:
            return fn(imp, node, attrs, values)
        except (TypeError, ValueError):
            # a rule that needs a concrete number met a run-time size (e.g. a Slice end of T):
            # not foldable at import, so the node becomes an ordinary run-time op
            return None
    if node.op_type in _SIZED_BY_VALUE:
        _check_size(imp, node, values)
    from onnx.reference import ReferenceEvaluator

    feeds = {n: np.asarray(v) for n, v in zip(names, values) if n}
    try:
        outs = ReferenceEvaluator(node, opsets={"": imp.opset}).run(None, feeds)
    except Exception as e:
        raise CompilerError(f"ONNX node '{imp.origin.name}' ({node.op_type}): folding its "
                            f"constant inputs failed: {type(e).__name__}: {e}") from None
    return [np.asarray(o) for o in outs]


def _check_size(imp: Any, node: Any, values: list) -> None:
    what = f"ONNX node '{imp.origin.name}' ({node.op_type})"
    if node.op_type in ("ConstantOfShape", "Expand") and len(values) >= 1:
        shape = values[0] if node.op_type == "ConstantOfShape" else values[1]
        checked_count(np.asarray(shape).reshape(-1), what)
    elif node.op_type == "Tile" and len(values) >= 2:
        checked_count(list(np.shape(values[0])) + list(np.asarray(values[1]).reshape(-1)), what)
    elif node.op_type == "Range" and len(values) == 3:
        start, limit, delta = (float(np.asarray(v)) for v in values)
        if delta == 0 or not np.isfinite([start, limit, delta]).all():
            raise CompilerError(f"{what}: delta must be a non-zero finite number")
        checked_count([max(int(np.ceil((limit - start) / delta)), 0)], what)


def _axes_of(imp: Any, node: Any, attrs: dict, values: list, since: int) -> list:
    if imp.opset < since:
        return [int(a) for a in attrs.get("axes", [])]
    return [int(a) for a in np.asarray(values[1]).reshape(-1)] if len(values) > 1 and \
        values[1] is not None else []


def _obj(array: Any) -> np.ndarray:
    out = np.empty(np.shape(array), dtype=object)
    out[...] = array
    return _simplify(out)


def _simplify(out: np.ndarray) -> np.ndarray:
    """Back to int64 when every entry turned out concrete."""
    flat = list(out.reshape(-1))
    if all(isinstance(v, (int, np.integer)) for v in flat):
        return np.asarray(out.astype(np.int64))
    return out


def _gather(imp, node, attrs, values):
    data, idx = values[0], np.asarray(values[1]).astype(np.int64)
    return [_obj(np.take(data, idx, axis=int(attrs.get("axis", 0))))]


def _concat(imp, node, attrs, values):
    parts = [np.asarray(v, dtype=object).reshape(-1) if np.ndim(v) else
             np.asarray([v], dtype=object) for v in values if v is not None]
    return [_obj(np.concatenate(parts, axis=int(attrs.get("axis", 0))))]


def _unsqueeze(imp, node, attrs, values):
    out = np.asarray(values[0], dtype=object)
    axes = _axes_of(imp, node, attrs, values, 13)
    for a in sorted(a % (out.ndim + len(axes)) for a in axes):
        out = np.expand_dims(out, a)
    return [_obj(out)]


def _squeeze(imp, node, attrs, values):
    axes = _axes_of(imp, node, attrs, values, 13)
    out = np.asarray(values[0], dtype=object)
    return [_obj(np.squeeze(out, axis=tuple(axes) if axes else None))]


def _slice(imp, node, attrs, values):
    data = np.asarray(values[0], dtype=object)
    if imp.opset < 10:
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = (np.asarray(v).reshape(-1) for v in values[1:3])
        axes = None if len(values) < 4 or values[3] is None else np.asarray(values[3]).reshape(-1)
        steps = None if len(values) < 5 or values[4] is None else np.asarray(values[4]).reshape(-1)
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[int(a)] = slice(int(s), int(min(e, 2 ** 62)) if e > 0 else int(e), int(st))
    return [_obj(data[tuple(index)])]


def _identity(imp, node, attrs, values):
    return [values[0]]


def _arith(fn):
    def run(imp, node, attrs, values):
        a, b = (np.asarray(v, dtype=object) for v in values[:2])
        return [_obj(fn(a, b))]
    return run


def _reshape(imp, node, attrs, values):
    data = np.asarray(values[0], dtype=object)
    target = [int(d) for d in np.asarray(values[1]).reshape(-1)]
    target = [data.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return [_obj(data.reshape(target))]


_SYMBOLIC = {
    "Gather": _gather, "Concat": _concat, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze,
    "Slice": _slice, "Cast": _identity, "Identity": _identity, "Reshape": _reshape,
    "Add": _arith(lambda a, b: a + b), "Sub": _arith(lambda a, b: a - b),
    "Mul": _arith(lambda a, b: a * b), "Div": _arith(lambda a, b: a // b),
}
