"""Lowering: a model definition becomes IR nodes (one per layer call, one per parameter)."""

from __future__ import annotations

from typing import Any, Sequence

import networkx as nx

from .ir import add_node, new_graph
from .types import TensorType


class GraphBuilder:
    """Appends layer calls to a fresh IR graph; one param node per (layer, parameter)."""

    def __init__(self, name: str, dtype):
        self.graph = new_graph(name)
        self.dtype = dtype
        self._params: dict[tuple[int, str], int] = {}

    def input(self, type: TensorType, name: str, expects: tuple | None = None) -> int:
        node = add_node(self.graph, "input", attrs={"name": name}, type=type)
        if expects is not None:
            self.graph.nodes[node]["expects"] = expects
        self.graph.graph["inputs"].append(node)
        return node

    def param(self, layer: Any, pname: str) -> int:
        """The node holding ``layer``'s parameter ``pname``: created once, shared by all uses."""
        key = (id(layer), pname)
        if key not in self._params:
            shape = layer.param_shapes[pname]
            self._params[key] = add_node(self.graph, "param", layer=layer, param=pname,
                                         type=TensorType(tuple(shape), self.dtype))
        return self._params[key]

    def call(self, layer: Any, inputs: Sequence[int]) -> int:
        params = [self.param(layer, p) for p in layer.param_names]
        node = add_node(self.graph, layer.op, list(inputs) + params, attrs=layer.op_attrs(),
                        layer=layer)
        if layer._declared_input is not None:
            self.graph.nodes[node]["expects"] = layer._declared_input
        return node

    def finish(self, outputs: Sequence[int]) -> nx.DiGraph:
        self.graph.graph["outputs"] = list(outputs)
        return self.graph


def lower(model: Any, input_types: Sequence[TensorType]) -> nx.DiGraph:
    """The IR of ``model`` applied to inputs of ``input_types`` (types may be partial)."""
    builder = GraphBuilder(model.name, model.dtype)
    nodes = [builder.input(t, name, expects)
             for t, name, expects in zip(input_types, model.input_names, model.declared_inputs)]
    return builder.finish(model._lower_body(builder, nodes))
