"""Lowering: a model definition becomes IR nodes (one or more per layer call, one per parameter).

This is the one place that reads layers; the graph it builds holds names and plain data only
(``Origin``, weight keys, ``ParamInit``), never a layer object. Each layer lowers itself through
``layer.lower(builder, inputs) -> outputs``: a plain layer emits one node, a nested model emits
its whole body under a name scope (``"block/dense"``), so weights are keyed by their path in the
outermost model (``"block/dense/kernel"``), and a custom layer emits the primitive nodes its
traced ``call`` recorded (``frontend/tracing.py``; its weights: ``GraphBuilder.weight``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import networkx as nx

from .ir import Origin, add_node, new_graph
from .types import TensorType
from .weights import ParamInit


def weight_key(layer: Any, pname: str, prefix: str = "") -> str:
    """The qualified name of a layer's weight: ``"dense_1/kernel"`` (nested: ``"block/..."``)."""
    return f"{prefix}{layer.name}/{pname}"


def weight_entries(model: Any) -> list[tuple[str, Any, str]]:
    """Every weight of ``model`` once, in Keras order: ``(key, layer, parameter)``.

    Nested models, and layers held by a custom layer, contribute their weights under their
    owner's name (``"block/dense/kernel"``); the top-level model's own name is not a prefix.
    A weight reachable twice (a tied layer, an inner model used at several places) is listed
    at its first occurrence only.
    """
    out: list = []
    seen: set = set()

    def walk(layers: Any, prefix: str) -> None:
        for layer in layers:
            if getattr(layer, "is_model", False):
                walk(layer.layers, f"{prefix}{layer.name}/")
                continue
            for pname in layer.param_names:
                var = layer.variable(pname)
                if id(var) not in seen:
                    seen.add(id(var))
                    out.append((weight_key(layer, pname, prefix), layer, pname))
            if layer._traced:  # a custom layer's own layers: "my_block/dense/kernel"
                walk(layer._sublayers(), f"{prefix}{layer.name}/")

    walk(model.layers, "")
    return out


def origin_of(layer: Any, prefix: str = "") -> Origin:
    return Origin(prefix + layer.name, type(layer).__name__)


class GraphBuilder:
    """Appends layer calls to a fresh IR graph; one param node per (layer, parameter).

    ``keys`` maps each variable (by id) to its key in the model being lowered, so a weight
    reached through several paths is one param node with one name.
    """

    def __init__(self, name: str, dtype, keys: dict[int, str] | None = None):
        self.graph = new_graph(name)
        self.dtype = dtype
        self.keys = dict(keys or {})
        self.prefix = ""
        #: Output nodes of each top-level layer's first call (for reports such as ``summary``).
        self.layer_outputs: dict[str, list[int]] = {}
        self._params: dict[int, list[int]] = {}
        self._weights: dict[tuple[int, str], int] = {}
        #: value node -> its time-step mask (``frontend/masking.py``: emitted on first use)
        self.masks: dict[int, Any] = {}
        #: set once a custom layer is traced (its first call may have declared weights)
        self.traced = False

    def input(self, type: TensorType, name: str, expects: tuple | None = None) -> int:
        node = add_node(self.graph, "input", attrs={"name": name}, type=type)
        if expects is not None:
            self.graph.nodes[node]["expects"] = expects
        self.graph.graph["inputs"].append(node)
        return node

    @contextlib.contextmanager
    def scope(self, layer: Any) -> Iterator[None]:
        """Lower a nested model's body under its name: origins and fallback keys get a prefix."""
        saved = self.prefix
        self.prefix = f"{saved}{layer.name}/"
        try:
            yield
        finally:
            self.prefix = saved

    def origin(self, layer: Any) -> Origin:
        return origin_of(layer, self.prefix)

    def params(self, layer: Any) -> list[int]:
        """The nodes holding ``layer``'s parameters: created once, shared by all its uses."""
        key = id(layer)
        if key not in self._params:
            self._params[key] = [
                add_node(self.graph, "param", origin=self.origin(layer), param=pname,
                         key=self.keys.get(id(layer.variable(pname)))
                         or weight_key(layer, pname, self.prefix),
                         init=ParamInit(layer.initializer(pname), layer.dtype),
                         type=TensorType(tuple(shape), self.dtype))
                for pname, shape in layer.param_shapes.items()]
        return self._params[key]

    def weight(self, layer: Any, pname: str, shape: Sequence[int], initializer: Any) -> int:
        """The param node of a custom layer's weight ``pname`` (declared by ``add_weight``):
        role ``"value"``, the weight's name in attribute ``weight``; one node per weight."""
        key = (id(layer), pname)
        if key not in self._weights:
            self._weights[key] = add_node(
                self.graph, "param", origin=self.origin(layer), param="value", weight=pname,
                key=self.keys.get(id(layer.variable(pname))) or weight_key(layer, pname,
                                                                          self.prefix),
                init=ParamInit(initializer, layer.dtype),
                type=TensorType(tuple(shape), self.dtype))
        return self._weights[key]

    def call(self, layer: Any, inputs: Sequence[int]) -> int:
        """One node for one call of a primitive layer (``Layer.lower``'s default)."""
        params = self.params(layer)
        node = add_node(self.graph, layer.op, list(inputs) + params, attrs=layer.op_attrs(),
                        origin=self.origin(layer))
        if layer._declared_input is not None:
            self.graph.nodes[node]["expects"] = layer._declared_input
        return node

    def expect(self, layer: Any, node: int, declared: tuple | None) -> int:
        """An identity node checking that ``node`` fits ``layer``'s declared input shape
        (removed by ``remove_identities`` once shapes are checked)."""
        if declared is None:
            return node
        out = add_node(self.graph, "identity", [node], origin=self.origin(layer))
        self.graph.nodes[out]["expects"] = declared
        return out

    def lower_layer(self, layer: Any, inputs: Sequence[int]) -> list[int]:
        """Lower one call of ``layer`` (which may emit several nodes); returns its outputs."""
        mask = self.masks.get(inputs[0]) if len(inputs) == 1 and self.masks else None
        outputs = list(layer.lower(self, list(inputs)))
        if mask is not None and len(outputs) == 1 and getattr(layer, "supports_masking", False):
            self.masks.setdefault(outputs[0], mask)  # Keras: a masking-aware layer passes it on
        if not self.prefix:
            self.layer_outputs.setdefault(layer.name, outputs)
        return outputs

    def finish(self, outputs: Sequence[int]) -> nx.DiGraph:
        self.graph.graph["outputs"] = list(outputs)
        self.graph.graph["dtype"] = str(self.dtype)  # what layer ops and weights compute in
        return self.graph


def lower(model: Any, input_types: Sequence[TensorType],
          layer_outputs: dict | None = None) -> nx.DiGraph:
    """The IR of ``model`` applied to inputs of ``input_types`` (types may be partial).

    ``layer_outputs``, when given, receives each top-level layer's output nodes.
    """
    store = model.weight_store
    keys = {id(store[k]): k for k in store}
    builder = GraphBuilder(model.name, model.dtype, keys)
    nodes = [builder.input(t, name, expects)
             for t, name, expects in zip(input_types, model.input_names, model.declared_inputs)]
    graph = builder.finish(model._lower_body(builder, nodes))
    if layer_outputs is not None:
        layer_outputs.update(builder.layer_outputs)
    # Where the param keys' weights live, like an ONNX graph's initializers: a pipeline run
    # without an explicit store reads (and commits to) this one. Read again after lowering only
    # when a custom layer was traced (its first call declares its weights): walking every layer
    # for it costs as much as a pass on a 10,000-layer model.
    graph.graph["weights"] = model.weight_store if builder.traced else store
    return graph
