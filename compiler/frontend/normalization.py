"""Normalization layers at inference: BatchNormalization (moving statistics), LayerNormalization."""

from __future__ import annotations

from typing import Any

from ..errors import CompilerError
from ..ops.normalization import DEFAULT_EPSILON
from . import initializers
from .layers import Layer, _flag


def _epsilon(value: Any, layer: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise CompilerError(f"{layer}: epsilon must be a positive number, received {value!r}")
    return float(value)


def _last_axis(axis: Any, layer: str) -> int:
    if axis != -1:
        raise CompilerError(f"{layer}: only axis=-1 (channels last) is supported, received "
                            f"axis={axis!r}")
    return -1


class BatchNormalization(Layer):
    """``gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta`` per channel."""

    op = "batch_norm"
    supports_masking = True

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = DEFAULT_EPSILON,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", moving_mean_initializer: Any = "zeros",
                 moving_variance_initializer: Any = "ones", **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = _last_axis(axis, "BatchNormalization")
        self.momentum = float(momentum)  # training only; kept for the configuration
        self.epsilon = _epsilon(epsilon, "BatchNormalization")
        self.center = _flag(center, "center", type(self).__name__)
        self.scale = _flag(scale, "scale", type(self).__name__)
        self._initializers = {
            "gamma": initializers.get(gamma_initializer),
            "beta": initializers.get(beta_initializer),
            "moving_mean": initializers.get(moving_mean_initializer),
            "moving_variance": initializers.get(moving_variance_initializer)}

    def op_attrs(self) -> dict:
        return {"epsilon": self.epsilon, "center": self.center, "scale": self.scale}

    def initializer(self, param: str) -> initializers.Initializer:
        return self._initializers[param]

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                **{f"{p}_initializer": initializers.serialize(i)
                   for p, i in self._initializers.items()}}


class LayerNormalization(Layer):
    """Normalizes each sample over the last axis, then ``gamma * x + beta``."""

    op = "layer_norm"
    supports_masking = True

    def __init__(self, axis: int = -1, epsilon: float = DEFAULT_EPSILON, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = _last_axis(axis, "LayerNormalization")
        self.epsilon = _epsilon(epsilon, "LayerNormalization")
        self.center = _flag(center, "center", type(self).__name__)
        self.scale = _flag(scale, "scale", type(self).__name__)
        self._initializers = {"gamma": initializers.get(gamma_initializer),
                              "beta": initializers.get(beta_initializer)}

    def op_attrs(self) -> dict:
        return {"epsilon": self.epsilon, "center": self.center, "scale": self.scale}

    def initializer(self, param: str) -> initializers.Initializer:
        return self._initializers[param]

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                **{f"{p}_initializer": initializers.serialize(i)
                   for p, i in self._initializers.items()}}
