"""Hand-written NumPy: the simplest correct implementation and the stand-in for ours.

Also provides the sgemm-only baseline (``build_matmul_only``) that W3's GFLOP/s target is
measured against: the speed NumPy's BLAS reaches on exactly the same matmul shapes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..modelspec import DenseLayer, LayerSpec, ModelSpec

NAME = "numpy"
MATMUL_ONLY_NAME = "numpy-sgemm"


def unavailable_reason() -> str | None:
    return None


def version() -> str:
    return np.__version__


def _activate(h: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(h, np.float32(0), out=h)
    if activation == "linear":
        return h
    if activation == "sigmoid":
        with np.errstate(over="ignore"):
            return np.divide(1.0, 1.0 + np.exp(-h), dtype=np.float32)
    if activation == "tanh":
        return np.tanh(h, out=h)
    if activation == "softmax":
        e = np.exp(h - h.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"numpy peer: unsupported activation {activation!r}")


def _dense(layer: DenseLayer) -> Callable[[np.ndarray], np.ndarray]:
    kernel, bias, activation = layer.kernel, layer.bias, layer.activation

    def run(h: np.ndarray) -> np.ndarray:
        out = h @ kernel
        out += bias
        return _activate(out, activation)

    return run


_BUILDERS: dict[type, Callable[[LayerSpec], Callable[[np.ndarray], np.ndarray]]] = {
    DenseLayer: _dense,
}


def build(spec: ModelSpec) -> Callable[[np.ndarray], np.ndarray]:
    """The model as a chain of NumPy closures (float32 throughout)."""
    steps = [_BUILDERS[type(layer)](layer) for layer in spec.layers]

    def run(x: np.ndarray) -> np.ndarray:
        for step in steps:
            x = step(x)
        return x

    return run


def build_matmul_only(spec: ModelSpec) -> Callable[[np.ndarray], np.ndarray]:
    """Just ``x @ W1 @ W2 ...`` in float32: the BLAS ceiling, not the same function as the model."""
    kernels = [layer.kernel for layer in spec.layers]

    def run(x: np.ndarray) -> np.ndarray:
        for kernel in kernels:
            x = x @ kernel
        return x

    return run
