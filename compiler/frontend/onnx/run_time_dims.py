"""Values built from sizes known only at run time: positions ``0..T-1``, the tensor carrying
a size, targets with several run-time dims.

ONNX graphs exported with dynamic lengths compute these from ``Shape(x)`` (``Range`` over a
length, a ``Slice`` up to it: ``clamped_slice`` reads the length off its carrier, a ``Reshape``
to ``(N, T, C)``). Our IR has no ``range`` op, so
the importer finds a run-time tensor that carries the symbolic dim and derives the value from
it: positions are row sums of the ``causal_mask`` triangle of that axis (``sum_j [j <= i]`` is
``i + 1``), a few small ops whose cost is ``T**2`` booleans, once per call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...symbolic import definitely_equal, is_concrete
from .graph import Importer, Tensor


def carrier(imp: Importer, dim: Any) -> tuple[Tensor, int] | None:
    """A run-time tensor (ONNX layout) and the axis whose size is ``dim``, or ``None``."""
    for value in list(imp.values.values()):
        if not isinstance(value, Tensor) or value.onnx_shape is None:
            continue
        for axis, d in enumerate(value.onnx_shape):
            if not is_concrete(d) and definitely_equal(d, dim) is True:
                return imp.relayout(value, False), axis
    return None


def carrier_of_shape(imp: Importer, dims: tuple, prefix: bool = False) -> Tensor | None:
    """A run-time tensor (ONNX layout) whose shape is ``dims`` (``prefix``: starts with them),
    or ``None``."""
    for value in list(imp.values.values()):
        if not isinstance(value, Tensor) or value.onnx_shape is None:
            continue
        shape = value.onnx_shape
        if (len(shape) == len(dims) or prefix and len(shape) > len(dims)) and all(
                definitely_equal(a, b) is True for a, b in zip(shape, dims)):
            return imp.relayout(value, False)
    return None


def _length_row(imp: Importer, dim: Any) -> Tensor | None:
    """A small ``(1, dim)`` tensor: ``dim``'s carrier cut to one element on every other axis."""
    found = carrier(imp, dim)
    if found is None:
        return None
    x, axis = found
    rank = len(x.onnx_shape)
    start = (0,) * rank
    size = tuple(-1 if a == axis else 1 for a in range(rank))
    x = imp.emit("slice", [x], {"start": start, "shape": size})
    return imp.emit("reshape_dims", [x], {"shape": (1, -1)})


def positions(imp: Importer, dim: Any) -> Tensor | None:
    """int64 ``[0, 1, ..., dim-1]`` for a run-time ``dim``, or ``None`` when no tensor in the
    graph carries it."""
    row = _length_row(imp, dim)
    if row is None:
        return None
    triangle = imp.emit("causal_mask", [row, row])  # [i, j] = j <= i
    counts = imp.emit("sum", [triangle], {"axis": (1,), "keepdims": False})  # row i: i + 1
    one = imp.constant(np.asarray(1, dtype=np.int64))
    return imp.emit("subtract", [counts, one])
