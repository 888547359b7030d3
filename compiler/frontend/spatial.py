"""Image layers (NHWC, Keras names and defaults): convolutions, pooling, padding.

Like every layer, they only validate and store configuration; the kernel shape
``(kh, kw, in/groups, filters)`` is inferred from the input's channel count at build time, and
every spatial size downstream follows from the image resolution by shape propagation.
"""

from __future__ import annotations

from typing import Any

from ..ops.activations import canonical_activation
from ..ops.conv import pair as _pair
from ..ops.pooling import pool_geometry, zero_padding_amounts
from . import initializers
from .conv_base import BaseConv, padding_choice
from .layers import Layer, _flag, _positive_int

_PADDINGS = ("valid", "same")


def _padding(value: Any, layer: str) -> str:
    return padding_choice(value, layer, _PADDINGS)


class Conv2D(BaseConv):
    """2-D convolution over NHWC images; kernel ``(kh, kw, in/groups, filters)``."""

    op = "conv2d"

    def _window(self, value: Any, name: str, kind: str) -> tuple:
        return _pair(value, name, kind)

    def _config_window(self, value: tuple) -> list:
        return list(value)


class DepthwiseConv2D(Layer):
    """One filter bank per input channel; kernel ``(kh, kw, in, depth_multiplier)``."""

    op = "depthwise_conv2d"

    def __init__(self, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 depth_multiplier: int = 1, dilation_rate: Any = 1, activation: Any = None,
                 use_bias: bool = True, depthwise_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", **kwargs: Any):
        super().__init__(**kwargs)
        kind = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", kind)
        self.strides = _pair(strides, "strides", kind)
        self.padding = _padding(padding, kind)
        self.depth_multiplier = _positive_int(depth_multiplier, "depth_multiplier", kind)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate", kind)
        self.activation = canonical_activation(activation)
        self.use_bias = _flag(use_bias, "use_bias", kind)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def op_attrs(self) -> dict:
        return {"kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "depth_multiplier": self.depth_multiplier,
                "dilation": self.dilation_rate, "activation": self.activation,
                "use_bias": self.use_bias}

    def initializer(self, param: str) -> initializers.Initializer:
        return {"kernel": self.depthwise_initializer, "bias": self.bias_initializer}[param]

    def get_config(self) -> dict:
        return {**super().get_config(), "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "depth_multiplier": self.depth_multiplier,
                "dilation_rate": list(self.dilation_rate), "activation": self.activation,
                "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}


class _Pooling2D(Layer):
    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 **kwargs: Any):
        super().__init__(**kwargs)
        kind = type(self).__name__
        geo = pool_geometry({"pool_size": pool_size, "strides": strides}, kind)
        self.pool_size, self.strides = geo["pool_size"], geo["strides"]
        self.padding = _padding(padding, kind)

    def op_attrs(self) -> dict:
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}

    def get_config(self) -> dict:
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding}


class MaxPooling2D(_Pooling2D):
    op = "max_pool2d"


class AveragePooling2D(_Pooling2D):
    op = "avg_pool2d"


class GlobalAveragePooling2D(Layer):
    """Mean over H and W: the layer that makes later sizes independent of the resolution."""

    op = "global_avg_pool2d"

    def __init__(self, keepdims: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.keepdims = _flag(keepdims, "keepdims", type(self).__name__)

    def op_attrs(self) -> dict:
        return {"keepdims": self.keepdims}

    def get_config(self) -> dict:
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalMaxPooling2D(GlobalAveragePooling2D):
    op = "global_max_pool2d"


class ZeroPadding2D(Layer):
    """Pads H and W with zeros: ``padding`` is ``p``, ``(ph, pw)`` or ``((t, b), (l, r))``."""

    op = "zero_padding2d"

    def __init__(self, padding: Any = (1, 1), **kwargs: Any):
        super().__init__(**kwargs)
        self.padding = zero_padding_amounts({"padding": padding})

    def op_attrs(self) -> dict:
        return {"padding": self.padding}

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": [list(p) for p in self.padding]}
