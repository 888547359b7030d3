"""Weights by name: variables with versions, a model's store, and a pipeline's pending layer.

The IR never holds a layer: a param node names its weight (``"dense_1/kernel"``) and passes read
weights through the pipeline context (``PendingWeights``: the weights created in this run on top
of the model's ``WeightStore``). A compiled plan remembers each key's version and is told when a
variable changes, so ``set_weights`` after ``compile`` is seen without any process-wide epoch.
Derived weights (BatchNorm folded into a conv) are plain data, ``Derived``, recomputed from their
source keys by a function registered under the derivation's name.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DeferredInitializationError, DTypeError, ShapeError


class Variable:
    """One weight, Keras 3 style: ``.name``, ``.shape``, ``.dtype``, ``.numpy()``, ``.assign()``.

    Holds its array (``None`` until initialized) and a version bumped on every change. Objects
    that ``watch`` a variable (compiled plans) get ``weights_changed()`` after each change, so
    they need not poll versions on every call. ``name`` is the weight's key in the model that
    lists it (``"dense_1/kernel"``, nested ``"block/dense/kernel"``); until a model names it, it
    is derived from the owning layer (``owner``, held weakly) when given.
    """

    def __init__(self, name: str, value: np.ndarray | None = None, owner: Any = None):
        self._local = name
        self._path: str | None = None
        self._owner = None if owner is None else weakref.ref(owner)
        self.value = value
        self.version = 0
        self._watchers: weakref.WeakSet = weakref.WeakSet()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        """The value and names; the owner travels as a plain reference (it is pickled with us),
        watchers (plans of this process) and the lock stay behind."""
        state = self.__dict__.copy()
        state["_owner"] = None if self._owner is None else self._owner()
        del state["_watchers"], state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        owner = state.pop("_owner")
        self.__dict__.update(state)
        self._owner = None if owner is None else weakref.ref(owner)
        self._watchers = weakref.WeakSet()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        if self._path is not None:
            return self._path
        owner = None if self._owner is None else self._owner()
        return self._local if owner is None else f"{owner.name}/{self._local}"

    @name.setter
    def name(self, path: str) -> None:
        self._path = path

    @property
    def path(self) -> str:
        """Keras 3 spelling of the qualified name."""
        return self.name

    @property
    def shape(self) -> tuple | None:
        return None if self.value is None else tuple(self.value.shape)

    @property
    def dtype(self) -> np.dtype | None:
        return None if self.value is None else self.value.dtype

    def numpy(self) -> np.ndarray:
        """A copy of the current value."""
        if self.value is None:
            raise DeferredInitializationError(f"weight '{self.name}' is not initialized yet")
        return self.value.copy()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def assign(self, value: Any) -> None:
        """Overwrite the value in place (Keras ``assign``); the shape must stay the same.

        Compiled plans see the change: the version is bumped and watchers are told.
        """
        arr = np.asarray(value)
        if self.value is None:
            self.replace(np.array(arr, dtype=arr.dtype if arr.dtype.kind == "f" else np.float32,
                                  order="C"))
            return
        if arr.dtype.kind not in "fiub":
            raise DTypeError(f"weight '{self.name}': assign needs numbers, received dtype "
                             f"{arr.dtype}")
        if arr.shape != self.value.shape:
            raise ShapeError(f"weight '{self.name}' has shape {self.value.shape}, assign "
                             f"received shape {arr.shape}")
        self._set(arr, in_place=True)

    def replace(self, array: np.ndarray) -> None:
        """Take ``array`` as the new value (any shape: creation, or a load that reshapes)."""
        self._set(array, in_place=False)

    def _set(self, array: np.ndarray, in_place: bool) -> None:
        with self._lock:
            if in_place and self.value is not None and self.value.shape == array.shape:
                self.value[...] = array
            else:
                self.value = array
            self.version += 1
            watchers = list(self._watchers)
        for w in watchers:
            w.weights_changed()

    def watch(self, watcher: Any) -> None:
        """Call ``watcher.weights_changed()`` after every later change (held weakly)."""
        with self._lock:
            self._watchers.add(watcher)

    def __repr__(self) -> str:
        shape = "?" if self.shape is None else self.shape
        return f"<Variable path={self.name} shape={shape} dtype={self.dtype} v{self.version}>"


class WeightStore(Mapping):
    """A model's weights by qualified name (``"dense_1/kernel"``) -> ``Variable``.

    The variables belong to the layers, so a layer shared by several models (tied weights) is
    one set of variables in every store that lists it.
    """

    def __init__(self, variables: Mapping[str, Variable] | None = None):
        self._vars = dict(variables or {})

    def __getitem__(self, key: str) -> Variable:
        return self._vars[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)

    def value(self, key: str) -> np.ndarray | None:
        var = self._vars.get(key)
        return None if var is None else var.value

    def version(self, key: str) -> int:
        return self._vars[key].version

    def versions(self) -> dict[str, int]:
        """Every weight's version now: what a compiled graph's values were read at."""
        return {key: var.version for key, var in self._vars.items()}


class PendingWeights:
    """The weights one pipeline run sees: those it created (pending) over the model's store.

    Every pass reads through ``get``; ``commit`` hands the pending arrays to the store only once
    the whole pipeline succeeded, so a failing build changes nothing.
    """

    def __init__(self, store: WeightStore | None = None, pending: dict | None = None):
        self.store = store if store is not None else WeightStore()
        self.pending: dict[str, np.ndarray] = dict(pending or {})

    def get(self, key: str) -> np.ndarray | None:
        if key in self.pending:
            return self.pending[key]
        return self.store.value(key)

    def put(self, key: str, value: np.ndarray) -> None:
        self.pending[key] = value

    def commit(self) -> None:
        for key, value in self.pending.items():
            self.store[key].replace(value)
        self.pending.clear()


@dataclass(frozen=True)
class ParamInit:
    """How to create a missing weight: the initializer and the owning layer's dtype (if any)."""

    initializer: Any
    dtype: Any = None


@dataclass(frozen=True)
class Derived:
    """A weight computed from other weights: ``DERIVATIONS[kind](get, sources, attrs)``.

    ``sources`` are ``(role, source)`` pairs, a source being a weight key, ``None`` (absent) or
    another ``Derived`` (e.g. two BatchNorms folded into one conv); ``attrs`` are sorted
    ``(name, value)`` pairs. Plain data, so plans pickle and recompute it when a source's
    version changes.
    """

    kind: str
    sources: tuple
    attrs: tuple = ()

    @property
    def keys(self) -> tuple:
        """Every stored weight this one is computed from (through nested derivations too)."""
        out: list = []
        for _, source in self.sources:
            if isinstance(source, Derived):
                out.extend(source.keys)
            elif source is not None:
                out.append(source)
        return tuple(dict.fromkeys(out))


DERIVATIONS: dict[str, Callable[..., np.ndarray]] = {}


def register_derivation(kind: str, fn: Callable[..., np.ndarray]) -> None:
    DERIVATIONS[kind] = fn


#: ufuncs an ``"elementwise"`` derivation may apply (ONNX Add/Sub/Mul/Div of a weight)
ELEMENTWISE_UFUNCS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
                      "divide": np.divide}


def pack_constant(value: np.ndarray) -> tuple:
    """An array as hashable plain data for ``Derived.attrs``: ``(bytes, shape, dtype)``."""
    value = np.ascontiguousarray(value)
    return value.tobytes(), tuple(value.shape), value.dtype.str


def _elementwise(sources: dict, attrs: dict) -> np.ndarray:
    """The weight ``value`` through ``steps``: ``(ufunc name, side, packed constant)``, the
    weight on ``side`` 0 (left) or 1 (right) of each."""
    x = np.asarray(sources["value"])
    dtype = x.dtype
    for name, side, (data, shape, cdtype) in attrs["steps"]:
        c = np.frombuffer(data, dtype=np.dtype(cdtype)).reshape(shape).astype(dtype)
        fn = ELEMENTWISE_UFUNCS[name]
        x = fn(x, c) if side == 0 else fn(c, x)
    return np.asarray(x, dtype=dtype)


def derive(spec: Derived, get: Callable[[str], np.ndarray | None]) -> np.ndarray:
    """Compute a derived weight, reading its sources through ``get(key)``."""
    sources = {role: (derive(source, get) if isinstance(source, Derived) else
                      None if source is None else get(source))
               for role, source in spec.sources}
    return DERIVATIONS[spec.kind](sources, dict(spec.attrs))


register_derivation("elementwise", _elementwise)
