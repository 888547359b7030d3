"""1-D sequence ops over ``(N, T, C)`` (Keras ``channels_last``): convolution, pooling, resizing.

``conv1d`` keeps Keras' kernel layout ``(k, in/groups, filters)`` and adds ``causal`` padding
(``dilation*(k-1)`` zeros on the left, so output ``t`` sees inputs ``<= t``). Lengths follow TF
exactly, symbolic ones included, so one plan serves every ``T``. The runtime runs ``conv1d`` and
the poolings on the 2-D kernels through ``(N, 1, T, C)`` views (no copy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError
from ..symbolic import DimLike, add, ceildiv, is_concrete, mul
from ..types import TensorType
from .activations import LEAKY_RELU_DEFAULT_SLOPE, apply_activation
from .conv import same_padding, window_output_size
from .registry import (
    FUSES_ACTIVATION,
    INJECTIVE,
    OUTPUT_FUSABLE,
    REDUCTION,
    OpDef,
    register,
    require_rank,
)

PADDINGS_1D = ("valid", "same", "causal")


def positive(value, what: str, layer: str) -> int:
    """A positive int (``3`` or ``(3,)``, as Keras accepts for 1-D layers)."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value <= 0:
        raise ShapeError(f"{layer}: {what} must be a positive int, received {value!r}")
    return int(value)


def non_negative_pair(value, what: str, layer: str) -> tuple[int, int]:
    """``p`` or ``(left, right)``: amounts of padding or cropping along the time axis."""
    items = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(items) != 2 or any(isinstance(v, (bool, np.bool_)) or not isinstance(
            v, (int, np.integer)) or v < 0 for v in items):
        raise ShapeError(f"{layer}: {what} must be an int >= 0 or a pair of them, received "
                         f"{value!r}")
    return int(items[0]), int(items[1])


def output_length(size: DimLike | None, k: int, stride: int, dilation: int, padding: str,
                  layer: str) -> DimLike | None:
    """The output length of a 1-D window over axis 1 (TF rules; ``causal`` is ``ceil(T/s)``)."""
    if padding not in PADDINGS_1D:
        raise ShapeError(f"{layer}: padding must be one of {PADDINGS_1D}, received {padding!r}")
    if padding != "causal":
        return window_output_size(size, k, stride, dilation, padding, layer, 1, "time")
    if size is None:
        return None
    out = ceildiv(size, stride)
    if is_concrete(out) and out <= 0:
        raise ShapeError(f"{layer}: input axis 1 (time) must hold at least 1 step, received "
                         f"{size}")
    return out


def time_pads(length: int, out: int, k: int, stride: int, dilation: int,
              padding: str) -> tuple[int, int]:
    """``(left, right)`` zeros a window op pads the time axis with (concrete sizes)."""
    if padding == "causal":
        return dilation * (k - 1), 0
    if padding == "same":
        return same_padding(length, out, k, stride, dilation)
    return 0, 0


def _rank3(x: TensorType, layer: str) -> None:
    require_rank(x, 3, f"{layer} (inputs (batch, steps, channels))", exact=True)


# -- conv1d --------------------------------------------------------------------------------------
def conv1d_geometry(attrs) -> tuple[int, int, int, str, int]:
    """``(k, stride, dilation, padding, groups)`` from a node's attrs."""
    return (positive(attrs["kernel_size"], "kernel_size", "Conv1D"),
            positive(attrs.get("strides", 1), "strides", "Conv1D"),
            positive(attrs.get("dilation", 1), "dilation_rate", "Conv1D"),
            attrs.get("padding", "valid"), positive(attrs.get("groups", 1), "groups", "Conv1D"))


def conv1d_param_spec(inputs: Sequence[TensorType], attrs) -> dict:
    x = inputs[0]
    k, _, _, _, groups = conv1d_geometry(attrs)
    filters = attrs["filters"]
    channels = None if x.shape is None or len(x.shape) != 3 else x.shape[-1]
    if channels is not None and is_concrete(channels):
        if channels % groups:
            raise ShapeError(f"Conv1D: input axis -1 (channels): expected a multiple of "
                             f"groups={groups}, received {channels}")
        channels = channels // groups
    elif channels is not None:
        channels = None if groups != 1 else channels
    spec = {"kernel": (k, channels, filters)}
    if attrs.get("use_bias", True):
        spec["bias"] = (filters,)
    return spec


def conv1d_shape_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    _rank3(x, "Conv1D")
    k, stride, dilation, padding, groups = conv1d_geometry(attrs)
    if x.shape is None:
        return x.with_shape((None, None, attrs["filters"]))
    kernel = params["kernel"].shape
    unify.dims(mul(kernel[1], groups) if kernel[1] is not None else None, x.shape[2],
               f"input axis 2 (channels; kernel is {tuple(kernel)}, groups={groups})")
    steps = output_length(x.shape[1], k, stride, dilation, padding, "Conv1D")
    return x.with_shape((x.shape[0], steps, attrs["filters"]))


def conv1d_reference(inputs, params, attrs) -> np.ndarray:
    """Keras' formula: ``out[n, t, f] = act(sum_{j, c} xp[n, t*s + j*d, c] * w[j, c, f] + b)``
    per group, where ``xp`` is ``x`` padded as ``padding`` says."""
    x = inputs[0]
    w = params["kernel"]
    k, stride, dilation, padding, groups = conv1d_geometry(attrs)
    steps = output_length(x.shape[1], k, stride, dilation, padding, "Conv1D")
    left, right = time_pads(x.shape[1], steps, k, stride, dilation, padding)
    xp = np.pad(x.astype(np.float64), ((0, 0), (left, right), (0, 0)))
    cg, og = w.shape[1], w.shape[2] // groups
    y = np.zeros((x.shape[0], steps, w.shape[2]))
    for j in range(k):
        tap = xp[:, j * dilation: j * dilation + (steps - 1) * stride + 1: stride]
        for g in range(groups):
            y[..., g * og:(g + 1) * og] += tap[..., g * cg:(g + 1) * cg] @ w[j, :, g * og:
                                                                             (g + 1) * og]
    if "bias" in params:
        y = y + params["bias"]
    return apply_activation(y.astype(x.dtype), attrs.get("activation", "linear"),
                            attrs.get("alpha", LEAKY_RELU_DEFAULT_SLOPE))


register(OpDef(
    name="conv1d",
    shape_rule=conv1d_shape_rule,
    param_spec=conv1d_param_spec,
    reference=conv1d_reference,
    kernel="conv1d",
    natural_input_rank=3,
    traits=frozenset({OUTPUT_FUSABLE, FUSES_ACTIVATION}),
    doc="1-D convolution over (N, T, C); padding valid/same/causal, strides, dilation, groups.",
))


# -- pooling -------------------------------------------------------------------------------------
_POOL_LAYERS = {"max_pool1d": "MaxPooling1D", "avg_pool1d": "AveragePooling1D"}


def pool1d_geometry(attrs, layer: str) -> tuple[int, int, str]:
    """``(pool_size, strides, padding)``; strides default to the pool size, as in Keras."""
    pool = positive(attrs.get("pool_size", 2), "pool_size", layer)
    strides = attrs.get("strides")
    strides = pool if strides is None else positive(strides, "strides", layer)
    padding = attrs.get("padding", "valid")
    if padding not in ("valid", "same"):
        raise ShapeError(f"{layer}: padding must be 'valid' or 'same', received {padding!r}")
    return pool, strides, padding


def _pool1d_rule(layer: str):
    def rule(inputs, params, attrs, unify) -> TensorType:
        x = inputs[0]
        _rank3(x, layer)
        pool, strides, padding = pool1d_geometry(attrs, layer)
        if x.shape is None:
            return x.with_shape((None, None, None))
        steps = output_length(x.shape[1], pool, strides, 1, padding, layer)
        return x.with_shape((x.shape[0], steps, x.shape[2]))
    return rule


def _pool1d_reference(kind: str):
    layer = _POOL_LAYERS[kind]

    def reference(inputs, params, attrs) -> np.ndarray:
        """Max or mean over each window; ``same`` padding cells never count (TF)."""
        x = inputs[0]
        pool, strides, padding = pool1d_geometry(attrs, layer)
        steps = output_length(x.shape[1], pool, strides, 1, padding, layer)
        left, _ = time_pads(x.shape[1], steps, pool, strides, 1, padding)
        out = np.empty((x.shape[0], steps, x.shape[2]), x.dtype)
        for t in range(steps):
            lo = max(0, t * strides - left)
            hi = min(x.shape[1], t * strides - left + pool)
            window = x[:, lo:hi]  # max: in the input's dtype (int64 stays exact)
            out[:, t] = window.max(axis=1) if kind == "max_pool1d" else \
                window.astype(np.float64).mean(axis=1)
        return out
    return reference


for _kind, _layer in _POOL_LAYERS.items():
    register(OpDef(name=_kind, shape_rule=_pool1d_rule(_layer),
                   reference=_pool1d_reference(_kind), kernel=_kind, natural_input_rank=3,
                   traits=frozenset({REDUCTION}),
                   doc=f"{_layer}: pooling windows along the time axis of (N, T, C)."))


# -- resizing: upsampling, zero padding, cropping ------------------------------------------------
def _upsampling1d_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    _rank3(x, "UpSampling1D")
    if x.shape is None:
        return x.with_shape((None, None, None))
    steps = None if x.shape[1] is None else mul(x.shape[1], int(attrs["size"]))
    return x.with_shape((x.shape[0], steps, x.shape[2]))


def _upsampling1d_reference(inputs, params, attrs) -> np.ndarray:
    return np.repeat(inputs[0], int(attrs["size"]), axis=1)


register(OpDef(name="upsampling1d", shape_rule=_upsampling1d_rule,
               reference=_upsampling1d_reference, kernel="upsampling1d", natural_input_rank=3,
               traits=frozenset({INJECTIVE}),
               doc="Repeat each time step `size` times (Keras UpSampling1D)."))


def _zero_padding1d_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    _rank3(x, "ZeroPadding1D")
    left, right = non_negative_pair(attrs["padding"], "padding", "ZeroPadding1D")
    if x.shape is None:
        return x.with_shape((None, None, None))
    steps = None if x.shape[1] is None else add(x.shape[1], left + right)
    return x.with_shape((x.shape[0], steps, x.shape[2]))


def _zero_padding1d_reference(inputs, params, attrs) -> np.ndarray:
    left, right = non_negative_pair(attrs["padding"], "padding", "ZeroPadding1D")
    return np.pad(inputs[0], ((0, 0), (left, right), (0, 0)))


register(OpDef(name="zero_padding1d", shape_rule=_zero_padding1d_rule,
               reference=_zero_padding1d_reference, kernel="zero_padding1d",
               natural_input_rank=3, traits=frozenset({INJECTIVE}),
               doc="Zeros before and after the time axis (Keras ZeroPadding1D)."))


def _cropping1d_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    _rank3(x, "Cropping1D")
    left, right = non_negative_pair(attrs["cropping"], "cropping", "Cropping1D")
    if x.shape is None:
        return x.with_shape((None, None, None))
    steps = x.shape[1]
    if steps is not None:
        steps = add(steps, -(left + right))
        if is_concrete(steps) and steps <= 0:
            raise ShapeError(f"Cropping1D: input axis 1 (time) must be longer than the cropping "
                             f"{left}+{right}: expected at least {left + right + 1}, received "
                             f"{x.shape[1]}")
    return x.with_shape((x.shape[0], steps, x.shape[2]))


def _cropping1d_reference(inputs, params, attrs) -> np.ndarray:
    left, right = non_negative_pair(attrs["cropping"], "cropping", "Cropping1D")
    x = inputs[0]
    return x[:, left:x.shape[1] - right].copy()


register(OpDef(name="cropping1d", shape_rule=_cropping1d_rule, reference=_cropping1d_reference,
               kernel="cropping1d", natural_input_rank=3, traits=frozenset({INJECTIVE}),
               doc="Drop steps at the start and end of the time axis (Keras Cropping1D)."))


# -- TimeDistributed: fold the time axis into the batch and back ---------------------------------
def _fold_time_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    require_rank(x, 3, "TimeDistributed (inputs (batch, steps, ...))")
    if x.shape is None:
        return x
    n, t = x.shape[0], x.shape[1]
    return x.with_shape((None if n is None or t is None else mul(n, t),) + tuple(x.shape[2:]))


def _fold_time_reference(inputs, params, attrs) -> np.ndarray:
    x = inputs[0]
    return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


def _unfold_time_rule(inputs, params, attrs, unify) -> TensorType:
    y, x = inputs
    if y.shape is None or x.shape is None:
        return y.with_shape(None)
    require_rank(y, 1, "TimeDistributed (the wrapped layer's output)")
    if x.shape[0] is not None and x.shape[1] is not None:
        unify.dims(mul(x.shape[0], x.shape[1]), y.shape[0],
                   "the wrapped layer's output axis 0 (batch * steps)")
    return y.with_shape((x.shape[0], x.shape[1]) + tuple(y.shape[1:]))


def _unfold_time_reference(inputs, params, attrs) -> np.ndarray:
    y, x = inputs
    return y.reshape(x.shape[:2] + y.shape[1:])


register(OpDef(name="fold_time", shape_rule=_fold_time_rule, reference=_fold_time_reference,
               kernel="reshape", natural_input_rank=3, traits=frozenset({INJECTIVE}),
               doc="(N, T, ...) -> (N*T, ...): TimeDistributed's inner layer sees one batch."))
register(OpDef(name="unfold_time", shape_rule=_unfold_time_rule,
               reference=_unfold_time_reference, kernel="reshape", num_inputs=2,
               traits=frozenset({INJECTIVE}),
               doc="(N*T, ...) -> (N, T, ...), N and T read from the second input."))
