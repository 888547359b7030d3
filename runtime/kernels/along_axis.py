"""Launching a kernel that works along one axis (``softmax``, ``log_softmax``): the operand is
viewed as ``(outer, length, inner)``, so the kernels loop over slabs with ``inner`` contiguous,
and the threaded variant is used for big outputs with several slabs."""

from collections.abc import Callable

import numpy as np

from .flags import PARALLEL_MIN_ELEMENTS


def run_along_axis(x: np.ndarray, out: np.ndarray, axis: int, serial: Callable,
                   parallel: Callable) -> None:
    """``serial``/``parallel(x3, out3)`` over the ``(outer, length, inner)`` views of
    ``x`` and ``out`` around ``axis``."""
    if out.size == 0:
        return
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    shape3 = (outer, x.shape[axis], inner)
    big = out.size >= PARALLEL_MIN_ELEMENTS and outer > 1
    (parallel if big else serial)(np.ascontiguousarray(x).reshape(shape3), out.reshape(shape3))


def axis_scalars(attrs: dict, input_shapes: list, out_shape: tuple) -> tuple:
    """The kernel's one scalar: attr ``axis`` (default -1) as a non-negative axis."""
    return (attrs.get("axis", -1) % len(out_shape),)
