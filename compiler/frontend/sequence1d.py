"""1-D sequence layers over ``(N, T, C)`` (Keras names, arguments and defaults).

Like every layer they only validate and store configuration: the kernel ``(k, in/groups,
filters)`` is sized from the channel count on the first call, and the time axis stays symbolic,
so one plan serves every sequence length.
"""

from __future__ import annotations

from typing import Any

from ..errors import CompilerError, ShapeError
from ..ops.sequence1d import PADDINGS_1D, non_negative_pair, positive
from .conv_base import BaseConv, padding_choice
from .layers import Layer, _positive_int


def _checked(parse, *args) -> Any:
    """Run a shared argument parser, reporting its complaint as a configuration error."""
    try:
        return parse(*args)
    except ShapeError as e:
        raise CompilerError(str(e)) from None


def _channels_last(data_format: str | None, layer: str) -> None:
    if data_format not in (None, "channels_last"):
        raise CompilerError(f"{layer}: only data_format='channels_last' is supported, "
                            f"received {data_format!r}")


class Conv1D(BaseConv):
    """1-D convolution; kernel ``(kernel_size, in/groups, filters)``; ``padding="causal"`` pads
    ``dilation_rate*(kernel_size-1)`` zeros on the left (output ``t`` sees inputs ``<= t``)."""

    op = "conv1d"

    PADDINGS = PADDINGS_1D

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: Any = 1, groups: int = 1,
                 activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any):
        _channels_last(data_format, type(self).__name__)
        super().__init__(filters, kernel_size, strides, padding, dilation_rate, groups,
                         activation, use_bias, kernel_initializer, bias_initializer, **kwargs)

    def _window(self, value: Any, name: str, kind: str) -> int:
        return _checked(positive, value, name, kind)


class _Pooling1D(Layer):
    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        kind = type(self).__name__
        _channels_last(data_format, kind)
        self.pool_size = _checked(positive, pool_size, "pool_size", kind)
        self.strides = self.pool_size if strides is None else _checked(
            positive, strides, "strides", kind)
        self.padding = padding_choice(padding, kind, ("valid", "same"))

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
