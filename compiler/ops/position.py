"""``position_embedding``: keras-hub's learned ``PositionEmbedding`` (no layer of core Keras).

It returns the embeddings of positions ``0..T-1`` broadcast to the input's shape (the input
only supplies ``N``, ``T`` and the width); a model adds them to its token features. The weight
``embeddings`` is ``(sequence_length, F)``; a sequence longer than ``sequence_length`` is an
error (checked when the plan binds ``T``, before any kernel reads past the table).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError
from ..symbolic import is_concrete
from ..types import TensorType
from .registry import INJECTIVE, OpDef, register, require_rank


def check_length(steps, sequence_length: int, layer: str = "PositionEmbedding") -> None:
    """Raise ``ShapeError`` when ``steps`` (concrete) exceeds the table."""
    if steps is not None and is_concrete(steps) and steps > sequence_length:
        raise ShapeError(f"{layer}: input axis 1 (sequence length) must be at most "
                         f"sequence_length={sequence_length}, received {steps}")


def position_param_spec(inputs: Sequence[TensorType], attrs) -> dict:
    x = inputs[0]
    width = None if x.shape is None or len(x.shape) < 3 else x.shape[-1]
    return {"embeddings": (attrs["sequence_length"], width)}


def position_shape_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    require_rank(x, 3, "PositionEmbedding (inputs (batch, steps, features))")
    if x.shape is None:
        return x
    check_length(x.shape[1], attrs["sequence_length"])
    table = params["embeddings"].shape
    unify.dims(table[1], x.shape[-1], f"input axis -1 (features; embeddings are {table})")
    return x


def position_reference(inputs, params, attrs) -> np.ndarray:
    x = inputs[0]
    check_length(x.shape[1], attrs["sequence_length"])
    table = params["embeddings"][:x.shape[1]]
    return np.broadcast_to(table.reshape((1, x.shape[1]) + (1,) * (x.ndim - 3) + table.shape[1:]),
                           x.shape).astype(x.dtype)


register(OpDef(
    name="position_embedding",
    shape_rule=position_shape_rule,
    param_spec=position_param_spec,
    reference=position_reference,
    kernel="position_embedding",
    natural_input_rank=3,
    traits=frozenset({INJECTIVE}),
    doc="keras-hub PositionEmbedding: learned embeddings of positions 0..T-1, input-shaped.",
))
