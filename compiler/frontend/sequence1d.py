"""1-D sequence layers over ``(N, T, C)`` (Keras names, arguments and defaults).

Like every layer they only validate and store configuration: the kernel ``(k, in/groups,
filters)`` is sized from the channel count on the first call, and the time axis stays symbolic,
so one plan serves every sequence length.
"""

from __future__ import annotations

from typing import Any

from ..errors import CompilerError, ShapeError
from ..ops.activations import canonical_activation
from ..ops.sequence1d import PADDINGS_1D, non_negative_pair, positive
from . import initializers
from .layers import Layer, _flag, _positive_int


def _checked(parse, *args) -> Any:
    """Run a shared argument parser, reporting its complaint as a configuration error."""
    try:
        return parse(*args)
    except ShapeError as e:
        raise CompilerError(str(e)) from None


def _padding(value: Any, layer: str, allowed: tuple) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise CompilerError(f"{layer}: padding must be one of {allowed}, received {value!r}")
    return value.lower()


class Conv1D(Layer):
    """1-D convolution; kernel ``(kernel_size, in/groups, filters)``; ``padding="causal"`` pads
    ``dilation_rate*(kernel_size-1)`` zeros on the left (output ``t`` sees inputs ``<= t``)."""

    op = "conv1d"

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: Any = 1, groups: int = 1,
                 activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any):
        super().__init__(**kwargs)
        kind = type(self).__name__
        if data_format not in (None, "channels_last"):
            raise CompilerError(f"{kind}: only data_format='channels_last' is supported, "
                                f"received {data_format!r}")
        self.filters = _positive_int(filters, "filters", kind)
        self.kernel_size = _checked(positive, kernel_size, "kernel_size", kind)
        self.strides = _checked(positive, strides, "strides", kind)
        self.padding = _padding(padding, kind, PADDINGS_1D)
        self.dilation_rate = _checked(positive, dilation_rate, "dilation_rate", kind)
        self.groups = _positive_int(groups, "groups", kind)
        if self.filters % self.groups:
            raise CompilerError(f"{kind}: filters ({self.filters}) must be a multiple of groups "
                                f"({self.groups})")
        if self.strides > 1 and self.dilation_rate > 1:
            raise CompilerError(f"{kind}: strides={self.strides} and dilation_rate="
                                f"{self.dilation_rate} cannot both exceed 1 (as in Keras)")
        self.activation = canonical_activation(activation)
        self.use_bias = _flag(use_bias, "use_bias", kind)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def op_attrs(self) -> dict:
        return {"filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "dilation": self.dilation_rate, "groups": self.groups,
                "activation": self.activation, "use_bias": self.use_bias}

    def initializer(self, param: str) -> initializers.Initializer:
        return {"kernel": self.kernel_initializer, "bias": self.bias_initializer}[param]

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "dilation_rate": self.dilation_rate,
                "groups": self.groups, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}


class _Pooling1D(Layer):
    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        kind = type(self).__name__
        if data_format not in (None, "channels_last"):
            raise CompilerError(f"{kind}: only data_format='channels_last' is supported, "
                                f"received {data_format!r}")
        self.pool_size = _checked(positive, pool_size, "pool_size", kind)
        self.strides = self.pool_size if strides is None else _checked(
            positive, strides, "strides", kind)
        self.padding = _padding(padding, kind, ("valid", "same"))

    def op_attrs(self) -> dict:
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}

    def get_config(self) -> dict:
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


class MaxPooling1D(_Pooling1D):
    op = "max_pool1d"


class AveragePooling1D(_Pooling1D):
    """Mean over each window; with ``same`` padding, padded cells do not count (TF)."""

    op = "avg_pool1d"


class UpSampling1D(Layer):
    """Repeats each time step ``size`` times."""

    op = "upsampling1d"

    def __init__(self, size: int = 2, **kwargs: Any):
        super().__init__(**kwargs)
        self.size = _positive_int(size, "size", type(self).__name__)

    def op_attrs(self) -> dict:
        return {"size": self.size}

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size}


class ZeroPadding1D(Layer):
    """Zeros at the start and end of the time axis: ``padding`` is ``p`` or ``(left, right)``."""

    op = "zero_padding1d"

    def __init__(self, padding: Any = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.padding = _checked(non_negative_pair, padding, "padding", type(self).__name__)

    def op_attrs(self) -> dict:
        return {"padding": self.padding}

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": list(self.padding)}


class Cropping1D(Layer):
    """Drops steps at the start and end: ``cropping`` is ``c`` or ``(left, right)``."""

    op = "cropping1d"

    def __init__(self, cropping: Any = (1, 1), **kwargs: Any):
        super().__init__(**kwargs)
        self.cropping = _checked(non_negative_pair, cropping, "cropping", type(self).__name__)

    def op_attrs(self) -> dict:
        return {"cropping": self.cropping}

    def get_config(self) -> dict:
        return {**super().get_config(), "cropping": list(self.cropping)}
