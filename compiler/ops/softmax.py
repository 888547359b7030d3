"""``softmax`` along any axis (Keras ``Softmax(axis=k)``).

The ``activation`` op covers the last axis; this op exists for the others (and for ``axis=-1``
written explicitly). NaN in a slice makes the whole slice NaN, as the NumPy definition does.
"""

from __future__ import annotations

import numpy as np

from ..types import TensorType
from .merge import normalize_axis
from .registry import REDUCTION, OpDef, register, require_rank


def softmax_shape_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    require_rank(x, 1, "Softmax")
    if x.shape is not None:
        normalize_axis(attrs.get("axis", -1), len(x.shape), "Softmax")
    return x


def softmax_reference(inputs, params, attrs) -> np.ndarray:
    x = inputs[0]
    axis = attrs.get("axis", -1)
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        e = np.exp(shifted)
        return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype)


register(OpDef(
    name="softmax",
    shape_rule=softmax_shape_rule,
    reference=softmax_reference,
    kernel="softmax",
    traits=frozenset({REDUCTION}),
    doc="Softmax along `axis` (default -1).",
))
