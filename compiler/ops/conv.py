"""``conv2d`` and ``depthwise_conv2d``: NHWC convolutions with Keras/TF semantics.

Kernels are laid out as Keras stores them: ``(kh, kw, in/groups, filters)`` for ``conv2d`` and
``(kh, kw, in, depth_multiplier)`` for ``depthwise_conv2d``. Output sizes follow TF exactly
(``valid``: ``(H - dil*(k-1) - 1)//s + 1``; ``same``: ``ceil(H/s)`` with the odd padding cell at
the bottom/right), including for symbolic sizes, so ``H - 2`` or ``(H + 1)//2`` flow through.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError
from ..symbolic import DimLike, add, ceildiv, floordiv, is_concrete, mul
from ..types import TensorType
from .activations import LEAKY_RELU_DEFAULT_SLOPE, apply_activation
from .registry import (
    FUSES_ACTIVATION,
    FUSES_RESIDUAL,
    OUTPUT_FUSABLE,
    OpDef,
    register,
    require_rank,
)

SPATIAL_AXES = ((1, "height"), (2, "width"))


def pair(value, what: str, layer: str) -> tuple[int, int]:
    """Keras accepts ``3`` or ``(3, 3)``; both entries must be positive ints.

    The one int-or-pair parser: layers validate their arguments with it, shape rules, NumPy
    references and the runtime's scalar derivations normalise attrs with it.
    """
    items = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(items) != 2:
        raise ShapeError(f"{layer}: {what} must be an int or a pair of ints, received {value!r}")
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ShapeError(f"{layer}: {what} must be a positive int, received {v!r}")
    return int(items[0]), int(items[1])


def window_output_size(size: DimLike | None, k: int, stride: int, dilation: int, padding: str,
                       layer: str, axis: int, axis_name: str) -> DimLike | None:
    """TF's output size for one spatial axis of a sliding window; ``None`` stays unknown.

    Raises ``ShapeError`` when a known size is too small for the window.
    """
    if isinstance(padding, tuple):  # explicit (before, after) cells of this axis
        if size is None:
            return None
        size, padding = add(size, padding[0] + padding[1]), "valid"
    elif padding not in ("valid", "same"):
        raise ShapeError(f"{layer}: padding must be 'valid' or 'same', received {padding!r}")
    if size is None:
        return None
    span = dilation * (k - 1) + 1
    if padding == "same":
        out = ceildiv(size, stride)
    else:
        out = add(floordiv(add(size, -span), stride), 1)
    if is_concrete(out) and out <= 0:
        need = span if padding == "valid" else 1
        raise ShapeError(
            f"{layer}: input axis {axis} ({axis_name}) is too small for a window of size {k}"
            f" (dilation {dilation}, padding {padding!r}): expected at least {need}, "
            f"received {size}")
    return out


def same_padding(size: int, out: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF ``SAME`` padding ``(before, after)``: the extra cell of an odd total goes after."""
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def explicit_pads(padding, layer: str) -> tuple | None:
    """``((top, bottom), (left, right))`` for explicit padding, ``None`` for ``valid``/``same``.

    Explicit cells are what ``fold_pad`` writes when it folds an ONNX-style pad op into the
    window: zeros for a convolution, cells that never count for pooling (as ``same`` padding).
    """
    if isinstance(padding, str):
        return None
    try:
        (top, bottom), (left, right) = padding
    except (TypeError, ValueError):
        raise ShapeError(f"{layer}: padding must be 'valid', 'same' or ((top, bottom), "
                         f"(left, right)), received {padding!r}") from None
    cells = (top, bottom, left, right)
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0
           for v in cells):
        raise ShapeError(f"{layer}: explicit padding must be non-negative ints, "
                         f"received {padding!r}")
    return (int(top), int(bottom)), (int(left), int(right))


def spatial_output(x: TensorType, attrs, layer: str, k: tuple[int, int]) -> tuple:
    """``(OH, OW)`` of a sliding-window op over NHWC ``x`` (``x.shape`` known)."""
    strides = pair(attrs.get("strides", (1, 1)), "strides", layer)
    dilation = pair(attrs.get("dilation", (1, 1)), "dilation", layer)
    padding = attrs.get("padding", "valid")
    pads = explicit_pads(padding, layer)
    return tuple(window_output_size(x.shape[axis], k[i], strides[i], dilation[i],
                                    padding if pads is None else pads[i], layer, axis, name)
                 for i, (axis, name) in enumerate(SPATIAL_AXES))


def _groups(attrs) -> int:
    groups = attrs.get("groups", 1)
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ShapeError(f"Conv2D: groups must be a positive int, received {groups!r}")
    return int(groups)


def _channels_per_group(channels: DimLike | None, groups: int) -> DimLike | None:
    if channels is None:
        return None
    if is_concrete(channels):
        if channels % groups:
            raise ShapeError(f"Conv2D: input axis -1 (channels): expected a multiple of "
                             f"groups={groups}, received {channels}")
        return channels // groups
    return floordiv(channels, groups)


# -- conv2d --------------------------------------------------------------------------------------
def conv2d_param_spec(inputs: Sequence[TensorType], attrs) -> dict:
    x = inputs[0]
    kh, kw = pair(attrs["kernel_size"], "kernel_size", "Conv2D")
    filters, groups = attrs["filters"], _groups(attrs)
    if filters % groups:
        raise ShapeError(f"Conv2D: filters must be a multiple of groups={groups}, "
                         f"received {filters}")
    channels = None if x.shape is None or len(x.shape) != 4 else x.shape[-1]
    spec = {"kernel": (kh, kw, _channels_per_group(channels, groups), filters)}
    if attrs.get("use_bias", True):
        spec["bias"] = (filters,)
    return spec


def conv2d_shape_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    require_rank(x, 4, "Conv2D", exact=True)
    kernel = params["kernel"].shape
    kh, kw = pair(attrs["kernel_size"], "kernel_size", "Conv2D")
    groups, filters = _groups(attrs), attrs["filters"]
    unify.shapes((kh, kw, None, filters), kernel, "Conv2D kernel")
    if x.shape is None:
        out = (None, None, None, filters)
    else:
        _channels_per_group(x.shape[-1], groups)
        unify.dims(None if kernel[2] is None else mul(kernel[2], groups), x.shape[-1],
                   "Conv2D: input axis -1 (channels)")
        oh, ow = spatial_output(x, attrs, "Conv2D", (kh, kw))
        out = (unify.resolve(x.shape[0]), oh, ow, filters)
    if attrs.get("residual", False):
        if len(inputs) != 2:
            raise ShapeError(f"Conv2D with residual=True: expected 2 inputs, "
                             f"received {len(inputs)}")
        out = unify.shapes(out, inputs[1].shape, "Conv2D residual")
    return x.with_shape(out)


def pad_nhwc(x: np.ndarray, pads: tuple, value: float = 0.0) -> np.ndarray:
    """Pad H and W by ``((top, bottom), (left, right))``."""
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def window_pads(x_shape: tuple, out_hw: tuple, k: tuple, strides: tuple, dilation: tuple,
                padding) -> tuple:
    """``((top, bottom), (left, right))`` cells of padding (``padding`` as in the attrs)."""
    pads = explicit_pads(padding, "window")
    if pads is not None:
        return pads
    if padding != "same":
        return (0, 0), (0, 0)
    return tuple(same_padding(x_shape[1 + i], out_hw[i], k[i], strides[i], dilation[i])
                 for i in range(2))


def _window_geometry(x: np.ndarray, attrs, k: tuple, layer: str):
    strides = pair(attrs.get("strides", (1, 1)), "strides", layer)
    dilation = pair(attrs.get("dilation", (1, 1)), "dilation", layer)
    out_hw = spatial_output(TensorType(x.shape, x.dtype), attrs, layer, k)
    pads = window_pads(x.shape, out_hw, k, strides, dilation, attrs.get("padding", "valid"))
    return strides, dilation, out_hw, pads


def window_taps(xp: np.ndarray, k: tuple, strides: tuple, dilation: tuple, out_hw: tuple):
    """Yield ``(ky, kx, view)`` where ``view[n, oh, ow, c]`` is tap (ky, kx) of each window."""
    oh, ow = out_hw
    for ky in range(k[0]):
        y0 = ky * dilation[0]
        for kx in range(k[1]):
            x0 = kx * dilation[1]
            yield ky, kx, xp[:, y0:y0 + (oh - 1) * strides[0] + 1:strides[0],
                             x0:x0 + (ow - 1) * strides[1] + 1:strides[1], :]


def _finish(y: np.ndarray, params, inputs, attrs, dtype) -> np.ndarray:
    if "bias" in params:
        y = y + params["bias"]
    if attrs.get("residual", False):
        y = y + inputs[1]
    return apply_activation(y.astype(dtype), attrs.get("activation", "linear"),
                            attrs.get("alpha", LEAKY_RELU_DEFAULT_SLOPE))


def conv2d_reference(inputs, params, attrs) -> np.ndarray:
    x, kernel = inputs[0], params["kernel"]
    k = kernel.shape[:2]
    groups = _groups(attrs)
    strides, dilation, out_hw, pads = _window_geometry(x, attrs, k, "Conv2D")
    xp = pad_nhwc(x.astype(np.float64), pads)
    cg, filters = kernel.shape[2], kernel.shape[3]
    og = filters // groups
    y = np.zeros((x.shape[0],) + tuple(out_hw) + (groups, og))
    w = kernel.astype(np.float64).reshape(k + (cg, groups, og))
    with np.errstate(invalid="ignore", over="ignore"):
        for ky, kx, view in window_taps(xp, k, strides, dilation, out_hw):
            v = view.reshape(view.shape[:3] + (groups, cg))
            y += np.einsum("nhwgc,cgo->nhwgo", v, w[ky, kx])
    return _finish(y.reshape(y.shape[:3] + (filters,)), params, inputs, attrs, x.dtype)


register(OpDef(
    name="conv2d",
    shape_rule=conv2d_shape_rule,
    param_spec=conv2d_param_spec,
    reference=conv2d_reference,
    kernel="conv2d",
    num_inputs=1,  # 2 once ``fuse`` folds a residual add in (attr residual=True): see arity()
    natural_input_rank=4,
    traits=frozenset({OUTPUT_FUSABLE, FUSES_ACTIVATION, FUSES_RESIDUAL}),
    doc="2-D convolution (NHWC) with fused bias, optional residual add and activation.",
))


# -- depthwise_conv2d ----------------------------------------------------------------------------
def depthwise_param_spec(inputs: Sequence[TensorType], attrs) -> dict:
    x = inputs[0]
    kh, kw = pair(attrs["kernel_size"], "kernel_size", "DepthwiseConv2D")
    mult = attrs.get("depth_multiplier", 1)
    channels = None if x.shape is None or len(x.shape) != 4 else x.shape[-1]
    spec = {"kernel": (kh, kw, channels, mult)}
    if attrs.get("use_bias", True):
        spec["bias"] = (None if channels is None else mul(channels, mult),)
    return spec


def depthwise_shape_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    require_rank(x, 4, "DepthwiseConv2D", exact=True)
    kernel = params["kernel"].shape
    kh, kw = pair(attrs["kernel_size"], "kernel_size", "DepthwiseConv2D")
    mult = attrs.get("depth_multiplier", 1)
    unify.shapes((kh, kw, None, mult), kernel, "DepthwiseConv2D kernel")
    if x.shape is None:
        return x.with_shape((None, None, None, None))
    channels = unify.dims(kernel[2], x.shape[-1], "DepthwiseConv2D: input axis -1 (channels)")
    oh, ow = spatial_output(x, attrs, "DepthwiseConv2D", (kh, kw))
    out_c = None if channels is None else mul(channels, mult)
    if "bias" in params:
        unify.dims(params["bias"].shape[0], out_c, "DepthwiseConv2D bias axis 0")
    return x.with_shape((unify.resolve(x.shape[0]), oh, ow, out_c))


def depthwise_reference(inputs, params, attrs) -> np.ndarray:
    x, kernel = inputs[0], params["kernel"]
    k = kernel.shape[:2]
    strides, dilation, out_hw, pads = _window_geometry(x, attrs, k, "DepthwiseConv2D")
    xp = pad_nhwc(x.astype(np.float64), pads)
    c, mult = kernel.shape[2], kernel.shape[3]
    y = np.zeros((x.shape[0],) + tuple(out_hw) + (c, mult))
    w = kernel.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        for ky, kx, view in window_taps(xp, k, strides, dilation, out_hw):
            y += view[..., None] * w[ky, kx]
    return _finish(y.reshape(y.shape[:3] + (c * mult,)), params, inputs, attrs, x.dtype)


register(OpDef(
    name="depthwise_conv2d",
    shape_rule=depthwise_shape_rule,
    param_spec=depthwise_param_spec,
    reference=depthwise_reference,
    kernel="depthwise_conv2d",
    natural_input_rank=4,
    traits=frozenset({OUTPUT_FUSABLE, FUSES_ACTIVATION}),
    doc="Depthwise 2-D convolution (NHWC); output channel c*depth_multiplier + m.",
))
