"""The import state: ONNX value names mapped to IR values, constants or symbolic shapes.

Each ONNX value is one of: a NumPy array known at import (an initializer, a ``Constant``, or a
folded input-independent subgraph), an *object* array of dims (a shape that depends on a dynamic
dim, e.g. ``Shape(x)`` with a symbolic batch: folded symbolically), or a ``Tensor``: an IR node
computed at run time. A rank-4 tensor may be held channels-last (``nhwc``): NCHW ops import as
our NHWC kernels, and a value only gets its transpose back to the ONNX layout when a
layout-sensitive op reads it, so chains of convolutions, pooling and element-wise ops carry no
transposes between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import CompilerError, ShapeError
from ...ir import Origin, add_node
from ...ops import Unifier, get_op
from ...types import TensorType
from ...weights import Derived, ParamInit, derive, pack_constant

#: ops whose folded output holds its first input's values, re-shaped or re-ordered (a weight
#: is stored in the layout its kernel reads anyway: a Conv kernel as (kh, kw, in, out))
VALUE_PRESERVING = frozenset({"Identity", "Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten",
                              "Transpose"})
#: element-wise ops of a weight and a constant, folded at import but redone from the weight's
#: current value (``weights.Derived`` "elementwise"), by their NumPy ufunc
ARITHMETIC = {"Add": "add", "Sub": "subtract", "Mul": "multiply", "Div": "divide"}

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)


@dataclass(frozen=True)
class Alias:
    """A folded value computed from float initializer ``source`` alone: ``steps`` (ufunc name,
    side of the weight, constant) applied to ``base`` (the initializer re-laid out to this
    value's shape, in the ONNX layout); no steps: the value *is* the initializer, re-laid out
    (``base`` then unused). Constants are scalars or arrays of the value's shape."""

    source: str
    base: Any = None
    steps: tuple = ()


@dataclass
class Tensor:
    """A run-time value: IR ``node`` of ``type``; ``nhwc``: held channels-last."""

    node: int
    type: TensorType
    nhwc: bool = False

    @property
    def onnx_shape(self) -> tuple | None:
        """The shape in the ONNX (channels-first) layout."""
        shape = self.type.shape
        if shape is None or not self.nhwc:
            return shape
        return tuple(shape[a] for a in TO_NCHW)


class StoredValue:
    """Initializer spec of an imported weight. Its array is in the model's store from the
    start, so this never has to make one; it names the weight (plans pickle it, so it holds
    no array)."""

    name = "onnx_initializer"
    seed = None

    def __init__(self, key: str):
        self.key = key

    def _missing(self) -> CompilerError:
        return CompilerError(f"weight '{self.key}' comes from the ONNX file and is not in the "
                             f"model's store; load the file again")

    def __call__(self, shape: Any, dtype: Any = None) -> np.ndarray:
        raise self._missing()

    def generate(self, shape: Any, dtype: Any, rng: Any) -> np.ndarray:
        raise self._missing()

    def sample(self, shape: Any, rng: Any) -> np.ndarray:
        raise self._missing()


class Importer:
    """Emits IR nodes for ONNX nodes into ``graph``; see the module docstring."""

    def __init__(self, graph: Any, dtype: np.dtype, opset: int, weights: dict | None,
                 initializers: dict[str, np.ndarray], key_of: Any = None):
        self.graph = graph
        self.dtype = np.dtype(dtype)
        self.opset = opset
        #: key -> array (our layout) of the model's weights (``None``: the first import, which
        #: takes every weight it is asked for); a run-time operand whose key is not here (or of
        #: another shape) becomes a constant
        self.weights = weights
        self.initializers = initializers
        #: a weight's name -> the key its param node carries (the model's store key: the name
        #: itself at top level, ``"outer/onnx_weights/name"`` when nested in another model)
        self.key_of = key_of or (lambda name: name)
        self.values: dict[str, Any] = dict(initializers)
        #: folded values computed from one float initializer: under another name, shape or
        #: order (Identity, Cast, Reshape, (Un)Squeeze, Flatten, Transpose of it), or through
        #: arithmetic with constants (Mul(W, 0.5)): value name -> ``Alias``, so the op reading
        #: them still reads a weight ``set_weights`` reaches
        self.aliases: dict[str, Alias] = {}
        self.unify = Unifier()
        #: weights the conversion asked for: key -> array in our layout (read after a dry run)
        self.used_weights: dict[str, np.ndarray] = {}
        self._params: dict[tuple[str, str], int] = {}
        self._layouts: dict[tuple[int, bool], Tensor] = {}
        self.origin = Origin("onnx", "OnnxNode")

    # -- nodes ------------------------------------------------------------------------------
    def emit(self, op: str, inputs: list[Tensor], attrs: dict | None = None,
             params: dict[str, tuple[int, TensorType]] | None = None, nhwc: bool = False,
             extra_operands: list[int] | None = None) -> Tensor:
        """One IR node; its type is inferred now (shape errors name the ONNX node)."""
        attrs = dict(attrs or {})
        params = dict(params or {})
        types = [t.type for t in inputs]
        try:
            out = get_op(op).shape_rule(types, {k: v[1] for k, v in params.items()}, attrs,
                                        self.unify)
        except ShapeError as e:
            raise ShapeError(f"ONNX node '{self.origin.name}' ({self.origin.kind}): {e}") from None
        operands = [t.node for t in inputs] + [n for n, _ in params.values()]
        node = add_node(self.graph, op, operands + list(extra_operands or ()), attrs=attrs,
                        origin=self.origin)
        return Tensor(node, out, nhwc)

    def param(self, key: str, role: str, array: np.ndarray) -> tuple[int, TensorType] | None:
        """A param node reading weight ``key`` (our layout ``array``), or ``None`` when the
        model holds no such weight (then the caller uses a constant)."""
        # a use wanting another layout of an initializer already taken gets a constant
        if not self.claim(key, array):
            return None
        if (key, role) not in self._params:
            t = TensorType(tuple(array.shape), self.dtype)
            self._params[(key, role)] = add_node(
                self.graph, "param", origin=self.origin, param=role, key=self.key_of(key),
                init=ParamInit(StoredValue(key), self.dtype), type=t)
        return self._params[(key, role)], TensorType(tuple(array.shape), self.dtype)

    def claim(self, key: str, array: np.ndarray) -> bool:
        """Whether weight ``key`` may be read as ``array``'s shape (the first import takes each
        weight in the first layout asked for)."""
        stored = (self.used_weights if self.weights is None else self.weights).get(key)
        if (stored is None and self.weights is not None) or (
                stored is not None and stored.shape != array.shape):
            return False
        self.used_weights.setdefault(key, array)
        return True

    def weight_param(self, name: str, role: str, array: np.ndarray,
                     layout: Any = None) -> tuple[int, TensorType]:
        """A param for a kernel's weight: the initializer's name when ``name`` is one, or is
        computed from one (``layout``: how the kernel lays out ``name``'s ONNX value, which an
        initializer behind arithmetic needs), else a constant-valued param keyed after the ONNX
        node."""
        got = self.derived_param(name, role, array, layout)
        if got is not None:
            return got
        source = self.weight_name(name)
        if source is not None:
            got = self.param(source, role, array.astype(self.dtype))
            if got is not None:
                return got
        key = f"{self.origin.name}/{role}"
        got = self.param(key, role, array.astype(self.dtype))
        if got is None:
            raise CompilerError(f"ONNX node '{self.origin.name}' ({self.origin.kind}): its "
                                f"{role} ('{name}') has shape {array.shape} here, which the "
                                f"imported weights do not hold")
        return got

    def constant(self, value: np.ndarray, name: str | None = None,
                 layout: Any = None) -> Tensor:
        """A run-time operand from a value known at import: a weight read (``variable``) when it
        is a float initializer or computed from one (``value`` is ``layout`` of ``name``'s ONNX
        value; ``None``: that value itself), else a ``constant`` node."""
        value = np.asarray(value)
        if value.dtype == object:
            raise CompilerError(f"ONNX node '{self.origin.name}' ({self.origin.kind}): value "
                                f"'{name}' is a shape that depends on a dynamic dim, and is "
                                f"used as run-time data; deferc needs it as a constant")
        source = self.weight_name(name)
        got = None
        if value.dtype.kind == "f" and value.ndim:
            got = self.derived_param(name, "value", value, layout or (lambda a: a))
            if got is None and source is not None:
                got = self.param(source, "value", value.astype(self.dtype))
        if got is not None:
            node = add_node(self.graph, "variable", [got[0]],
                            attrs={"weight": source or self.aliases[name].source,
                                   "shape": tuple(value.shape)},
                            origin=self.origin)
            return Tensor(node, got[1])
        # floats compute in the model dtype; integers and booleans keep an integer/bool dtype
        # (indices for ``take``, conditions for ``where``), as ONNX typed them
        kind = value.dtype.kind
        dtype = (self.dtype if kind == "f" else np.dtype(bool) if kind == "b"
                 else value.dtype if value.dtype in (np.int32, np.int64)
                 else np.dtype(np.int64) if kind in "iu" else value.dtype)
        value = value.astype(dtype)
        node = add_node(self.graph, "constant", attrs={"value": value, "dtype": dtype.name},
                        origin=self.origin, type=TensorType(tuple(value.shape), dtype))
        return Tensor(node, TensorType(tuple(value.shape), dtype))

    def weight_name(self, name: str | None) -> str | None:
        """The float initializer ``name`` is (itself, or folded from it without changing a
        value), or ``None``."""
        alias = self.aliases.get(name)
        if alias is not None:
            return None if alias.steps else alias.source
        if name in self.initializers and self.initializers[name].dtype.kind == "f":
            return name
        return None

    def alias(self, name: str) -> Alias | None:
        """``name`` as computed from one float initializer (see ``Alias``), or ``None``."""
        source = self.weight_name(name)
        return Alias(source) if source is not None else self.aliases.get(name)

    def note_folded(self, node: Any, outs: list) -> None:
        """Record a folded ``node``'s output as an alias of the weight it re-shapes, or combines
        with a constant."""
        if len(outs) != 1 or not node.output[0] or np.asarray(outs[0]).dtype.kind != "f":
            return
        out = np.asarray(outs[0])
        alias = None
        if node.op_type in VALUE_PRESERVING and node.input:
            alias = self.alias(node.input[0])
            if alias is not None and alias.steps:
                alias = self._relaid(node, alias)
        elif node.op_type in ARITHMETIC and len(node.input) == 2:
            alias = self._combined(node, out)
        if alias is not None:
            self.aliases[node.output[0]] = alias

    def _relaid(self, node: Any, alias: Alias) -> Alias | None:
        """``alias`` after re-layout ``node``: its base and array constants re-laid out too."""
        try:
            steps = tuple((op, side, c if np.ndim(c) == 0 else self._rerun(node, c))
                          for op, side, c in alias.steps)
            return Alias(alias.source, self._rerun(node, alias.base), steps)
        except Exception:  # e.g. a shape known only symbolically: the value stays a constant
            return None

    def _rerun(self, node: Any, first: np.ndarray) -> np.ndarray:
        from onnx.reference import ReferenceEvaluator

        feeds = {n: np.asarray(self.known(n)) for n in node.input[1:] if n}
        feeds[node.input[0]] = first
        if any(v.dtype == object for v in feeds.values()):
            raise ValueError("symbolic shape")
        return np.asarray(ReferenceEvaluator(node, opsets={"": self.opset}).run(None, feeds)[0])

    def _combined(self, node: Any, out: np.ndarray) -> Alias | None:
        """An element-wise op of a weight (not broadcast) and a numeric constant."""
        for side in (0, 1):
            name, other = node.input[side], self.known(node.input[1 - side])
            alias = self.alias(name)
            if alias is None or other is None or np.shape(self.known(name)) != out.shape:
                continue
            other = np.asarray(other)
            if other.dtype == object or other.dtype.kind not in "fiu":
                return None
            flat = other.reshape(-1)
            # a uniform constant (Mul(W, 0.5)) stays a scalar: it commutes with any layout
            c = (flat[0] if flat.size and (flat == flat[0]).all() else
                 np.ascontiguousarray(np.broadcast_to(other, out.shape)))
            base = alias.base if alias.steps else np.asarray(self.known(name))
            return Alias(alias.source, base, alias.steps + ((ARITHMETIC[node.op_type], side,
                                                             np.asarray(c)),))
        return None

    def derived_param(self, name: str | None, role: str, array: np.ndarray,
                      layout: Any) -> tuple[int, TensorType] | None:
        """A param computed from the weight behind arithmetic alias ``name`` (``Derived``
        "elementwise", so ``set_weights`` reaches it), read as ``layout`` of its ONNX value;
        ``None`` when ``name`` is no such alias or the weight cannot be read this way."""
        alias = self.aliases.get(name)
        if alias is None or not alias.steps or layout is None:
            return None
        stored = np.ascontiguousarray(layout(alias.base)).astype(self.dtype)
        if stored.shape != np.shape(array) or not self.claim(alias.source, stored):
            return None
        current = stored if self.weights is None else self.weights[alias.source]
        steps = tuple((op, side, pack_constant(c if c.ndim == 0 else layout(c)))
                      for op, side, c in alias.steps)
        key = self.key_of(alias.source)
        spec = Derived("elementwise", (("value", key),), (("steps", steps),))
        value = derive(spec, lambda _: np.asarray(current, dtype=self.dtype))
        t = TensorType(tuple(value.shape), self.dtype)
        node = add_node(self.graph, "param", origin=self.origin, param=role,
                        key=f"{key}+{self.origin.name}/{role}", type=t, value=value, derived=spec)
        return node, t

    # -- values -----------------------------------------------------------------------------
    def known(self, name: str) -> Any:
        """The value of ``name`` if known at import (array, maybe of dims), else ``None``."""
        if not name:
            return None
        value = self.values[name]
        return None if isinstance(value, Tensor) else value

    def require_known(self, name: str, what: str) -> np.ndarray:
        value = self.known(name)
        if value is None:
            raise CompilerError(f"ONNX node '{self.origin.name}' ({self.origin.kind}): {what} "
                                f"('{name}') must be known at import (a constant or a shape "
                                f"computation), but it is computed from the inputs")
        return value

    def ints(self, name: str, what: str) -> list[int]:
        value = self.require_known(name, what)
        try:
            return [int(v) for v in np.asarray(value).reshape(-1)]
        except TypeError:
            raise CompilerError(f"ONNX node '{self.origin.name}' ({self.origin.kind}): {what} "
                                f"depends on a dynamic dim ({list(np.asarray(value).ravel())}) "
                                f"where deferc needs integers") from None

    def tensor(self, name: str, nhwc: bool | None = False) -> Tensor:
        """``name`` as a run-time tensor; ``nhwc`` True/False asks for that layout (rank 4),
        ``None`` takes it as held."""
        value = self.values[name]
        if not isinstance(value, Tensor):
            value = self.constant(value, name)
            self.values[name] = value
        return self.relayout(value, nhwc)

    def relayout(self, value: Tensor, nhwc: bool | None) -> Tensor:
        """``value`` in the asked layout (a transpose, made once per value and layout)."""
        if nhwc is None or value.nhwc == nhwc or value.type.rank != 4:
            return value
        key = (value.node, nhwc)
        if key not in self._layouts:
            perm = TO_NHWC if nhwc else TO_NCHW
            t = self.emit("transpose", [value], {"axes": perm}, nhwc=nhwc)
            self._layouts[key] = t
            self._layouts[(t.node, value.nhwc)] = value
        return self._layouts[key]

    def shape(self, name: str) -> tuple | None:
        """The ONNX shape of ``name`` (dims may be symbolic)."""
        value = self.values[name]
        if isinstance(value, Tensor):
            return value.onnx_shape
        return tuple(np.shape(value))

    def rank(self, name: str) -> int:
        shape = self.shape(name)
        if shape is None:
            raise CompilerError(f"ONNX node '{self.origin.name}' ({self.origin.kind}): the rank "
                                f"of '{name}' is unknown")
        return len(shape)
