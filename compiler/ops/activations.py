"""Activation functions: the NumPy definitions every kernel is checked against.

``ACTIVATIONS`` maps a Keras name to its reference; ``Dense(activation=...)``, ``Conv2D`` and the
``activation`` op all look names up here, so an activation is defined once.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CompilerError
from ..types import TensorType
from .registry import AS_ACTIVATION, ELEMENTWISE, INJECTIVE, OpDef, register

LEAKY_RELU_DEFAULT_SLOPE = 0.2  # Keras 3 / tf.nn.leaky_relu default

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)  # initial: empty rows
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def _gelu(x: np.ndarray) -> np.ndarray:
    # Exact (erf) GELU, Keras' default ``approximate=False``.
    return (0.5 * x * (1.0 + _erf(x.astype(np.float64) / math.sqrt(2.0)))).astype(x.dtype)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype)


ACTIVATIONS = {
    "linear": lambda x, **_: x,
    "relu": lambda x, **_: np.maximum(x, x.dtype.type(0)),
    # ONNX Clip(0, 6) (MobileNet): one epilogue instead of a relu and a ``minimum`` pass
    "relu6": lambda x, **_: np.minimum(np.maximum(x, x.dtype.type(0)), x.dtype.type(6)),
    "sigmoid": lambda x, **_: _sigmoid(x),
    "tanh": lambda x, **_: np.tanh(x),
    "gelu": lambda x, **_: _gelu(x),
    "softmax": lambda x, **_: _softmax(x, -1),
    "leaky_relu": lambda x, alpha=LEAKY_RELU_DEFAULT_SLOPE, **_: np.where(
        x >= 0, x, (x * x.dtype.type(alpha))).astype(x.dtype),
}


def canonical_activation(name) -> str:
    """Map ``None``/``"linear"``/Keras names to a canonical name; reject unknown ones."""
    if name is None:
        return "linear"
    if callable(name) and getattr(name, "__name__", None) in ACTIVATIONS:
        return name.__name__
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise CompilerError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return name.lower()


def apply_activation(x: np.ndarray, name: str, alpha: float = LEAKY_RELU_DEFAULT_SLOPE):
    with np.errstate(invalid="ignore", over="ignore"):
        return ACTIVATIONS[name](x, alpha=alpha)


def _same_type(inputs, params, attrs, unify) -> TensorType:
    return inputs[0]


def _activation_reference(inputs, params, attrs):
    return apply_activation(inputs[0], attrs["activation"], attrs.get("alpha",
                                                                       LEAKY_RELU_DEFAULT_SLOPE))


register(OpDef(
    name="activation",
    shape_rule=_same_type,
    reference=_activation_reference,
    kernel="activation",
    elementwise=True,
    traits=frozenset({AS_ACTIVATION}),
    doc="An elementwise activation (softmax: over the last axis).",
))


def _identity_reference(inputs, params, attrs):
    return inputs[0]


register(OpDef(
    name="identity",
    shape_rule=_same_type,
    reference=_identity_reference,
    kernel="identity",
    traits=frozenset({ELEMENTWISE, INJECTIVE}),
    doc="Passes its input through (Dropout at inference).",
))


def _chain_reference(inputs, params, attrs):
    x = inputs[0]
    for name, alpha in attrs["chain"]:
        x = apply_activation(x, name, alpha)
    return x


register(OpDef(
    name="activation_chain",
    shape_rule=_same_type,
    reference=_chain_reference,
    kernel="activation_chain",
    elementwise=True,
    traits=frozenset({AS_ACTIVATION}),
    doc="Several elementwise activations applied in one pass (made by the fuse pass).",
))
