"""Fast NumPy implementations of the heavy ops, for the lower tier (``runtime.tiers``).

The op references (``OpDef.reference``) define what each op computes and favour clarity over
speed: a convolution sums one ``einsum`` per kernel tap in float64. On a cold cache the lower tier
answers a CNN's first calls, so its convolutions must run at BLAS speed: here a convolution is an
im2col view (``as_strided``, no copy until the GEMM needs one) times the kernel matrix through
``np.matmul``, in the value's own dtype, like the jitted kernels. Pooling reads the same kind of
window view. Each function takes the reference's arguments ``(inputs, params, attrs)`` and returns
what the reference returns, within the reference tests' tolerance; it returns ``None`` for a case
it does not cover (the lower tier then runs the reference).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from compiler.ops.activations import LEAKY_RELU_DEFAULT_SLOPE, apply_activation
from compiler.ops.conv import _window_geometry, pad_nhwc, pair
from compiler.ops.pooling import pool_geometry

Impl = Callable[[list, dict, dict], "np.ndarray | None"]
#: op name -> fast implementation
FAST: dict[str, Impl] = {}


def fast(op: str) -> Callable[[Impl], Impl]:
    def register(fn: Impl) -> Impl:
        FAST[op] = fn
        return fn
    return register


def windows(xp: np.ndarray, k: tuple, strides: tuple, dilation: tuple,
            out_hw: tuple) -> np.ndarray:
    """``(N, OH, OW, KH, KW, C)`` view of every window of a padded NHWC image (no copy)."""
    n, _, _, c = xp.shape
    s = xp.strides
    return as_strided(xp, (n, out_hw[0], out_hw[1], k[0], k[1], c),
                      (s[0], s[1] * strides[0], s[2] * strides[1], s[1] * dilation[0],
                       s[2] * dilation[1], s[3]), writeable=False)


def _floats(*arrays: np.ndarray) -> bool:
    return all(a.dtype.kind == "f" and a.dtype == arrays[0].dtype for a in arrays)


def _epilogue(y: np.ndarray, params: dict, inputs: list, attrs: dict) -> np.ndarray:
    """Bias, residual and activation, as the reference's ``_finish`` applies them."""
    if "bias" in params:
        y += params["bias"]
    if attrs.get("residual", False):
        y += inputs[1]
    return apply_activation(y, attrs.get("activation", "linear"),
                            attrs.get("alpha", LEAKY_RELU_DEFAULT_SLOPE))


@fast("conv2d")
def conv2d(inputs: list, params: dict, attrs: dict) -> np.ndarray | None:
    """im2col + one GEMM per group (``np.matmul`` on BLAS)."""
    x, kernel = inputs[0], params["kernel"]
    if not _floats(x, kernel) or x.ndim != 4:
        return None
    k = kernel.shape[:2]
    groups = int(attrs.get("groups", 1))
    strides, dilation, out_hw, pads = _window_geometry(x, attrs, k, "Conv2D")
    n, (oh, ow), (cg, filters) = x.shape[0], out_hw, kernel.shape[2:]
    og = filters // groups
    rows = n * oh * ow
    if k == (1, 1) and strides == (1, 1) and pads == ((0, 0), (0, 0)) and groups == 1:
        y = np.matmul(x.reshape(rows, cg), kernel.reshape(cg, filters))
    else:
        view = windows(pad_nhwc(x, pads), k, strides, dilation, out_hw)
        if groups == 1:
            y = np.matmul(view.reshape(rows, k[0] * k[1] * cg), kernel.reshape(-1, filters))
        else:  # (G, rows, taps*cg) @ (G, taps*cg, og)
            cols = view.reshape(rows, k[0] * k[1], groups, cg).transpose(2, 0, 1, 3)
            w = kernel.reshape(k[0] * k[1], cg, groups, og).transpose(2, 0, 1, 3)
            y = np.matmul(cols.reshape(groups, rows, -1), w.reshape(groups, -1, og))
            y = y.transpose(1, 0, 2)
    y = np.ascontiguousarray(y).reshape(n, oh, ow, filters)
    return _epilogue(y, params, inputs, attrs)


@fast("depthwise_conv2d")
def depthwise_conv2d(inputs: list, params: dict, attrs: dict) -> np.ndarray | None:
    """One multiply-add per kernel tap over the window view, in the value's dtype."""
    x, kernel = inputs[0], params["kernel"]
    if not _floats(x, kernel) or x.ndim != 4:
        return None
    k = kernel.shape[:2]
    strides, dilation, out_hw, pads = _window_geometry(x, attrs, k, "DepthwiseConv2D")
    c, mult = kernel.shape[2:]
    view = windows(pad_nhwc(x, pads), k, strides, dilation, out_hw)
    y = np.zeros((x.shape[0], *out_hw, c, mult), x.dtype)
    for ky in range(k[0]):
        for kx in range(k[1]):
            y += view[:, :, :, ky, kx, :, None] * kernel[ky, kx]
    return _epilogue(y.reshape(*y.shape[:3], c * mult), params, inputs, attrs)


def _pool(kind: str, layer: str) -> Impl:
    def impl(inputs: list, params: dict, attrs: dict) -> np.ndarray | None:
        x = inputs[0]
        if x.dtype.kind != "f" or x.ndim != 4:
            return None
        geo = pool_geometry(attrs, layer)
        k = pair(geo["pool_size"], "pool_size", layer)
        strides, dilation, out_hw, pads = _window_geometry(x, geo, k, layer)
        if kind == "max":
            view = windows(pad_nhwc(x, pads, -np.inf), k, strides, dilation, out_hw)
            return view.max(axis=(3, 4))
        total = windows(pad_nhwc(x, pads), k, strides, dilation, out_hw).sum(axis=(3, 4))
        if pads == ((0, 0), (0, 0)):
            return total / x.dtype.type(k[0] * k[1])
        ones = pad_nhwc(np.ones((1, *x.shape[1:3], 1), x.dtype), pads)
        count = windows(ones, k, strides, dilation, out_hw).sum(axis=(3, 4))
        return total / count
    return impl


FAST["max_pool2d"] = _pool("max", "MaxPooling2D")
FAST["avg_pool2d"] = _pool("avg", "AveragePooling2D")
