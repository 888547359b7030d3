"""keras-hub ``PositionEmbedding``: positions ``0..T-1`` of the table, broadcast over the batch."""

from __future__ import annotations

from compiler.ops.position import check_length

from .registry import Kernel, register_kernel


def position_embedding(x, embeddings, out, sequence_length):
    """``out[n, t] = embeddings[t]``; a longer sequence than the table is refused, never read."""
    steps = x.shape[1]
    check_length(steps, sequence_length)
    out[...] = embeddings[:steps].reshape((1, steps) + (1,) * (x.ndim - 3) + embeddings.shape[1:])


register_kernel(Kernel("position_embedding", position_embedding,
                       lambda attrs, shapes, out: (int(attrs["sequence_length"]),),
                       param_names=("embeddings",)))
