"""``multi_head_attention``: Keras 3 ``MultiHeadAttention`` at inference, as one op.

Weights in Keras' layout: query/key/value kernels ``(dim, heads, key_dim)`` (value:
``value_dim``), biases ``(heads, key_dim)``, output kernel ``(heads, value_dim, out)``, output bias
``(out,)``. The widths of query, value and key come from the inputs (deferred until the first
call); the sequence lengths ``Tq`` and ``Tv`` stay symbolic and may differ.

Inputs, in order: ``query (N, Tq, Dq)``, ``value (N, Tv, Dv)``, then ``key (N, Tv, Dk)`` when
attr ``has_key``, then ``attention_mask (N, Tq, Tv)`` when attr ``has_mask`` (bool, as the
frontend feeds it; another dtype is kept where > 0.5).
Attr ``causal`` lets query ``i`` attend keys ``j <= i`` only (Keras' ``use_causal_mask``). Masked
scores become ``-1e9`` before the softmax, as Keras' ``Softmax`` does, so a fully masked row
averages every value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError
from ..symbolic import format_shape
from ..types import TensorType
from .registry import REDUCTION, OpDef, register, require_rank

#: what Keras' ``Softmax`` writes over masked scores (``_large_negative_number`` for float32+)
MASKED_SCORE = -1e9


def input_roles(attrs) -> list[str]:
    """The names of a node's data inputs, in order."""
    roles = ["query", "value"]
    if attrs.get("has_key"):
        roles.append("key")
    if attrs.get("has_mask"):
        roles.append("attention_mask")
    return roles


def _width(t: TensorType):
    return None if t.shape is None or len(t.shape) != 3 else t.shape[-1]


def mha_param_spec(inputs: Sequence[TensorType], attrs) -> dict:
    heads, dk = attrs["num_heads"], attrs["key_dim"]
    dv = attrs.get("value_dim") or dk
    query = _width(inputs[0]) if inputs else None
    value = _width(inputs[1]) if len(inputs) > 1 else None
    key = (_width(inputs[2]) if len(inputs) > 2 else None) if attrs.get("has_key") else value
    out = attrs.get("output_dim") or query
    use_bias = attrs.get("use_bias", True)
    spec: dict = {}
    for name, width, size in (("query", query, dk), ("key", key, dk), ("value", value, dv)):
        spec[f"{name}_kernel"] = (width, heads, size)
        if use_bias:
            spec[f"{name}_bias"] = (heads, size)
    spec["output_kernel"] = (heads, dv, out)
    if use_bias:
        spec["output_bias"] = (out,)
    return spec


def mha_shape_rule(inputs, params, attrs, unify) -> TensorType:
    roles = input_roles(attrs)
    if len(inputs) != len(roles):
        raise ShapeError(f"MultiHeadAttention: expected inputs {roles}, received "
                         f"{len(inputs)} inputs")
    for role, t in zip(roles, inputs):
        require_rank(t, 3, f"MultiHeadAttention {role}", exact=True)
    shapes = {role: t.shape for role, t in zip(roles, inputs)}
    query = shapes["query"]
    out_dim = params["output_kernel"].shape[2]
    if query is None:
        return inputs[0].with_shape((None, None, out_dim))
    batch, tq = query[0], query[1]
    tv = shapes["value"][1] if shapes["value"] is not None else None
    for role in roles[1:]:
        shape = shapes[role]
        if shape is None:
            continue
        batch = unify.dims(batch, shape[0], f"{role} axis 0 (batch; query is "
                                            f"{format_shape(query)})")
        if role == "attention_mask":
            unify.dims(tq, shape[1], f"attention_mask axis 1 (query steps; query is "
                                     f"{format_shape(query)})")
            tv = unify.dims(tv, shape[2], "attention_mask axis 2 (value steps)")
        else:
            tv = unify.dims(tv, shape[1], f"{role} axis 1 (steps; value is "
                                          f"{format_shape(shapes['value'])})")
    for role in ("query", "value", "key"):
        source = role if role in shapes else "value"
        if shapes[source] is not None:
            kernel = params[f"{role}_kernel"].shape
            unify.dims(kernel[0], shapes[source][2],
                       f"{source} axis 2 (features; {role} kernel is {format_shape(kernel)})")
    return inputs[0].with_shape((batch, unify.resolve(tq), out_dim))


def project(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``einsum("btd,dhk->bthk") + bias``: Keras' EinsumDense for the input projections."""
    y = np.einsum("btd,dhk->bthk", x.astype(np.float64), kernel)
    return y if bias is None else y + bias


def mha_reference(inputs, params, attrs) -> np.ndarray:
    """Keras' ``MultiHeadAttention.call`` without dropout, in float64."""
    named = dict(zip(input_roles(attrs), inputs))
    query, value = named["query"], named["value"]
    key = named.get("key", value)
    q = project(query, params["query_kernel"], params.get("query_bias"))
    k = project(key, params["key_kernel"], params.get("key_bias"))
    v = project(value, params["value_kernel"], params.get("value_bias"))
    q = q / np.sqrt(float(attrs["key_dim"]))
    scores = np.einsum("bthk,bshk->bhts", q, k)
    keep = np.ones(scores.shape, bool)
    if "attention_mask" in named:
        keep &= (named["attention_mask"] > 0.5)[:, None]
    if attrs.get("causal"):
        tq, tv = scores.shape[-2:]
        keep &= np.tril(np.ones((tq, tv), bool))
    if scores.shape[-1] == 0:  # no keys: nothing to attend, a zero context (as the kernel)
        scores = np.zeros(scores.shape[:-1] + (1,))
        keep = np.zeros(scores.shape, bool)
        v = np.zeros(v.shape[:1] + (1,) + v.shape[2:])
    with np.errstate(invalid="ignore", over="ignore"):
        scores = np.where(keep, scores, MASKED_SCORE)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
    context = np.einsum("bhts,bshk->bthk", probs, v)
    out = np.einsum("bthk,hko->bto", context, params["output_kernel"])
    if "output_bias" in params:
        out = out + params["output_bias"]
    return out.astype(query.dtype)


register(OpDef(
    name="multi_head_attention",
    shape_rule=mha_shape_rule,
    param_spec=mha_param_spec,
    reference=mha_reference,
    kernel="multi_head_attention",
    num_inputs=None,
    min_inputs=2,
    natural_input_rank=3,
    traits=frozenset({REDUCTION}),
    doc="Keras MultiHeadAttention: projections, scaled dot-product attention per head, output.",
))
