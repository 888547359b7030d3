"""Pooling and zero padding over NHWC images, with Keras/TF semantics.

``strides`` default to ``pool_size`` (Keras). ``same`` padding never lets a padded cell count:
max pooling ignores it and average pooling divides by the number of real cells, as TF does.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..symbolic import add
from ..types import TensorType
from .conv import pad_nhwc, pair, spatial_output, window_pads, window_taps
from .registry import INJECTIVE, REDUCTION, OpDef, register, require_rank

_LAYERS = {"max_pool2d": "MaxPooling2D", "avg_pool2d": "AveragePooling2D"}


def pool_geometry(attrs, layer: str) -> dict:
    """The attrs a sliding-window op understands, with Keras defaults filled in."""
    pool = pair(attrs.get("pool_size", (2, 2)), "pool_size", layer)
    strides = attrs.get("strides")
    strides = pool if strides is None else pair(strides, "strides", layer)
    return {"pool_size": pool, "strides": strides, "dilation": (1, 1),
            "padding": attrs.get("padding", "valid")}


def _pool_shape_rule(layer: str):
    def rule(inputs, params, attrs, unify) -> TensorType:
        x = inputs[0]
        require_rank(x, 4, layer, exact=True)
        if x.shape is None:
            return x.with_shape((None, None, None, None))
        geo = pool_geometry(attrs, layer)
        oh, ow = spatial_output(x, geo, layer, geo["pool_size"])
        return x.with_shape((x.shape[0], oh, ow, x.shape[3]))
    return rule


def _pool_reference(kind: str):
    layer = _LAYERS[kind]

    def reference(inputs, params, attrs) -> np.ndarray:
        x = inputs[0]
        geo = pool_geometry(attrs, layer)
        k, strides = geo["pool_size"], geo["strides"]
        out_hw = spatial_output(TensorType(x.shape, x.dtype), geo, layer, k)
        pads = window_pads(x.shape, out_hw, k, strides, (1, 1), geo["padding"])
        if kind == "max_pool2d":  # padded cells never win: -inf, or the int dtype's minimum
            low = np.iinfo(x.dtype).min if x.dtype.kind in "iu" else -np.inf
            xp = pad_nhwc(x, pads, low)
            taps = [v for _, _, v in window_taps(xp, k, strides, (1, 1), out_hw)]
            return np.max(np.stack(taps), axis=0).astype(x.dtype)
        xp = pad_nhwc(x.astype(np.float64), pads)
        ones = pad_nhwc(np.ones((1,) + x.shape[1:3] + (1,)), pads)
        total = sum(v for _, _, v in window_taps(xp, k, strides, (1, 1), out_hw))
        count = sum(v for _, _, v in window_taps(ones, k, strides, (1, 1), out_hw))
        with np.errstate(invalid="ignore", over="ignore"):
            return (total / count).astype(x.dtype)
    return reference


for _kind, _layer in _LAYERS.items():
    register(OpDef(
        name=_kind,
        shape_rule=_pool_shape_rule(_layer),
        reference=_pool_reference(_kind),
        kernel=_kind,
        traits=frozenset({REDUCTION}),
        natural_input_rank=4,
        doc=f"{_layer}: sliding-window {'max' if _kind == 'max_pool2d' else 'mean'} (NHWC).",
    ))


# -- global pooling ------------------------------------------------------------------------------
def _global_shape_rule(layer: str):
    def rule(inputs, params, attrs, unify) -> TensorType:
        x = inputs[0]
        require_rank(x, 4, layer, exact=True)
        channels = None if x.shape is None else x.shape[3]
        batch = None if x.shape is None else x.shape[0]
        if attrs.get("keepdims", False):
            return x.with_shape((batch, 1, 1, channels))
        return x.with_shape((batch, channels))
    return rule


def _global_reference(reduce):
    def reference(inputs, params, attrs) -> np.ndarray:
        x = inputs[0]
        # ints stay ints for max (exact); the mean accumulates in float64
        wide = x if reduce is np.max and x.dtype.kind in "iu" else x.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            y = reduce(wide, axis=(1, 2), keepdims=attrs.get("keepdims", False))
        return y.astype(x.dtype)
    return reference


for _kind, _layer, _reduce, _what in (
        ("global_avg_pool2d", "GlobalAveragePooling2D", np.mean, "Mean"),
        ("global_max_pool2d", "GlobalMaxPooling2D", np.max,
         "Max (NaN propagates like np.max)")):
    register(OpDef(
        name=_kind,
        shape_rule=_global_shape_rule(_layer),
        reference=_global_reference(_reduce),
        kernel=_kind,
        traits=frozenset({REDUCTION}),
        natural_input_rank=4,
        doc=f"{_what} over H and W (NHWC); keepdims keeps them as size 1.",
    ))


# -- zero padding --------------------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def zero_padding_amounts(attrs) -> tuple[tuple[int, int], tuple[int, int]]:
    """Keras' forms: ``p``, ``(ph, pw)`` or ``((top, bottom), (left, right))``."""
    value = pad = attrs.get("padding", ((1, 1), (1, 1)))
    if _is_int(pad):
        pad = ((pad, pad), (pad, pad))
    try:
        pad = tuple((p, p) if _is_int(p) else tuple(p) for p in pad)
        ok = len(pad) == 2 and all(len(p) == 2 and all(map(_is_int, p)) for p in pad)
    except TypeError:
        ok = False
    if not ok:
        raise ShapeError("ZeroPadding2D: padding must be an int, (ph, pw) or "
                         f"((top, bottom), (left, right)), received {value!r}")
    if any(v < 0 for p in pad for v in p):
        raise ShapeError(f"ZeroPadding2D: padding must be non-negative ints, received {value!r}")
    return (int(pad[0][0]), int(pad[0][1])), (int(pad[1][0]), int(pad[1][1]))


def zero_padding_shape_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    require_rank(x, 4, "ZeroPadding2D", exact=True)
    (top, bottom), (left, right) = zero_padding_amounts(attrs)
    if x.shape is None:
        return x.with_shape((None, None, None, None))
    n, h, w, c = x.shape
    h = None if h is None else add(h, top + bottom)
    w = None if w is None else add(w, left + right)
    return x.with_shape((n, h, w, c))


def zero_padding_reference(inputs, params, attrs) -> np.ndarray:
    return pad_nhwc(inputs[0], zero_padding_amounts(attrs))


register(OpDef(
    name="zero_padding2d",
    shape_rule=zero_padding_shape_rule,
    reference=zero_padding_reference,
    kernel="zero_padding2d",
    traits=frozenset({INJECTIVE}),
    natural_input_rank=4,
    doc="Pads H and W with zeros: ((top, bottom), (left, right)).",
))
