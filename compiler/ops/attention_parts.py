"""``causal_mask`` and ``weight_value``, for attention compositions.

``causal_mask``: Keras' ``use_causal_mask`` triangle as a value, ``keep[i, j] = j <= i``.

The fused attention op applies causality without a mask; a composition that needs it as a value
(``MultiHeadAttention(return_attention_scores=True)``) reads it from this op. Inputs: the query
``(N, Tq, ...)`` and the value ``(N, Tv, ...)``, which only supply the lengths.
"""

from __future__ import annotations

import numpy as np

from ..types import TensorType
from .registry import INJECTIVE, OpDef, register, require_rank


def _rule(inputs, params, attrs, unify) -> TensorType:
    query, value = inputs
    require_rank(query, 2, "causal_mask query")
    require_rank(value, 2, "causal_mask value")
    tq = None if query.shape is None else query.shape[1]
    tv = None if value.shape is None else value.shape[1]
    return TensorType((tq, tv), np.dtype(bool))


def _reference(inputs, params, attrs) -> np.ndarray:
    tq, tv = inputs[0].shape[1], inputs[1].shape[1]
    return np.tril(np.ones((tq, tv), bool))


register(OpDef(
    name="causal_mask", shape_rule=_rule, reference=_reference, kernel="numpy:causal_mask",
    num_inputs=2, traits=frozenset({INJECTIVE}), extras={"primitive": True},
    doc="(Tq, Tv) bool, True where key j <= query i (Keras use_causal_mask)."))


# -- weight_value: a layer's weight read as a value -------------------------------------------
#: the param roles ``weight_value`` may read (the attention projections')
WEIGHT_ROLES = ("query_kernel", "query_bias", "key_kernel", "key_bias", "value_kernel",
                "value_bias", "output_kernel", "output_bias")

def _weight_spec(inputs, attrs) -> dict:
    return {attrs["role"]: (None,) * int(attrs["rank"])}  # sized by the layer's own op


def _weight_rule(inputs, params, attrs, unify) -> TensorType:
    return params[attrs["role"]]


def _weight_reference(inputs, params, attrs) -> np.ndarray:
    return np.asarray(next(iter(params.values())))


register(OpDef(
    name="weight_value", shape_rule=_weight_rule, reference=_weight_reference,
    param_spec=_weight_spec, kernel="weight_value", num_inputs=1,
    traits=frozenset({INJECTIVE}),
    doc="A layer's weight (param role attr `role`, rank `rank`) as a value, for compositions "
        "beside the layer's own op; its data operand only orders it after that op, which sizes "
        "the weight."))
