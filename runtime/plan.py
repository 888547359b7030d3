"""The executable plan: binds dims from the actual inputs, validates, runs kernels in order."""

from __future__ import annotations

import threading
from typing import Any, Sequence

import networkx as nx
import numpy as np

from compiler.ir import dump, layer_name
from compiler.passes.pipeline import PassRecord

from .binding import InputSignature, concrete_shape
from .inputs import as_input_array
from .kernels.registry import empty_param, get_kernel


class Plan:
    """A compiled forward pass. Call it with one array per model input.

    Attributes:
        graph: the final IR (``networkx.DiGraph``); ``ir`` renders it as text.
        report: one ``PassRecord`` per pass that ran (name, seconds, node counts).
    """

    def __init__(self, graph: nx.DiGraph, records: Sequence[PassRecord], model_name: str = ""):
        self.graph = graph
        self.report = list(records)
        self.model_name = model_name
        g = graph
        self._input_nodes = list(g.graph["inputs"])
        self._output_nodes = list(g.graph["outputs"])
        self.dtype = g.nodes[self._input_nodes[0]]["type"].dtype if self._input_nodes else (
            np.dtype(np.float32))
        self.signature = InputSignature(
            [g.nodes[n]["type"] for n in self._input_nodes],
            [g.nodes[n]["attrs"]["name"] for n in self._input_nodes],
            [_first_consumer(g, n) for n in self._input_nodes],
            g.graph.get("runtime_checks", ()))
        self._steps = [self._prepare_step(s) for s in g.graph["schedule"]]
        self._shape_cache: dict = {}
        self._lock = threading.Lock()

    # -- construction -----------------------------------------------------------------------
    def _prepare_step(self, step) -> tuple:
        g = self.graph
        data = g.nodes[step.node]
        kernel = get_kernel(step.kernel)
        params = dict(step.params)
        out_type = data["type"]
        param_values = tuple(
            g.nodes[params[p]]["value"] if p in params else empty_param(out_type.dtype)
            for p in kernel.param_names)
        in_shapes = [g.nodes[n]["type"].shape for n in step.inputs]
        scalars = tuple(kernel.scalars(step.attr_dict, in_shapes, out_type.shape))
        where = f"layer '{layer_name(g, step.node)}'"
        return (step.node, kernel.fn, step.inputs, param_values, scalars, step.alias,
                out_type.shape, where)

    # -- running ----------------------------------------------------------------------------
    def _shapes_for(self, arrays: Sequence[np.ndarray]) -> tuple:
        key = tuple(a.shape for a in arrays)
        shapes = self._shape_cache.get(key)
        if shapes is None:
            bindings = self.signature.bind(arrays)
            shapes = tuple(concrete_shape(s[6], bindings, s[7]) for s in self._steps)
            with self._lock:
                if len(self._shape_cache) > 256:
                    self._shape_cache.clear()
                self._shape_cache[key] = shapes
        return shapes

    def __call__(self, *inputs: Any) -> Any:
        names = self.signature.names
        if len(inputs) != len(names):
            from compiler.errors import CompilerError

            raise CompilerError(f"plan for model '{self.model_name}' takes {len(names)} "
                                f"input(s), received {len(inputs)}")
        arrays = [as_input_array(x, self.dtype, n) for x, n in zip(inputs, names)]
        shapes = self._shapes_for(arrays)
        values: dict[int, np.ndarray] = dict(zip(self._input_nodes, arrays))
        for (node, fn, ins, params, scalars, alias, _, _), shape in zip(self._steps, shapes):
            if alias:
                values[node] = values[ins[0]].reshape(shape)
                continue
            out = np.empty(shape, self.dtype)
            fn(*[values[i] for i in ins], *params, out, *scalars)
            values[node] = out
        outs = [values[n] for n in self._output_nodes]
        outs = [np.array(o) if any(o is a or np.shares_memory(o, a) for a in arrays) else o
                for o in outs]
        return outs[0] if len(outs) == 1 else outs

    # -- introspection ----------------------------------------------------------------------
    @property
    def ir(self) -> str:
        return dump(self.graph)

    def describe(self) -> str:
        """The passes that ran, with timings, then the final IR."""
        lines = [f"plan for model '{self.model_name}'", "passes:"]
        lines += [f"  {r}" for r in self.report]
        lines += ["IR:", *("  " + line for line in self.ir.splitlines())]
        return "\n".join(lines)

    def __repr__(self) -> str:
        sig = ", ".join(str(t) for t in self.signature.types)
        return f"<Plan '{self.model_name}' ({sig}) steps={len(self._steps)}>"


def _first_consumer(g: nx.DiGraph, node: int) -> str:
    for succ in g.successors(node):
        if g.nodes[succ].get("layer") is not None:
            return layer_name(g, succ)
    return ""
