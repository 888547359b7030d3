"""ONNX Resize (opsets 10-19) and Upsample (7-9): nearest and (bi)linear, as gathers.

Interpolation is separable, so each resized axis is one step: ``nearest`` is a ``take`` with the
source index of every output position; ``linear`` is two ``take``s (the neighbours below and
above) blended by constant weights. Indices and weights are computed here, at import, from the
coordinate transformation and nearest mode of the node, so the resized axes need sizes known at
import (other axes, such as a dynamic batch, stay symbolic).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...symbolic import definitely_equal, is_concrete
from .converters import _ew, _fail, _input, converter
from .graph import TO_NHWC, Importer

_TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
               "tf_half_pixel_for_nearest", "half_pixel_symmetric")
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _str(attrs: dict, key: str, default: str) -> str:
    value = attrs.get(key, default)
    return value.decode() if isinstance(value, bytes) else value


def source_coords(out_size: int, in_size: int, scale: float, transform: str) -> np.ndarray:
    """Where each output position samples the input, in input coordinates (the ONNX spec)."""
    i = np.arange(out_size, dtype=np.float64)
    if transform == "half_pixel":
        return (i + 0.5) / scale - 0.5
    if transform == "pytorch_half_pixel":
        return (i + 0.5) / scale - 0.5 if out_size > 1 else np.zeros(out_size)
    if transform == "align_corners":
        return i * (in_size - 1) / (out_size - 1) if out_size > 1 else np.zeros(out_size)
    if transform == "asymmetric":
        return i / scale
    if transform == "half_pixel_symmetric":  # opset 19: centred when out != in * scale
        offset = in_size / 2 * (1 - out_size / (in_size * scale))
        return offset + (i + 0.5) / scale - 0.5
    return (i + 0.5) / scale  # tf_half_pixel_for_nearest


def nearest_index(coords: np.ndarray, in_size: int, mode: str) -> np.ndarray:
    if mode == "floor":
        idx = np.floor(coords)
    elif mode == "ceil":
        idx = np.ceil(coords)
    elif mode == "round_prefer_ceil":
        idx = np.floor(coords + 0.5)
    else:  # round_prefer_floor: halves go down
        idx = np.ceil(coords - 0.5)
    return np.clip(idx, 0, in_size - 1).astype(np.int64)


def _plan(imp: Importer, node: Any, attrs: dict, shape: tuple) -> tuple[list, list]:
    """Per-axis ``(out_size, scale)`` from scales or sizes (inputs or, before opset 9, the
    attribute), checked."""
    rank = len(shape)
    scales = sizes = None
    if node.op_type == "Upsample" and imp.opset < 9:
        scales = [float(v) for v in attrs.get("scales", ())]
    elif node.op_type == "Upsample" or imp.opset < 11:
        scales = [float(v) for v in np.asarray(imp.require_known(node.input[1], "scales"))
                  .reshape(-1)]
    else:
        if _input(imp, node, 2) and np.size(imp.require_known(node.input[2], "scales")):
            scales = [float(v) for v in np.asarray(imp.known(node.input[2])).reshape(-1)]
        elif _input(imp, node, 3):  # may hold dims of a dynamic batch (Shape(x)[:2])
            sizes = list(np.asarray(imp.require_known(node.input[3], "sizes")).reshape(-1))
        if scales is None and sizes is None:
            raise _fail(imp, "one of scales and sizes must be given")
    axes = list(range(rank))
    if "axes" in attrs:
        axes = [int(a) % rank for a in attrs["axes"]]
    given = scales if scales is not None else sizes
    if len(given) != len(axes):
        raise _fail(imp, f"{'scales' if scales is not None else 'sizes'} "
                         f"{[str(d) for d in given]} must hold one entry per axis ({len(axes)})")
    out, factor = list(shape), [1.0] * rank
    for a, v in zip(axes, given):
        n = shape[a]
        if scales is not None:
            if not v > 0 or not np.isfinite(v):
                raise _fail(imp, f"scales {scales}: every scale must be a positive number")
            if v == 1.0:
                continue
            if not is_concrete(n):
                raise _fail(imp, f"resizing axis {a} of run-time size {n}: deferc needs its "
                                 f"size known at import")
            out[a], factor[a] = int(np.floor(int(n) * v)), v
        else:
            if definitely_equal(n, v):
                continue
            if not is_concrete(n) or not is_concrete(v):
                raise _fail(imp, f"resizing axis {a} of run-time size {n}: deferc needs its "
                                 f"size known at import")
            if int(v) < 1:
                raise _fail(imp, f"sizes {[str(d) for d in sizes]}: every size must be "
                                 f"positive")
            out[a], factor[a] = int(v), int(v) / int(n)
        if out[a] < 1:
            raise _fail(imp, f"axis {a} ({n}) scaled by {v} is empty")
        if out[a] > 1 << 24:
            raise _fail(imp, f"axis {a} resized to {out[a]} is larger than deferc allows")
    return out, factor


@converter("Resize", "Upsample")
def _resize(imp: Importer, node: Any, attrs: dict) -> list:
    mode = _str(attrs, "mode", "nearest")
    mode = "linear" if mode == "bilinear" else mode
    if mode not in ("nearest", "linear"):
        raise _fail(imp, f"attribute mode: {mode!r} is not supported (nearest, linear)")
    legacy = node.op_type == "Upsample" or imp.opset < 11
    transform = "asymmetric" if legacy else _str(attrs, "coordinate_transformation_mode",
                                                 "half_pixel")
    if transform not in _TRANSFORMS:
        raise _fail(imp, f"attribute coordinate_transformation_mode: {transform!r} is not "
                         f"supported ({', '.join(_TRANSFORMS)})")
    # before opset 11 (as ONNX Runtime reads it): truncate when enlarging, ceil when shrinking
    nearest = "simple" if legacy else _str(attrs, "nearest_mode", "round_prefer_floor")
    if nearest not in _NEAREST + ("simple",):
        raise _fail(imp, f"attribute nearest_mode: {nearest!r} is not supported")
    if int(attrs.get("antialias", 0)) and mode == "linear":
        raise _fail(imp, "attribute antialias=1 is not supported")
    policy = _str(attrs, "keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        raise _fail(imp, f"attribute keep_aspect_ratio_policy: {policy!r} is not supported "
                         f"(stretch)")
    x = imp.tensor(node.input[0], None)
    shape = x.onnx_shape
    out, factor = _plan(imp, node, attrs, shape)
    for a in range(len(shape)):
        if factor[a] == 1.0 and out[a] == shape[a]:
            continue
        n = int(shape[a])
        data_axis = TO_NHWC.index(a) if x.nhwc else a
        coords = source_coords(out[a], n, factor[a], transform)
        if mode == "nearest":
            rounding = nearest if nearest != "simple" else "floor" if factor[a] >= 1 else "ceil"
            x = imp.emit("take", [x, imp.constant(nearest_index(coords, n, rounding))],
                         {"axis": data_axis}, nhwc=x.nhwc)
            continue
        low = np.floor(coords)
        frac = coords - low
        i0 = np.clip(low, 0, n - 1).astype(np.int64)
        i1 = np.clip(low + 1, 0, n - 1).astype(np.int64)
        trail = (1,) * (x.type.rank - 1 - data_axis)
        w1 = imp.constant(frac.reshape((-1,) + trail).astype(imp.dtype))
        w0 = imp.constant((1.0 - frac).reshape((-1,) + trail).astype(imp.dtype))
        below = imp.emit("take", [x, imp.constant(i0)], {"axis": data_axis}, nhwc=x.nhwc)
        above = imp.emit("take", [x, imp.constant(i1)], {"axis": data_axis}, nhwc=x.nhwc)
        x = _ew(imp, "add", _ew(imp, "multiply", below, w0), _ew(imp, "multiply", above, w1))
    return [x]
