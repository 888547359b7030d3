"""A framework-neutral description of a model: what every peer is built from.

Workloads describe an architecture (``DenseConfig`` list); ours builds and initialises it, and
the resulting weights become a ``ModelSpec`` that NumPy, PyTorch and ONNX Runtime all consume,
so every implementation computes the same function with identical weights. Conv nets, which
branch, are described by ``graphspec`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SUPPORTED_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")


@dataclass(frozen=True)
class DenseConfig:
    """Architecture of one dense layer, before any weights exist."""

    units: int
    activation: str = "linear"


@dataclass(frozen=True)
class DenseLayer:
    """``activation(x @ kernel + bias)``; ``kernel`` is ``(in, out)`` (Keras layout), float32."""

    kernel: np.ndarray
    bias: np.ndarray
    activation: str

    def __post_init__(self) -> None:
        if self.kernel.ndim != 2 or self.bias.shape != (self.kernel.shape[1],):
            raise ValueError(
                f"DenseLayer: kernel {self.kernel.shape} and bias {self.bias.shape} disagree; "
                "expected kernel (in, out) and bias (out,)")
        if self.activation not in SUPPORTED_ACTIVATIONS:
            raise ValueError(f"DenseLayer: activation {self.activation!r} is not one of "
                             f"{SUPPORTED_ACTIVATIONS}")

    def macs_per_row(self) -> int:
        return int(self.kernel.shape[0] * self.kernel.shape[1])


#: Union of every layer kind of a dense chain.
LayerSpec = DenseLayer


@dataclass(frozen=True)
class ModelSpec:
    """A feed-forward chain of layers with concrete weights; ``input_shape`` excludes batch."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]

    def macs(self, batch: int) -> int:
        """Multiply-accumulates of one forward pass (dense: batch * in * out per layer)."""
        return batch * sum(layer.macs_per_row() for layer in self.layers)

    def flops(self, batch: int) -> int:
        """2 * MACs: the usual GEMM convention, ignoring bias and activation work."""
        return 2 * self.macs(batch)


def glorot_uniform_spec(input_dim: int, configs: Sequence[DenseConfig], seed: int = 0) -> ModelSpec:
    """Keras-style initialisation, used when deferc itself is not available (the stand-in)."""
    rng = np.random.default_rng(seed)
    layers, fan_in = [], input_dim
    for cfg in configs:
        limit = np.sqrt(6.0 / (fan_in + cfg.units))
        kernel = rng.uniform(-limit, limit, size=(fan_in, cfg.units)).astype(np.float32)
        layers.append(DenseLayer(kernel, np.zeros(cfg.units, np.float32), cfg.activation))
        fan_in = cfg.units
    return ModelSpec((input_dim,), tuple(layers))


def mlp(input_dim: int, hidden: Sequence[int], outputs: int,
        activation: str = "relu") -> tuple[int, tuple[DenseConfig, ...]]:
    """``(input_dim, configs)`` for hidden layers with ``activation`` and a linear output layer."""
    configs = [DenseConfig(units, activation) for units in hidden]
    configs.append(DenseConfig(outputs, "linear"))
    return input_dim, tuple(configs)
