"""Models: ``Sequential`` and functional ``Model``; both lower to the same IR.

A model is itself a layer: it can sit inside a ``Sequential`` or be called on symbolic tensors in
a functional model (once or at several places, sharing its weights). A model's weights are its
layers' variables, seen by key through ``model.weight_store`` (``"dense_1/kernel"``, nested
``"block/dense/kernel"``); the model keeps a cache of compiled plans, one per input signature with
the batch axis symbolic, so a new batch size never recompiles.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import CompilerError, DeferredInitializationError, ShapeError
from ..lowering import weight_entries
from ..ops import get_op
from ..symbolic import Dim
from ..types import TensorSpec, TensorType, as_model_dtype
from ..weights import Variable, WeightStore
from .functional import SymbolicTensor
from .layers import Layer
from .outputs import call_memo, lower_single, split_outputs
from .sublayers import name_uniquely


class Model(Layer):
    """A functional model: ``Model(inputs, outputs)`` over symbolic tensors from ``Input``."""

    def __init__(self, inputs: Any = None, outputs: Any = None, name: str | None = None,
                 dtype: Any = None):
        if inputs is None and outputs is None:  # the subclassing form: layers + ``call``
            from .subclassing import init_subclassed

            init_subclassed(self, name, dtype)
            return
        ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        self._single_output = not isinstance(outputs, (list, tuple))
        for t in ins + outs:
            if not isinstance(t, SymbolicTensor):
                raise CompilerError(f"Model: inputs and outputs must be symbolic tensors from "
                                    f"Input() and layer calls, received {type(t).__name__}")
        if any(t.layer is not None for t in ins):
            raise CompilerError("Model: every input must come straight from Input()")
        dtypes = {t.dtype for t in ins if t.dtype.kind == "f"}  # int/bool inputs keep theirs
        self._init_common(name, dtype if dtype is not None else
                          (dtypes.pop() if len(dtypes) == 1 else None))
        self._inputs, self._outputs = ins, outs
        self._calls = _collect_calls(ins, outs)
        # a multi-output layer's extra outputs come from stand-ins (``owner_layer``)
        self._layers = _unique(getattr(layer, "owner_layer", layer) for layer, _, _ in self._calls)
        self._name_layers()
        self._input_specs = [t.spec for t in ins]
        self._build_or_defer(self._input_specs)

    is_model = True

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if not name.startswith("_") and self.__dict__.get("_subclassed"):
            from .subclassing import refresh_layers  # a subclassed model's layers are attributes

            refresh_layers(self)

    def _init_common(self, name: str | None, dtype: Any) -> None:
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise CompilerError(f"{type(self).__name__}: name must be a non-empty string "
                                f"without '/', received {name!r}")
        self._name = name
        self._variables: dict = {}
        self.dtype = as_model_dtype(dtype)
        self._plans: dict = {}
        self._lock = threading.RLock()
        self._input_specs: list[TensorSpec] | None = None
        self._built_specs: list[TensorSpec] | None = None

    def _name_layers(self) -> None:
        """Give unnamed layers unique Keras-style names; refuse two layers with one name.

        A nested model named automatically (``sequential``) is renamed when a sibling already
        has its name, as Keras' global counters would have done.
        """
        name_uniquely(f"model '{self.name}'", self._layers, lambda x: x.is_model)
        for layer in self._layers:
            if layer is self or (layer.is_model and _contains(layer, self)):
                raise CompilerError(f"model '{self.name}' cannot contain itself")

    # -- structure (what lowering reads) ----------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        if self.__dict__.get("_subclassed"):
            from .subclassing import refresh_layers

            refresh_layers(self)
        return list(self._layers)

    @property
    def input_names(self) -> list[str]:
        specs = self._input_specs or [None] * self.num_inputs
        return [(s.name if s is not None and s.name else f"input_{i}")
                for i, s in enumerate(specs)]

    @property
    def declared_inputs(self) -> list:
        """The input shapes the model itself declares (``Input`` shapes), or Nones."""
        if self._input_specs is None:
            return [None] * self.num_inputs
        return [tuple(None if isinstance(d, str) else d for d in s.shape)
                for s in self._input_specs]

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    def _lower_body(self, builder, input_nodes: list[int]) -> list[int]:
        if self.__dict__.get("_subclassed"):
            from .subclassing import lower_subclassed

            return lower_subclassed(self, builder, input_nodes)
        values = {id(t): n for t, n in zip(self._inputs, input_nodes)}
        for layer, args, out in self._calls:
            values[id(out)] = lower_single(builder, layer, [values[id(a)] for a in args])
        return [values[id(t)] for t in self._outputs]

    # -- as a layer of another model ----------------------------------------------------------
    @property
    def _declared_input(self) -> tuple | None:
        """The single input shape this model declares (batch axis first), if any."""
        if self._input_specs is None or self.num_inputs != 1:
            return None
        return self.declared_inputs[0]

    @property
    def param_names(self) -> list[str]:
        return []  # a model owns no weights itself: its layers do

    @property
    def param_shapes(self) -> dict[str, tuple]:
        return {}

    def lower(self, builder, inputs: list[int]) -> list[int]:
        """Inline this model's body into the outer graph, under its name (``"block/..."``)."""
        if len(inputs) != self.num_inputs:
            raise CompilerError(f"model '{self.name}' takes {self.num_inputs} input(s), "
                                f"received {len(inputs)}")
        checked = [builder.expect(self, n, d) for n, d in zip(inputs, self.declared_inputs)]
        with builder.scope(self):
            return self._lower_body(builder, checked)

    def _lower_output(self, builder, inputs: list[int], index: int) -> int:
        """Output ``index`` of this model called on ``inputs``; its body is emitted once per
        call however many of its outputs the outer graph reads (``outputs.OutputOf``)."""
        memo = call_memo(builder, self, inputs)
        if "outputs" not in memo:
            memo["outputs"] = builder.lower_layer(self, inputs)
        return memo["outputs"][index]

    def _call_symbolically(self, inputs: Sequence[SymbolicTensor]) -> SymbolicTensor:
        """Record ``self(*inputs)`` in a functional graph; the output type is inferred now."""
        from ..lowering import lower
        from ..passes import CompileContext, propagate_shapes

        if len(inputs) != self.num_inputs:
            raise CompilerError(f"model '{self.name}' takes {self.num_inputs} input(s), "
                                f"received {len(inputs)}")
        graph = lower(self, [x.type for x in inputs])
        try:
            propagate_shapes(graph, CompileContext())
        except ShapeError as e:
            shapes = ", ".join(str(x.type) for x in inputs)
            raise ShapeError(f"model '{self.name}' ({type(self).__name__}) called on {shapes}: "
                             f"{e}") from None
        outs = [graph.nodes[n]["type"] for n in graph.graph["outputs"]]
        if self._single_output:
            return SymbolicTensor(outs[0], self, inputs)
        return split_outputs(self, outs, inputs)  # a list, as Keras returns: a, b = inner(x)

    # -- building ---------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return all(layer.built for layer in self._layers)

    def _weight_entries(self) -> list[tuple[str, Layer, str]]:
        """``(key, layer, parameter)`` for every weight once; names the variables by key."""
        entries = weight_entries(self)
        for key, layer, pname in entries:
            var = layer.variable(pname)
            # The deepest path wins: a layer built inside a block keeps "block/dense/kernel"
            # even when the block is also used on its own.
            if var._path is None or key.count("/") >= var._path.count("/"):
                var.name = key
        return entries

    def build(self, input_shape: Any = None) -> None:
        """Infer every size from ``input_shape`` (batch axis included, e.g. ``(None, 20)``) and
        initialize the weights. Several inputs: a list of shapes."""
        if input_shape is None:
            if self._input_specs is None:
                raise DeferredInitializationError(
                    f"model '{self.name}': build() needs an input shape, e.g. "
                    f"net.build((None, 20))")
            specs = self._input_specs
        else:
            specs = _as_specs(input_shape, self.num_inputs)
        self._build_from(specs)

    def _build_from(self, specs: Sequence[TensorSpec]) -> None:
        from ..driver import build_model

        with self._lock:
            build_model(self, specs)

    def _build_or_defer(self, specs: Sequence[TensorSpec]) -> None:
        """Build from the declared inputs; when an input declares its feature width (last axis)
        ``None`` (``Input((None, None))``) and a weight depends on it, leave the weights to the
        first call, as ``Sequential`` without an input shape does (Keras builds on data). A
        weight that depends on a length or a spatial side stays an error here."""
        try:
            self._build_from(specs)
        except DeferredInitializationError:
            if not any(len(s.shape) > 1 and s.shape[-1] is None for s in specs):
                raise

    def _build_for_call(self, arrays: Sequence[np.ndarray]) -> None:
        """First call of a model whose declared widths were open: build with the widths taken
        from the data and every other declared ``None`` axis kept symbolic (one plan per
        length is then not needed to size the weights)."""
        specs = [TensorSpec(s.shape[:-1] + ((a.shape[-1],) if s.shape[-1] is None else
                                            (s.shape[-1],)), s.dtype) if len(s.shape) > 1
                 else s for s, a in zip(self._input_specs, arrays)]
        self._build_from(specs)

    # -- running ----------------------------------------------------------------------------
    def __call__(self, *inputs: Any, **kwargs: Any) -> Any:
        """Run the model on arrays: compiles (and caches) a plan for this input signature."""
        if len(inputs) == 1 and not kwargs and type(inputs[0]) is np.ndarray \
                and inputs[0].ndim and self.num_inputs == 1:  # the common case, kept cheap
            x = inputs[0]
            plan = self._plans.get(((x.ndim,) + x.shape[1:],))
            if plan is not None:
                return plan(x)
        if kwargs:
            raise TypeError(f"model '{self.name}' takes its inputs positionally, received "
                            f"keyword arguments {sorted(kwargs)}")
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)) and (
                self.num_inputs > 1 or (inputs[0] and isinstance(inputs[0][0], SymbolicTensor))):
            inputs = tuple(inputs[0])
        if any(isinstance(x, SymbolicTensor) for x in inputs):
            if not all(isinstance(x, SymbolicTensor) for x in inputs):
                raise CompilerError(f"model '{self.name}': mix of symbolic tensors and arrays "
                                    f"in a call")
            return self._call_symbolically(inputs)
        if len(inputs) != self.num_inputs:
            raise CompilerError(f"model '{self.name}' takes {self.num_inputs} input(s), "
                                f"received {len(inputs)}")
        from ..inputs import as_input_array

        arrays = [as_input_array(x, dt, name) for x, name, dt in
                  zip(inputs, self.input_names, self._input_dtypes())]
        key = tuple((a.ndim,) + a.shape[1:] for a in arrays)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan_for(key, arrays)
        return plan(*arrays)

    def _input_dtypes(self) -> list:
        """Each input's value dtype: declared int/bool inputs keep theirs, the rest compute in
        the model dtype (``compiler.dtypes.value_dtype``)."""
        from ..dtypes import value_dtype

        specs = self._input_specs or [None] * self.num_inputs
        return [value_dtype(getattr(s, "dtype", None), self.dtype) for s in specs]

    def _plan_for(self, key: tuple, arrays: Sequence[np.ndarray]):
        from ..driver import compile as compile_model

        with self._lock:
            plan = self._plans.get(key)
            if plan is None and self._built_specs is None and self._input_specs is not None \
                    and all(a.ndim == len(s.shape) for s, a in zip(self._input_specs, arrays)):
                self._build_for_call(arrays)
            if plan is None:
                specs = [TensorSpec.from_array(a) if a.ndim else TensorSpec(()) for a in arrays]
                plan = compile_model(self, *specs)
                self._plans[key] = plan
        return plan

    def predict(self, x: Any, batch_size: int | None = None) -> Any:
        """Keras-compatible alias of calling the model (optionally in batches)."""
        if batch_size is None:
            return self(x)
        x = np.asarray(x)
        parts = [self(x[i:i + batch_size]) for i in range(0, max(len(x), 1), batch_size)]
        return np.concatenate(parts) if parts else self(x)

    # -- weights ----------------------------------------------------------------------------
    def _require_built(self) -> list[tuple[str, Layer, str]]:
        entries = self._weight_entries()
        for key, layer, pname in entries:
            if layer.variable(pname).value is None:
                raise DeferredInitializationError(
                    f"model '{self.name}' has no weights yet: layer '{key.rsplit('/', 1)[0]}' "
                    f"does not know its input size. Call the model on data (net(X)), or build it "
                    f"with an input shape, e.g. net.build((None, 20)).")
        return entries

    @property
    def weights(self) -> list[Variable]:
        """Every initialized weight once, as a variable named by its key."""
        return [layer.variable(p) for _, layer, p in self._weight_entries()
                if layer.variable(p).value is not None]

    def get_weights(self) -> list[np.ndarray]:
        """All weights in Keras order, each shared weight once; raises until they exist."""
        return [layer.variable(p).value.copy() for _, layer, p in self._require_built()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Set every weight at once (in ``get_weights`` order); on error nothing changes."""
        entries = self._require_built()
        weights = list(weights)
        if len(weights) != len(entries):
            raise ShapeError(f"model '{self.name}' has {len(entries)} weight arrays, received "
                             f"{len(weights)}")
        for (key, layer, pname), w in zip(entries, weights):
            current = layer.variable(pname).value
            if np.shape(w) != current.shape:
                raise ShapeError(f"weight '{key}' expects shape {current.shape}, received "
                                 f"{np.shape(w)}")
            if np.asarray(w).dtype.kind not in "fiu":
                raise CompilerError(f"weight '{key}' must be numeric, received dtype "
                                    f"{np.asarray(w).dtype}")
        for (_, layer, pname), w in zip(entries, weights):
            with layer._lock:
                layer.variable(pname)._set(np.asarray(w), in_place=True)

    @property
    def weight_store(self) -> WeightStore:
        """Every weight of the model by key (``"dense_1/kernel"``), each listed once.

        The variables belong to the layers, so a layer shared with another model is the same
        variable in both stores; compiled plans read weights from here by key.
        """
        entries = self._weight_entries()
        signature = tuple((key, id(layer)) for key, layer, _ in entries)
        cached = self.__dict__.get("_store_cache")
        if cached is None or cached[0] != signature:
            store = WeightStore({key: layer.variable(p) for key, layer, p in entries})
            cached = (signature, store)
            self.__dict__["_store_cache"] = cached
        return cached[1]

    def count_params(self) -> int | None:
        """Scalars in the weights, each shared weight once; ``None`` while a size is unknown."""
        total = 0
        for _, layer, pname in self._weight_entries():
            shape = layer.param_shapes.get(pname)
            if shape is None or any(not isinstance(d, int) for d in shape):
                return None
            total += int(np.prod(shape, dtype=np.int64))
        return total

    # -- saving (compiler/frontend/saving.py) ----------------------------------------------
    def save_weights(self, path: Any) -> None:
        """Write every weight to an ``.npz`` keyed ``layer/param``; atomic (temp file + rename)."""
        from .saving import save_weights

        save_weights(self, path)

    def load_weights(self, path: Any) -> None:
        """Read weights saved by ``save_weights``; an uninitialized model takes its shapes from
        the file. All-or-nothing: on any error the model is unchanged."""
        from .saving import load_weights

        load_weights(self, path)

    def save(self, path: Any) -> None:
        """Write a Keras 3 ``.keras`` file (``keras.saving.load_model`` and
        ``compiler.load_model`` read it); atomic, and a refusal writes nothing."""
        from ..kerasfile import save_keras

        save_keras(self, path)

    def to_config(self) -> dict:
        """The architecture as a JSON-serializable dict (``Model.from_config`` rebuilds it)."""
        from .saving import model_to_config

        if self.__dict__.get("_subclassed"):
            from .subclassing import subclassed_to_config

            return subclassed_to_config(self)
        return model_to_config(self)

    def get_config(self) -> dict:
        return self.to_config()["config"]

    @classmethod
    def from_config(cls, config: dict) -> Model:
        """A new model (Sequential or functional) from ``to_config``'s output, fresh weights."""
        from .saving import layer_class, model_from_config
        from .subclassing import subclassed_from_config

        if isinstance(config, dict) and config.get("subclassed"):  # to_config of a subclass
            found = layer_class(config["class_name"])
            if not (isinstance(found, type) and issubclass(found, Model)):
                raise CompilerError(f"{config['class_name']!r} is not a Model subclass")
            return subclassed_from_config(found, config["config"])
        if cls not in (Model, Sequential):  # MyModel.from_config(net.get_config())
            return subclassed_from_config(cls, config)
        return model_from_config(config)

    # -- reporting --------------------------------------------------------------------------
    def summary(self, print_fn: Any = print) -> str:
        """Layer name, type, output shape (symbolic dims shown by name), parameter counts."""
        from .summary import render_summary

        text = render_summary(self)
        if print_fn is not None:
            print_fn(text)
        return text

    def assumed_input_types(self) -> list[TensorType]:
        """Input types for reports: the built/declared signature, else the natural rank guess."""
        specs = self._built_specs or self._input_specs
        if specs is not None:
            return [s.to_type(self.dtype, i) for i, s in enumerate(specs)]
        rank = natural_input_rank(self)
        shape = None if rank is None else (Dim.symbol("N"),) + (None,) * (rank - 1)
        return [TensorType(shape, self.dtype)]

    def __repr__(self) -> str:
        names = [layer.name for layer in self._layers]
        return f"<{type(self).__name__} '{self.name}' layers={names}>"


class Sequential(Model):
    """A plain stack of layers; the first may be ``Input(shape)`` or declare ``input_shape``."""

    def __init__(self, layers: Iterable[Any] = (), name: str | None = None, dtype: Any = None):
        self._init_common(name, dtype)
        self._stack: list[Layer] = []  # the layers in calling order; a tied layer repeats
        self._layers: list[Layer] = []  # each layer once
        self._member_ids: set = set()
        self._single_output = True
        items = list(layers)
        if items and isinstance(items[0], SymbolicTensor):
            self._input_specs = [items[0].spec]
            if dtype is None and items[0].dtype.kind == "f":
                self.dtype = items[0].dtype
            items = items[1:]
        for layer in items:
            self._append(layer)
        self._name_layers()
        if self._input_specs is None and self._stack and self._stack[0]._declared_input:
            self._input_specs = [TensorSpec(self._stack[0]._declared_input)]
        if self._input_specs is not None:
            self._build_or_defer(self._input_specs)

    def _append(self, layer: Any) -> None:
        if isinstance(layer, SymbolicTensor):
            raise CompilerError("Sequential: Input(...) may only be the first element")
        if not isinstance(layer, Layer):
            raise CompilerError(f"Sequential: expected a layer, received {layer!r}")
        if layer.is_model and layer.num_inputs != 1:
            raise CompilerError(f"Sequential: model '{layer.name}' takes {layer.num_inputs} "
                                f"inputs; a Sequential passes one")
        if layer.is_model and not layer._single_output:
            raise CompilerError(f"Sequential: model '{layer.name}' has several outputs; every "
                                f"layer of a Sequential has one (call it in a functional Model: "
                                f"a, b = {layer.name}(x))")
        self._stack.append(layer)
        if id(layer) not in self._member_ids:
            self._member_ids.add(id(layer))
            self._layers.append(layer)

    def add(self, layer: Layer) -> None:
        """Append a layer (Keras ``add``); an already built model builds the new layer now."""
        with self._lock:
            self._append(layer)
            try:
                self._name_layers()
                if self._input_specs is not None:
                    self._build_from(self._input_specs)
            except Exception:
                self._stack.pop()
                self._layers = _unique(self._stack)
                self._member_ids = {id(x) for x in self._layers}
                raise
            self._plans.clear()

    @property
    def num_inputs(self) -> int:
        return 1

    def _lower_body(self, builder, input_nodes: list[int]) -> list[int]:
        (node,) = input_nodes
        for layer in self._stack:
            node = _single(layer, builder.lower_layer(layer, [node]))
        return [node]

    def __repr__(self) -> str:
        names = [layer.name for layer in self._stack]
        return f"<Sequential '{self.name}' layers={names}>"


def _single(layer: Layer, outputs: list[int]) -> int:
    if len(outputs) != 1:
        raise CompilerError(f"layer '{layer.name}' ({type(layer).__name__}) has "
                            f"{len(outputs)} outputs where one is expected")
    return outputs[0]


def _contains(model: Model, target: Model) -> bool:
    """Whether ``target`` is nested anywhere inside ``model``."""
    return any(layer is target or (layer.is_model and _contains(layer, target))
               for layer in model.layers)


def natural_input_rank(model: Model) -> int | None:
    """The input rank the first layer implies (looking into a nested first model)."""
    first = model._stack[0] if isinstance(model, Sequential) and model._stack else (
        model.layers[0] if model.layers else None)
    if first is None:
        return None
    if first.is_model:
        return natural_input_rank(first)
    return get_op(first.op).natural_input_rank


def _collect_calls(inputs, outputs) -> list:
    """Layer calls between ``inputs`` and ``outputs`` in a valid execution order."""
    order: list = []
    seen: set = set()
    input_ids = {id(t) for t in inputs}

    def visit(t: SymbolicTensor, path: tuple) -> None:
        if id(t) in seen or id(t) in input_ids:
            return
        if t.layer is None:
            raise CompilerError(f"Model: output depends on an Input that is not among the "
                                f"model's inputs ({t.type})")
        for a in t.inputs:
            visit(a, path + (t,))
        seen.add(id(t))
        order.append((t.layer, t.inputs, t))

    for out in outputs:
        visit(out, ())
    return order


def _unique(layers: Iterable[Layer]) -> list[Layer]:
    seen: set = set()
    out = []
    for layer in layers:
        if id(layer) not in seen:
            seen.add(id(layer))
            out.append(layer)
    return out


def _as_specs(input_shape: Any, num_inputs: int) -> list[TensorSpec]:
    """Accept ``(None, 20)``, a ``TensorSpec``, or a list of them for several inputs."""
    if isinstance(input_shape, TensorSpec):
        items = [input_shape]
    elif (isinstance(input_shape, (list, tuple)) and input_shape
          and all(isinstance(s, (list, tuple, TensorSpec)) for s in input_shape)):
        items = list(input_shape)
    else:
        items = [input_shape]
    if len(items) != num_inputs:
        raise CompilerError(f"expected {num_inputs} input shape(s), received {len(items)}: "
                            f"{input_shape!r}")
    for s in items:
        if not isinstance(s, (TensorSpec, list, tuple)):
            raise CompilerError(f"an input shape must be a tuple with the batch axis first, "
                                f"e.g. (None, 20); received {s!r}")
    return [s if isinstance(s, TensorSpec) else TensorSpec(tuple(s)) for s in items]


