"""Sequence layers without recurrence: ``Embedding``, ``Masking`` and the 1-D global poolings.

``Embedding(mask_zero=True)`` and ``Masking`` attach a mask to their output (``masking.py``);
``GlobalAveragePooling1D`` averages over the unmasked steps only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CompilerError
from ..ir import add_node
from . import initializers
from .layers import Layer, _flag, _positive_int
from .masking import mask_node, set_mask


def _node_with_name(builder: Any, layer: Layer, inputs: list[int]) -> int:
    node = builder.call(layer, inputs)
    builder.graph.nodes[node]["attrs"]["layer"] = builder.origin(layer).name
    return node


class Embedding(Layer):
    """Rows of an ``(input_dim, output_dim)`` table at integer indices (any rank).

    Indices arrive as int32/int64 or as floats holding exact integers (today every input is
    cast to the model dtype); an index outside ``[0, input_dim)`` raises
    ``IndexOutOfRangeError`` naming the layer, the index and ``input_dim``.
    """

    op = "embedding"

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 mask_zero: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.input_dim = _positive_int(input_dim, "input_dim", "Embedding")
        self.output_dim = _positive_int(output_dim, "output_dim", "Embedding")
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.mask_zero = _flag(mask_zero, "mask_zero", "Embedding")

    def op_attrs(self) -> dict:
        return {"input_dim": self.input_dim, "output_dim": self.output_dim}

    def initializer(self, param: str) -> initializers.Initializer:
        return {"embeddings": self.embeddings_initializer}[param]

    def lower(self, builder: Any, inputs: list[int]) -> list[int]:
        node = _node_with_name(builder, self, inputs)
        if self.mask_zero:
            set_mask(builder, node, inputs[0], builder.origin(self))
        return [node]

    def get_config(self) -> dict:
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim, "mask_zero": self.mask_zero,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer)}


class Masking(Layer):
    """Skips the steps whose features all equal ``mask_value``: zeroes them and attaches a
    mask that later RNNs and poolings honour."""

    op = "masking"
    supports_masking = True

    def __init__(self, mask_value: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float, np.number)):
            raise CompilerError(f"Masking: mask_value must be a number, received {mask_value!r}")
        self.mask_value = float(mask_value)

    def op_attrs(self) -> dict:
        return {"mask_value": self.mask_value}

    def lower(self, builder: Any, inputs: list[int]) -> list[int]:
        node = builder.call(self, inputs)
        set_mask(builder, node, inputs[0], builder.origin(self), self.mask_value,
                 reduce_last=True)
        return [node]

    def get_config(self) -> dict:
        return {**super().get_config(), "mask_value": self.mask_value}


class GlobalAveragePooling1D(Layer):
    """Mean over the steps of ``(N, T, C)``; with a mask, over the unmasked steps only."""

    op = "global_avg_pool1d"

    def __init__(self, keepdims: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.keepdims = _flag(keepdims, "keepdims", type(self).__name__)

    def op_attrs(self) -> dict:
        return {"keepdims": self.keepdims}

    def lower(self, builder: Any, inputs: list[int]) -> list[int]:
        mask = mask_node(builder, inputs[0]) if len(inputs) == 1 else None
        if mask is None:
            return [builder.call(self, inputs)]
        node = add_node(builder.graph, self.op, [inputs[0], mask] + builder.params(self),
                        attrs={**self.op_attrs(), "masked": True}, origin=builder.origin(self))
        return [node]

    def get_config(self) -> dict:
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalMaxPooling1D(GlobalAveragePooling1D):
    """Max over the steps; like Keras 3, it ignores a mask."""

    op = "global_max_pool1d"

    def lower(self, builder: Any, inputs: list[int]) -> list[int]:
        return [builder.call(self, inputs)]
