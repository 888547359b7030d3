"""Tracing: a custom layer's or subclassed model's ``call`` run on symbolic tensors, turned into
primitive IR nodes.

``trace_call(layer, builder, inputs)`` is how lowering meets a user-defined ``Layer``: it infers
the layer's input types from the graph built so far, runs ``build(input_shape)`` on the first
call (deferred initialization: ``add_weight`` shapes may use the inferred sizes), runs ``call``
on symbolic tensors (``compiler.ops`` and operators record ``OpCall``s; weights become
``variable`` nodes reading the layer's param nodes), and emits the recorded ops into the graph.
A subclassed ``Model`` is traced the same way, its sub-layers lowering as layers do.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import CompilerError, DeferredInitializationError, ShapeError
from ..ir import add_node
from ..lowering import weight_key
from ..symbolic import format_shape
from ..types import TensorType
from . import initializers
from .functional import SymbolicTensor
from .layers import Layer
from .operators import ConcretizationError, TensorOperators, user_frame
from .outputs import lower_single

_state = threading.local()


def _traces() -> list:
    if not hasattr(_state, "stack"):
        _state.stack = []
    return _state.stack


# -- the values a trace sees ----------------------------------------------------------------------
@dataclass
class WeightSpec:
    """What ``add_weight`` recorded: the shape and how to initialize it."""

    shape: tuple
    initializer: initializers.Initializer


class LayerWeight(TensorOperators):
    """What ``add_weight`` returns (Keras' variable): symbolic inside a trace, an array outside."""

    def __init__(self, layer: Layer, name: str):
        self._layer, self._pname = layer, name

    @property
    def name(self) -> str:
        return weight_key(self._layer, self._pname)

    @property
    def shape(self) -> tuple:
        return tuple(self._layer._weight_specs[self._pname].shape)

    @property
    def value(self) -> np.ndarray | None:
        return self._layer.variable(self._pname).value

    def numpy(self) -> np.ndarray:
        value = self.value
        if value is None:
            raise DeferredInitializationError(f"weight '{self.name}' is not initialized yet: "
                                              f"call the model on data first")
        return value.copy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.numpy(), dtype=dtype)

    def __repr__(self) -> str:
        return f"<LayerWeight {self.name} shape={self.shape}>"


@dataclass(frozen=True)
class WeightRead:
    """The producer of a weight's symbolic tensor in a trace."""

    layer: Layer
    pname: str


def is_symbolic(x: Any) -> bool:
    """A value ops must record rather than compute: a symbolic tensor, or a layer's weight while
    its layer is being traced."""
    return isinstance(x, SymbolicTensor) or (isinstance(x, LayerWeight) and bool(_traces()))


def as_symbolic(x: Any) -> SymbolicTensor:
    if isinstance(x, SymbolicTensor):
        return x
    trace = _traces()[-1]
    key = (id(x._layer), x._pname)
    if key not in trace.weights:
        trace.weights[key] = SymbolicTensor(TensorType(x.shape, trace.dtype),
                                            WeightRead(x._layer, x._pname))
    return trace.weights[key]


def add_weight(layer: Layer, name: str | None, shape: Sequence, initializer: Any,
               dtype: Any = None) -> LayerWeight:
    """Record a weight of a custom layer (Keras ``add_weight``); the array comes later, when the
    compiler's ``initialize`` pass creates every weight of the model at once."""
    specs = layer.__dict__.setdefault("_weight_specs", {})
    pname = name if name is not None else f"variable_{len(specs)}"
    if not isinstance(pname, str) or not pname or "/" in pname:
        raise CompilerError(f"layer '{layer.name}': a weight name must be a non-empty string "
                            f"without '/', received {name!r}")
    if pname in specs:
        raise CompilerError(f"layer '{layer.name}': weight {pname!r} is added twice")
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise DeferredInitializationError(
            f"layer '{layer.name}': weight {pname!r} needs a concrete shape, received "
            f"{tuple(shape) if isinstance(shape, (list, tuple)) else shape!r} (an input size "
            f"that is only known at run time cannot size a weight)") from None
    if any(d <= 0 for d in dims):
        raise CompilerError(f"layer '{layer.name}': weight {pname!r} needs positive sizes, "
                            f"received {dims}")
    specs[pname] = WeightSpec(dims, initializers.get(initializer))
    return LayerWeight(layer, pname)


# -- op calls -------------------------------------------------------------------------------------
class OpCall(Layer):
    """One ``compiler.ops`` call: an op name, attrs, and the Python constants among its operands
    (``((position, array), ...)``). At the top of a functional model it is a layer without
    weights, named after the op (``add``, ``add_1``), as Keras' op layers are."""

    def __init__(self, op: str, attrs: dict, constants: tuple = ()):
        super().__init__()
        self.op, self.attrs, self.constants = op, dict(attrs), tuple(constants)

    @property
    def _kind(self) -> str:
        return self.attrs.get("activation", self.op) if self.op == "activation" else self.op

    def op_attrs(self) -> dict:
        return dict(self.attrs)

    def lower(self, builder: Any, inputs: list[int]) -> list[int]:
        return [emit_op(builder, self, inputs, builder.origin(self))]

    def get_config(self) -> dict:
        raise CompilerError(f"model configs cannot hold compiler.ops calls yet ('{self.name}': "
                            f"ops.{self._kind}); save the weights with save_weights and rebuild "
                            f"the model from Python")


def emit_op(builder: Any, call: OpCall, inputs: Sequence[int], origin: Any) -> int:
    operands = list(inputs)
    for pos, value in call.constants:
        node = add_node(builder.graph, "constant", origin=origin,
                        attrs={"value": value, "dtype": value.dtype.name},
                        type=TensorType(tuple(value.shape), value.dtype))
        operands.insert(pos, node)
    return add_node(builder.graph, call.op, operands, attrs=call.op_attrs(), origin=origin)


def _variable(builder: Any, layer: Layer, pname: str) -> int:
    """A ``variable`` node reading ``layer``'s weight ``pname`` (one param node per weight)."""
    spec = layer._weight_specs[pname]
    param = builder.weight(layer, pname, spec.shape, spec.initializer)
    return add_node(builder.graph, "variable", [param],
                    attrs={"weight": pname, "shape": tuple(spec.shape)},
                    origin=builder.origin(layer))


# -- tracing --------------------------------------------------------------------------------------
def input_types(builder: Any, nodes: Sequence[int]) -> list[TensorType]:
    """The types of ``nodes`` in the graph built so far (shape propagation on a copy).

    Types inferred for earlier traces are remembered on the builder (the graph only grows while
    lowering), and the copy stops at them: each node is propagated about once, so lowering a
    chain of n custom layers stays linear instead of re-propagating the whole prefix n times.
    """
    g = builder.graph
    if all(g.nodes[n]["type"] is not None for n in nodes):
        return [g.nodes[n]["type"] for n in nodes]
    from ..dtypes import model_dtype
    from ..ops import Unifier
    from ..passes.propagate_shapes import propagate_shapes

    known = builder.__dict__.setdefault("inferred_types", {})
    part = g.subgraph(_unknown_ancestors(g, nodes, known)).copy()
    for n, data in part.nodes(data=True):
        if n in known:  # a boundary: its type is settled, its operands are not needed
            data.update(op="input", type=known[n], expects=None, attrs={"name": f"%{n}"})
    # the part's own inputs are boundaries: the model dtype comes from the whole graph
    part.graph.update(g.graph, outputs=list(nodes), dtype=model_dtype(g))
    propagate_shapes(part, SimpleNamespace(unifier=Unifier()))
    for n, data in part.nodes(data=True):
        if g.nodes[n]["op"] not in ("input", "param"):
            known[n] = data["type"]
    return [part.nodes[n]["type"] for n in nodes]


def _unknown_ancestors(g, nodes: Sequence[int], known: dict) -> set:
    """``nodes`` and what they read, back to nodes whose type is already known."""
    found: set = set()
    stack = list(nodes)
    while stack:
        n = stack.pop()
        if n in found:
            continue
        found.add(n)
        if n not in known:
            stack.extend(g.predecessors(n))
    return found


def _ensure_built(layer: Layer, types: Sequence[TensorType]) -> None:
    if layer.__dict__.get("_build_done"):
        return
    if any(t.shape is None for t in types):
        raise DeferredInitializationError(
            f"layer '{layer.name}' ({type(layer).__name__}): its input shape is not known yet, "
            f"so build() cannot run. Call the model on data, or build it with an input shape, "
            f"e.g. net.build((None, 20)).")
    shapes = [tuple(d if isinstance(d, int) else None for d in t.shape) for t in types]
    saved = dict(layer.__dict__.get("_weight_specs", {}))
    try:
        layer.build(shapes[0] if len(shapes) == 1 else shapes)
    except BaseException:
        layer.__dict__["_weight_specs"] = saved  # a failed build leaves the layer as it was
        raise
    layer.__dict__["_build_done"] = True
    scopes = getattr(_state, "scopes", None)
    if scopes:
        scopes[-1].append((layer, saved))


@contextlib.contextmanager
def build_scope(dry_run: bool = False) -> Iterator[None]:
    """Undo the custom layers' ``build``s made inside if it fails (or always, ``dry_run``: a
    report such as ``summary()``): a failed model build or compile leaves every layer as it was
    (its weights are only created at commit)."""
    if not hasattr(_state, "scopes"):
        _state.scopes = []
    built: list = []
    _state.scopes.append(built)
    def undo() -> None:
        for layer, saved in built:
            if all(layer.variable(p).value is None for p in layer.param_names):
                layer.__dict__["_weight_specs"] = saved
                layer.__dict__.pop("_build_done", None)

    try:
        yield
    except BaseException:
        undo()
        raise
    finally:
        _state.scopes.pop()
    if dry_run:
        undo()


def run_call(owner: Any, types: Sequence[TensorType], dtype: np.dtype
             ) -> tuple[list[SymbolicTensor], Any]:
    """Run ``owner.call`` on fresh symbolic tensors of ``types``; returns (inputs, outputs)."""
    tensors = [SymbolicTensor(t) for t in types]
    _traces().append(SimpleNamespace(weights={}, dtype=dtype, owner=owner))
    try:
        out = owner.call(*tensors)
    except ConcretizationError as e:
        raise ConcretizationError(f"{_describe(owner)}.call: {e}") from None
    except ShapeError as e:
        frame = user_frame(e.__traceback__)
        where = f"\n  at {frame.filename}:{frame.lineno}: {frame.line}" if frame else ""
        raise ShapeError(f"{_describe(owner)}.call: {e}{where}") from None
    finally:
        _traces().pop()
    return tensors, out


def _describe(owner: Any) -> str:
    return f"{type(owner).__name__} '{owner.name}'"


def _single_output(owner: Any, out: Any) -> SymbolicTensor:
    if isinstance(out, LayerWeight):
        raise CompilerError(f"{_describe(owner)}.call returned a weight; return a computation")
    if not isinstance(out, SymbolicTensor):
        raise CompilerError(f"{_describe(owner)}.call must return one tensor computed from its "
                            f"inputs with compiler.ops, received {type(out).__name__}")
    return out


def trace_symbolic(layer: Layer, inputs: Sequence[SymbolicTensor]) -> SymbolicTensor:
    """A custom layer called on symbolic tensors (functional API): build, trace for the output
    type, and record the call."""
    types = [x.type for x in inputs]
    _ensure_built(layer, types)
    layer._sublayers()  # names its layers (unique among siblings) before call reads them
    _, out = run_call(layer, types, types[0].dtype)
    return SymbolicTensor(_single_output(layer, out).type, layer, inputs)


def trace_call(layer: Layer, builder: Any, inputs: Sequence[int]) -> int:
    """Lower one call of a custom layer: its ``call`` traced into primitive nodes."""
    builder.traced = True  # its build() may declare weights: lowering re-reads the store
    types = input_types(builder, inputs)
    _ensure_built(layer, types)
    layer._sublayers()
    tensors, out = run_call(layer, types, builder.dtype)
    out = _single_output(layer, out)
    return emit_traced(builder, tensors, inputs, [out], layer)[0]


def emit_traced(builder: Any, tensors: Sequence[SymbolicTensor], input_nodes: Sequence[int],
                outputs: Sequence[SymbolicTensor], owner: Any = None) -> list[int]:
    """Emit the recorded graph between ``tensors`` (bound to ``input_nodes``) and ``outputs``.

    ``owner`` is the custom layer being traced (its ops are named after it; the layers it calls
    lower under its name, ``"my_block/dense"``), or ``None`` for a subclassed model (its
    sub-layers lower as the model's layers).
    """
    values = {id(t): n for t, n in zip(tensors, input_nodes)}

    def visit(t: SymbolicTensor) -> int:
        if id(t) in values:
            return values[id(t)]
        src = t.layer
        if src is None:
            raise CompilerError(f"{_describe(owner) if owner else 'model'}.call uses a tensor "
                                f"{format_shape(t.shape)} that is not computed from its inputs "
                                f"(an Input of another model?)")
        args = [visit(a) for a in t.inputs]
        if isinstance(src, WeightRead):
            node = _variable(builder, src.layer, src.pname)
        elif isinstance(src, OpCall):
            node = emit_op(builder, src, args, builder.origin(owner if owner is not None else src))
        elif owner is not None:  # a sub-layer of a custom layer: lowered under its name
            with builder.scope(owner):
                node = lower_single(builder, src, args)
        else:
            node = lower_single(builder, src, args)  # a nested model too, under its name scope
        values[id(t)] = node
        return node

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        return [visit(o) for o in outputs]
    finally:
        sys.setrecursionlimit(limit)
