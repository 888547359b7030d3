"""Inference-time normalisation over the last axis (Keras ``axis=-1``).

``batch_norm`` uses the stored moving statistics; ``layer_norm`` normalises each row by its own
mean and (biased) variance. Both follow Keras: ``epsilon=1e-3``, ``center``/``scale`` flags.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import TensorType
from .registry import REDUCTION, OpDef, register, require_rank

DEFAULT_EPSILON = 1e-3  # Keras BatchNormalization and LayerNormalization


def _last_axis(inputs: Sequence[TensorType]):
    x = inputs[0]
    return None if x.shape is None or not x.shape else x.shape[-1]


def layer_norm_param_spec(inputs, attrs) -> dict:
    """``gamma`` (if ``scale``) and ``beta`` (if ``center``), one per channel of the last axis."""
    c = _last_axis(inputs)
    spec = {}
    if attrs.get("scale", True):
        spec["gamma"] = (c,)
    if attrs.get("center", True):
        spec["beta"] = (c,)
    return spec


def batch_norm_param_spec(inputs, attrs) -> dict:
    """Layer norm's affine parameters, then the moving statistics (Keras' weight order)."""
    c = _last_axis(inputs)
    return {**layer_norm_param_spec(inputs, attrs), "moving_mean": (c,), "moving_variance": (c,)}


def _norm_shape_rule(layer: str):
    def rule(inputs, params, attrs, unify) -> TensorType:
        x = inputs[0]
        require_rank(x, 1, layer)
        if x.shape is None:
            return x
        c = x.shape[-1]
        for name, t in params.items():
            c = unify.dims(t.shape[0], c, f"{layer}: input axis -1 (features, {name} has "
                                          f"{t.shape[0]})")
        return x.with_shape(tuple(unify.resolve(d) for d in x.shape))
    return rule


def _affine(y: np.ndarray, params) -> np.ndarray:
    if "gamma" in params:
        y = y * params["gamma"].astype(np.float64)
    if "beta" in params:
        y = y + params["beta"].astype(np.float64)
    return y


def batch_norm_reference(inputs, params, attrs) -> np.ndarray:
    x = inputs[0]
    eps = attrs.get("epsilon", DEFAULT_EPSILON)
    mean = params["moving_mean"].astype(np.float64)
    var = params["moving_variance"].astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        y = (x.astype(np.float64) - mean) / np.sqrt(var + eps)
        return _affine(y, params).astype(x.dtype)


def layer_norm_reference(inputs, params, attrs) -> np.ndarray:
    x = inputs[0]
    eps = attrs.get("epsilon", DEFAULT_EPSILON)
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        mean = x64.mean(axis=-1, keepdims=True)
        var = ((x64 - mean) ** 2).mean(axis=-1, keepdims=True)
        y = (x64 - mean) / np.sqrt(var + eps)
        return _affine(y, params).astype(x.dtype)


register(OpDef(
    name="batch_norm",
    shape_rule=_norm_shape_rule("BatchNormalization"),
    param_spec=batch_norm_param_spec,
    reference=batch_norm_reference,
    kernel="batch_norm",
    natural_input_rank=2,
    elementwise=True,
    doc="Inference batch norm over the last axis with moving mean/variance.",
))
register(OpDef(
    name="layer_norm",
    shape_rule=_norm_shape_rule("LayerNormalization"),
    param_spec=layer_norm_param_spec,
    reference=layer_norm_reference,
    kernel="layer_norm",
    traits=frozenset({REDUCTION}),
    natural_input_rank=2,
    doc="Layer norm over the last axis (biased variance, Keras epsilon 1e-3).",
))
