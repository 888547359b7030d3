"""``MultiHeadAttention``'s masks and attention scores as IR (Keras 3's ``call``).

Keras merges every mask of a call into one ``(N, Tq, Tv)`` boolean (``_compute_attention_mask``):
the query's propagated mask as ``(N, Tq, 1)``, the value's and the key's as ``(N, 1, Tv)``, the
user's ``attention_mask`` (any shape broadcastable to ``(N, Tq, Tv)``, nonzero = keep), ANDed.
Masked scores become ``-1e9``. A row with nothing to attend then averages every value on Keras'
inference path (``ops.dot_product_attention``), while its explicit path (taken with
``return_attention_scores``) zeros the masked probabilities, so that row's context is zero.

Here the merge is a handful of primitive nodes feeding the fused attention op's
``attention_mask`` operand as bool (no float copy of the ``(N, Tq, Tv)`` mask).
``return_attention_scores=True`` keeps the fused op for the output (plus a ``where`` giving
empty rows the output bias) and builds the scores from primitives beside it (projections as
matmuls on ``weight_value`` reads, softmax, the causal triangle from ``causal_mask``), since the
fused kernel never stores them. Calls without masks or scores keep the single fused node.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import add_node
from .masking import mask_node


def _node(builder: Any, layer: Any, op: str, operands: list, **attrs: Any) -> int:
    return add_node(builder.graph, op, operands, attrs=attrs, origin=builder.origin(layer))


def _keep_bool(builder: Any, layer: Any, value: int) -> int:
    """``value != 0`` (Keras casts every mask to bool)."""
    zero = _node(builder, layer, "constant", [], value=0)
    return _node(builder, layer, "not_equal", [value, zero])


def _axis_true(builder: Any, layer: Any, x: int, axis: int) -> int:
    """All-true ``(N, T, 1)`` (``axis=-1``) or ``(N, 1, T)`` (``axis=-2``) from ``x``'s first two
    axes: what a missing mask contributes to the full ``(N, Tq, Tv)`` shape. Element-wise on
    one feature (``x == x or x != x`` holds for NaN too), so it exports without shape ops."""
    first = _node(builder, layer, "slice", [x], start=(0, 0, 0), shape=(-1, -1, 1))
    true = _node(builder, layer, "logical_or", [_node(builder, layer, "equal", [first, first]),
                                                _node(builder, layer, "not_equal",
                                                      [first, first])])
    return true if axis == -1 else _node(builder, layer, "transpose", [true], axes=(0, 2, 1))


def merged_mask(builder: Any, layer: Any, query: int, value: int, key: int | None,
                user_mask: int | None, causal: bool, explicit: dict | None = None
                ) -> int | None:
    """The ``(N, Tq, Tv)`` bool keep mask of one call, or ``None`` when nothing masks.

    ``causal`` is ANDed in only when the caller asks (the fused op applies it itself).
    ``explicit`` maps ``"value_mask"``/``"key_mask"`` to the call's own ``(N, Tv)`` masks, which
    replace what ``value``/``key`` propagate (Keras fills a ``*_mask`` argument only when the
    caller left it out)."""
    parts = []
    explicit = explicit or {}
    q_mask = mask_node(builder, query)
    if q_mask is not None:
        parts.append(_node(builder, layer, "expand_dims", [_keep_bool(builder, layer, q_mask)],
                           axis=-1))
    for name, source in (("value_mask", value), ("key_mask", key)):
        m = explicit.get(name)
        if m is None and source is not None:
            m = mask_node(builder, source)
        if m is not None:
            parts.append(_node(builder, layer, "expand_dims", [_keep_bool(builder, layer, m)],
                               axis=-2))
    if user_mask is not None:
        parts.append(_keep_bool(builder, layer, user_mask))
    if causal:
        parts.append(_node(builder, layer, "causal_mask", [query, value]))
    if not parts:
        return None
    # the full (N, Tq, Tv) shape, whatever the parts broadcast to
    parts += [_axis_true(builder, layer, query, -1), _axis_true(builder, layer, value, -2)]
    keep = parts[0]
    for part in parts[1:]:
        keep = _node(builder, layer, "logical_and", [keep, part])
    return keep


def _fallback(builder: Any, layer: Any, params: dict, out: int) -> int:
    """What a row with nothing to attend outputs: the output bias (or 0)."""
    if "output_bias" in params:
        return _node(builder, layer, "weight_value", [out, params["output_bias"]],
                     role="output_bias", rank=1)
    return _node(builder, layer, "constant", [], value=0.0, dtype=str(np.dtype(builder.dtype)))


def _any_kept(builder: Any, layer: Any, keep: int, dtype: Any) -> int:
    """``(N, Tq, 1)`` bool: the query row attends at least one key."""
    kept = _node(builder, layer, "cast", [keep], dtype=str(np.dtype(dtype)))
    return _keep_bool(builder, layer, _node(builder, layer, "max", [kept], axis=-1,
                                            keepdims=True))


def lower_fused(layer: Any, builder: Any, inputs: list[int], zero_empty_rows: bool = False
                ) -> list[int]:
    """The fused op, fed the merged mask when the call has any. A row with nothing to attend
    averages every value, as Keras' inference path (``ops.dot_product_attention``) does;
    ``zero_empty_rows`` gives it a zero context instead, as Keras' explicit path (taken with
    ``return_attention_scores``) does."""
    has_key, has_mask, causal = layer._call_form
    named = dict(zip(layer.input_slots(), inputs))
    query, value = inputs[0], inputs[1]
    key = named.get("key")
    keep = merged_mask(builder, layer, query, value, key if key != value else None,
                       named.get("attention_mask"), causal=False, explicit=named)
    if keep is None:
        out = builder.call(layer, inputs)
    else:
        params = dict(zip(layer.param_names, builder.params(layer)))
        attrs = {**layer.op_attrs(), "has_mask": True}
        operands = [query, value] + ([named["key"]] if has_key else []) + [keep]
        out = add_node(builder.graph, layer.op, operands + list(params.values()), attrs=attrs,
                       origin=builder.origin(layer))
        if zero_empty_rows:
            out = _node(builder, layer, "where", [_any_kept(builder, layer, keep, builder.dtype),
                                                  out, _fallback(builder, layer, params, out)])
    _pass_query_mask(builder, query, out)
    return [out]


def _pass_query_mask(builder: Any, query: int, out: int) -> None:
    """Keras: the output carries the query's mask."""
    if query in builder.masks:
        builder.masks.setdefault(out, builder.masks[query])


def lower_with_scores(layer: Any, builder: Any, inputs: list[int]) -> tuple[int, int]:
    """``(output, scores)``: the output from the fused op (as ``lower_fused``), the scores
    ``(N, H, Tq, Tv)`` from primitives — Keras' projections, masked softmax, masked
    probabilities zeroed — reading the layer's weights after the fused op sized them."""
    has_key, has_mask, causal = layer._call_form
    named = dict(zip(layer.input_slots(), inputs))
    query, value = inputs[0], inputs[1]
    key = named.get("key", value)
    (out,) = lower_fused(layer, builder, inputs, zero_empty_rows=True)
    params = dict(zip(layer.param_names, builder.params(layer)))
    heads, dk = layer.num_heads, layer.key_dim

    def weight(name: str, rank: int) -> int:
        return _node(builder, layer, "weight_value", [out, params[name]], role=name, rank=rank)

    def project(x: int, name: str, perm: tuple) -> int:
        kernel = _node(builder, layer, "reshape_dims", [weight(f"{name}_kernel", 3)],
                       shape=(0, -1))
        y = _node(builder, layer, "matmul", [x, kernel])
        if f"{name}_bias" in params:
            bias = _node(builder, layer, "reshape_dims", [weight(f"{name}_bias", 2)],
                         shape=(-1,))
            y = _node(builder, layer, "add", [y, bias])
        y = _node(builder, layer, "reshape_dims", [y], shape=(0, 0, heads, dk))
        return _node(builder, layer, "transpose", [y], axes=perm)

    q = project(query, "query", (0, 2, 1, 3))    # (N, H, Tq, dk)
    k = project(key, "key", (0, 2, 3, 1))        # (N, H, dk, Tv)
    dtype = str(np.dtype(builder.dtype))
    scale = _node(builder, layer, "constant", [], value=float(1.0 / np.sqrt(float(dk))),
                  dtype=dtype)
    scores = _node(builder, layer, "matmul", [_node(builder, layer, "multiply", [q, scale]), k])
    keep = merged_mask(builder, layer, query, value, key if has_key and key != value else None,
                       named.get("attention_mask"), causal, explicit=named)
    if keep is None:
        return out, _node(builder, layer, "softmax", [scores], axis=-1)
    keep4 = _node(builder, layer, "expand_dims", [keep], axis=1)
    masked = _node(builder, layer, "constant", [], value=-1e9, dtype=dtype)
    probs = _node(builder, layer, "softmax", [_node(builder, layer, "where",
                                                    [keep4, scores, masked])], axis=-1)
    zero = _node(builder, layer, "constant", [], value=0.0, dtype=dtype)
    return out, _node(builder, layer, "where", [keep4, probs, zero])
