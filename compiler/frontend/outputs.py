"""Layers with several outputs in a functional graph: a multi-output RNN call, a ``Model`` with
several outputs called as a layer.

The call's first output is the layer's own ``SymbolicTensor``; each further output comes from an
``OutputOf`` stand-in (no weights), which ``Model`` maps back to the layer. Lowering emits the
call once per (layer, inputs, name scope), whichever of its outputs the graph reads first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .layers import Layer


class OutputOf(Layer):
    """Output ``index`` of a multi-output layer call (a state of ``return_state``, the second
    output of a nested model); it lowers through ``owner._lower_output``."""

    def __init__(self, owner: Layer, index: int):
        super().__init__()
        self.owner_layer, self.index = owner, index

    @property
    def name(self) -> str:
        return self.owner_layer.name

    @property
    def param_names(self) -> list[str]:
        return []

    @property
    def param_shapes(self) -> dict:
        return {}

    def lower(self, builder: Any, inputs: list[int]) -> list[int]:
        return [self.owner_layer._lower_output(builder, inputs, self.index)]


def call_memo(builder: Any, layer: Layer, inputs: Sequence[Any]) -> dict:
    """A per-call scratch dict, so the outputs of one call share the nodes that compute them."""
    calls = builder.__dict__.setdefault("_multi_output_calls", {})
    return calls.setdefault((id(layer), tuple(inputs), builder.prefix), {})


def split_outputs(layer: Layer, tensors_type: Sequence[Any], inputs: Sequence[Any]) -> list:
    """The symbolic outputs of one call of a multi-output ``layer``: Keras returns a list."""
    from .functional import SymbolicTensor

    first, *rest = tensors_type
    return [SymbolicTensor(first, layer, inputs)] + [
        SymbolicTensor(t, OutputOf(layer, k), inputs) for k, t in enumerate(rest, start=1)]


def lower_single(builder: Any, layer: Layer, inputs: Sequence[int]) -> int:
    """The node of the one value a functional graph (or a traced ``call``) reads from a call
    of ``layer``: output 0 of a multi-output model, else the layer's only output."""
    if getattr(layer, "is_model", False) and not layer._single_output:
        return layer._lower_output(builder, list(inputs), 0)
    outputs = builder.lower_layer(layer, list(inputs))
    if len(outputs) != 1:
        from ..errors import CompilerError

        raise CompilerError(f"layer '{layer.name}' ({type(layer).__name__}) has "
                            f"{len(outputs)} outputs where one is expected")
    return outputs[0]
