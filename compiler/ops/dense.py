"""``dense``: ``activation(x @ kernel + bias)`` over the last axis (Keras layout: kernel
``(in, out)``)."""

from __future__ import annotations

import numpy as np

from ..symbolic import format_shape
from .activations import LEAKY_RELU_DEFAULT_SLOPE, apply_activation
from .registry import FUSES_ACTIVATION, OUTPUT_FUSABLE, OpDef, register, require_rank


def dense_param_spec(inputs, attrs) -> dict:
    x = inputs[0]
    fan_in = None if x.shape is None or not x.shape else x.shape[-1]
    spec = {"kernel": (fan_in, attrs["units"])}
    if attrs.get("use_bias", True):
        spec["bias"] = (attrs["units"],)
    return spec


def dense_shape_rule(inputs, params, attrs, unify):
    x = inputs[0]
    require_rank(x, 2, "Dense")
    kernel = params["kernel"].shape
    if x.shape is None:
        return x.with_shape(None)
    unify.dims(kernel[0], x.shape[-1],
               f"input axis -1 (kernel is {format_shape(kernel)})")
    return x.with_shape(tuple(unify.resolve(d) for d in x.shape[:-1]) + (attrs["units"],))


def dense_reference(inputs, params, attrs):
    x = inputs[0]
    y = np.matmul(x, params["kernel"])
    if "bias" in params:
        y = y + params["bias"]
    return apply_activation(y.astype(x.dtype, copy=False), attrs.get("activation", "linear"),
                            attrs.get("alpha", LEAKY_RELU_DEFAULT_SLOPE))


register(OpDef(
    name="dense",
    shape_rule=dense_shape_rule,
    param_spec=dense_param_spec,
    reference=dense_reference,
    kernel="dense",
    natural_input_rank=2,
    traits=frozenset({OUTPUT_FUSABLE, FUSES_ACTIVATION}),
    doc="Fully connected layer with fused bias and activation.",
))
