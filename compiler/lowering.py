"""Lowering: a model definition becomes IR nodes (one per layer call, one per parameter).

This is the one place that reads layers; the graph it builds holds names and plain data only
(``Origin``, weight keys, ``ParamInit``), never a layer object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx

from .ir import Origin, add_node, new_graph
from .types import TensorType
from .weights import ParamInit


def weight_key(layer: Any, pname: str) -> str:
    """The qualified name of a layer's weight: ``"dense_1/kernel"``."""
    return f"{layer.name}/{pname}"


def origin_of(layer: Any) -> Origin:
    return Origin(layer.name, type(layer).__name__)


class GraphBuilder:
    """Appends layer calls to a fresh IR graph; one param node per (layer, parameter)."""

    def __init__(self, name: str, dtype):
        self.graph = new_graph(name)
        self.dtype = dtype
        self._params: dict[int, list[int]] = {}

    def input(self, type: TensorType, name: str, expects: tuple | None = None) -> int:
        node = add_node(self.graph, "input", attrs={"name": name}, type=type)
        if expects is not None:
            self.graph.nodes[node]["expects"] = expects
        self.graph.graph["inputs"].append(node)
        return node

    def params(self, layer: Any) -> list[int]:
        """The nodes holding ``layer``'s parameters: created once, shared by all its uses."""
        key = id(layer)
        if key not in self._params:
            self._params[key] = [
                add_node(self.graph, "param", origin=origin_of(layer), param=pname,
                         key=weight_key(layer, pname),
                         init=ParamInit(layer.initializer(pname), layer.dtype),
                         type=TensorType(tuple(shape), self.dtype))
                for pname, shape in layer.param_shapes.items()]
        return self._params[key]

    def call(self, layer: Any, inputs: Sequence[int]) -> int:
        lower_self = getattr(layer, "lower", None)  # traced custom layers and op calls
        if lower_self is not None:
            return lower_self(self, list(inputs))
        params = self.params(layer)
        node = add_node(self.graph, layer.op, list(inputs) + params, attrs=layer.op_attrs(),
                        origin=origin_of(layer))
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
    graph = builder.finish(model._lower_body(builder, nodes))
    # Where the param keys' weights live, like an ONNX graph's initializers: a pipeline run
    # without an explicit store reads (and commits to) this one.
    graph.graph["weights"] = model.weight_store
    return graph
