"""What ``Conv1D`` and ``Conv2D`` share (Keras' ``BaseConv``): argument checking, weights'
initializers, op attributes and config — written once, so the two layers cannot drift apart.

A subclass says only how a window argument (``kernel_size``, ``strides``, ``dilation_rate``) is
parsed and written back to a config, and which paddings it accepts.
"""

from __future__ import annotations

from typing import Any

from ..errors import CompilerError
from ..ops.activations import canonical_activation
from . import initializers
from .layers import Layer, _flag, _positive_int


def padding_choice(value: Any, layer: str, allowed: tuple) -> str:
    """Keras' case-insensitive padding string, checked against what the layer supports."""
    if not isinstance(value, str) or value.lower() not in allowed:
        options = ", ".join(map(repr, allowed[:-1])) + f" or {allowed[-1]!r}"
        raise CompilerError(f"{layer}: padding must be {options}, received {value!r}")
    return value.lower()


def _exceeds_one(window: Any) -> bool:
    return any(v != 1 for v in (window if isinstance(window, tuple) else (window,)))


class BaseConv(Layer):
    """A convolution layer's configuration; the kernel's input size is deferred to the first
    call like every weight's."""

    PADDINGS: tuple = ("valid", "same")

    def _window(self, value: Any, name: str, kind: str) -> Any:
        """Parse one window argument (an int, or a tuple of one int per spatial axis)."""
        raise NotImplementedError

    def _config_window(self, value: Any) -> Any:
        """A parsed window argument as it is written to ``get_config``."""
        return value

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 dilation_rate: Any = 1, groups: int = 1, activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", **kwargs: Any):
        super().__init__(**kwargs)
        kind = type(self).__name__
        self.filters = _positive_int(filters, "filters", kind)
        self.kernel_size = self._window(kernel_size, "kernel_size", kind)
        self.strides = self._window(strides, "strides", kind)
        self.padding = padding_choice(padding, kind, self.PADDINGS)
        self.dilation_rate = self._window(dilation_rate, "dilation_rate", kind)
        self.groups = _positive_int(groups, "groups", kind)
        if self.filters % self.groups:
            raise CompilerError(f"{kind}: filters ({self.filters}) must be a multiple of groups "
                                f"({self.groups})")
        if _exceeds_one(self.strides) and _exceeds_one(self.dilation_rate):
            raise CompilerError(f"{kind}: strides {self.strides} and dilation_rate "
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
        window = self._config_window
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": window(self.kernel_size), "strides": window(self.strides),
                "padding": self.padding, "dilation_rate": window(self.dilation_rate),
                "groups": self.groups, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}
