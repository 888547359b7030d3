"""Sequence ops: ``embedding`` (bounds-checked gather), the mask ops ``sequence_mask`` and
``masking``, and the 1-D global poolings (mask-aware average).

A *mask* is an ordinary IR value ``(N, T)`` holding 1 (keep the step) or 0 (skip it), in the
model dtype until per-value dtypes land; ops that honour a mask read it as their last data
operand and say so with ``attrs["masked"] = True`` (see ``compiler/frontend/masking.py``).
"""

from __future__ import annotations

import numpy as np

from ..errors import CompilerError, ShapeError
from ..symbolic import format_shape
from ..types import TensorType
from .registry import INJECTIVE, REDUCTION, OpDef, register, require_rank


class IndexOutOfRangeError(CompilerError, IndexError):
    """An embedding index outside ``[0, input_dim)`` (or not an integer)."""


def check_indices(idx: np.ndarray, input_dim: int, where: str) -> np.ndarray:
    """The indices as int64, or ``IndexOutOfRangeError`` naming the first bad one."""
    flat = np.asarray(idx).reshape(-1)
    if flat.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~((flat >= 0) & (flat < input_dim) & (np.floor(flat) == flat))
    else:
        bad = (flat < 0) | (flat >= input_dim)
    if bad.any():
        pos = int(np.argmax(bad))
        raise_bad_index(where, flat[pos], pos, input_dim, idx.shape)
    return flat.astype(np.int64).reshape(np.shape(idx))


def raise_bad_index(where: str, value, position: int, input_dim: int, shape) -> None:
    at = np.unravel_index(position, shape) if len(shape) else ()
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and np.isfinite(value) and value == int(value):
        value = int(value)  # an integer that arrived as a float (inputs are cast today)
    raise IndexOutOfRangeError(
        f"{where}: index {value!r} at position {tuple(int(i) for i in at)} of the input "
        f"{format_shape(tuple(shape))} is out of range: expected an integer in [0, {input_dim})"
        f" (input_dim={input_dim})")


def _where(attrs) -> str:
    return f"layer '{attrs['layer']}' (Embedding)" if attrs.get("layer") else "Embedding"


# -- embedding -----------------------------------------------------------------------------------
def embedding_param_spec(inputs, attrs) -> dict:
    return {"embeddings": (attrs["input_dim"], attrs["output_dim"])}


def embedding_shape_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    if x.shape is None:
        return x.with_shape(None)
    return x.with_shape(tuple(unify.resolve(d) for d in x.shape) + (attrs["output_dim"],))


def embedding_reference(inputs, params, attrs) -> np.ndarray:
    table = params["embeddings"]
    idx = check_indices(inputs[0], attrs["input_dim"], _where(attrs))
    return table[idx].astype(table.dtype, copy=False)


register(OpDef(
    name="embedding",
    shape_rule=embedding_shape_rule,
    param_spec=embedding_param_spec,
    reference=embedding_reference,
    kernel="embedding",
    natural_input_rank=2,
    traits=frozenset({INJECTIVE}),
    extras={"index_operands": (0,)},
    doc="Rows of the (input_dim, output_dim) table at integer indices (any rank), "
        "bounds-checked.",
))


# -- masks ---------------------------------------------------------------------------------------
def sequence_mask_shape_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    if x.shape is None or not attrs.get("reduce_last", False):
        return x
    require_rank(x, 2, "Masking")
    return x.with_shape(x.shape[:-1])


def sequence_mask_reference(inputs, params, attrs) -> np.ndarray:
    x = inputs[0]
    keep = x != attrs.get("mask_value", 0.0)
    if attrs.get("reduce_last", False):
        keep = keep.any(axis=-1)
    return keep.astype(x.dtype)


register(OpDef(
    name="sequence_mask",
    shape_rule=sequence_mask_shape_rule,
    reference=sequence_mask_reference,
    kernel="sequence_mask",
    natural_input_rank=2,
    extras={"index_operands": (0,)},
    traits=frozenset({REDUCTION}),
    doc="1 where x != mask_value (reduce_last: anywhere along the last axis), else 0.",
))


def masking_shape_rule(inputs, params, attrs, unify) -> TensorType:
    require_rank(inputs[0], 2, "Masking")
    return inputs[0]


def masking_reference(inputs, params, attrs) -> np.ndarray:
    x = inputs[0]
    keep = (x != attrs.get("mask_value", 0.0)).any(axis=-1, keepdims=True)
    return np.where(keep, x, 0).astype(x.dtype)


register(OpDef(
    name="masking",
    shape_rule=masking_shape_rule,
    reference=masking_reference,
    kernel="masking",
    natural_input_rank=3,
    traits=frozenset({REDUCTION}),
    doc="Keras Masking's output: steps whose features all equal mask_value become 0.",
))


# -- 1-D global pooling --------------------------------------------------------------------------
def _global1d_shape_rule(layer: str):
    def rule(inputs, params, attrs, unify) -> TensorType:
        x = inputs[0]
        require_rank(x, 3, layer, exact=True)
        if len(inputs) > 1 + bool(attrs.get("masked")):
            raise ShapeError(f"{layer} takes 1 input (and its mask), received {len(inputs)}")
        if len(inputs) > 1 and x.shape is not None and inputs[1].shape is not None:
            unify.shapes(x.shape[:2], inputs[1].shape, f"{layer} mask")
        if x.shape is None:
            return x
        n, c = unify.resolve(x.shape[0]), x.shape[2]
        return x.with_shape((n, 1, c) if attrs.get("keepdims", False) else (n, c))
    return rule


def global_avg_pool1d_reference(inputs, params, attrs) -> np.ndarray:
    x = inputs[0]
    keepdims = attrs.get("keepdims", False)
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if attrs.get("masked") and len(inputs) > 1:
            m = (inputs[1] != 0)[:, :, None]
            y = np.where(m, x64, 0).sum(axis=1, keepdims=keepdims) / \
                m.sum(axis=1, keepdims=keepdims)
        else:
            y = x64.mean(axis=1, keepdims=keepdims)
    return y.astype(x.dtype)


def global_max_pool1d_reference(inputs, params, attrs) -> np.ndarray:
    x = inputs[0]
    with np.errstate(invalid="ignore"):
        return np.max(x, axis=1, keepdims=attrs.get("keepdims", False)).astype(x.dtype)


register(OpDef(
    name="global_avg_pool1d",
    shape_rule=_global1d_shape_rule("GlobalAveragePooling1D"),
    reference=global_avg_pool1d_reference,
    kernel="global_avg_pool1d",
    num_inputs=None,
    min_inputs=1,
    natural_input_rank=3,
    traits=frozenset({REDUCTION}),
    doc="Mean over the steps of (N, T, C); with a mask, over the unmasked steps only "
        "(all masked: NaN, as Keras' 0/0).",
))
register(OpDef(
    name="global_max_pool1d",
    shape_rule=_global1d_shape_rule("GlobalMaxPooling1D"),
    reference=global_max_pool1d_reference,
    kernel="global_max_pool1d",
    natural_input_rank=3,
    traits=frozenset({REDUCTION}),
    doc="Max over the steps of (N, T, C) (NaN propagates; like Keras 3, ignores masks).",
))

