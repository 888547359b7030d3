"""Keras-style layers: ``__init__`` validates and stores configuration, nothing more.

Weights are created by the compiler's ``initialize`` pass once shape propagation knows their
shapes; a layer only holds them (``get_weights`` is ``[]`` until then). A layer instance used at
several places in a model shares one set of weights (parameter tying).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import CompilerError, DeferredInitializationError, DTypeError, ShapeError
from ..ops import get_op
from ..ops.activations import canonical_activation
from ..symbolic import format_shape
from ..types import TensorType, as_model_dtype
from ..weights import Variable
from . import initializers

_name_counters: dict[str, itertools.count] = defaultdict(itertools.count)
_name_lock = threading.Lock()


def _snake_case(name: str) -> str:
    """Keras' rule: ``Conv2D`` -> ``conv2d``, ``ReLU`` -> ``re_lu``, ``MaxPooling2D`` ->
    ``max_pooling2d``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _positive_int(value: Any, what: str, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise CompilerError(f"{layer}: {what} must be a positive int, received {value!r}")
    return int(value)


def _flag(value: Any, what: str, layer: str) -> bool:
    """A boolean option; ``"no"`` or ``2`` would otherwise silently mean ``True``."""
    if not isinstance(value, (bool, np.bool_)):
        raise CompilerError(f"{layer}: {what} must be True or False, received {value!r}")
    return bool(value)


class Layer:
    """Base class. Subclasses set ``op`` and implement ``op_attrs`` (and initializers if any).

    Or, the Keras way: define ``build(self, input_shape)`` (create weights with ``add_weight``)
    and ``call(self, inputs)`` (compute with ``compiler.ops`` and operators); ``call`` is traced
    into primitive ops (``tracing.py``) and ``build`` runs on the first call with the inferred
    input shape.
    """

    op: str = "identity"
    #: True for ``Sequential``/``Model``: composite layers whose weights live in their layers.
    is_model: bool = False
    #: Whether the name was picked automatically (a nested model may then be renamed to stay
    #: unique among its siblings).
    _auto_named: bool = False
    #: set on subclasses that define ``call``: lowered by tracing it
    _traced: bool = False

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        # A custom layer (not a Model subclass: a subclassed Model lowers its body through
        # ``Model.lower``) that defines ``call`` and no ``lower`` of its own is traced.
        if "call" in cls.__dict__ and not cls.is_model:
            cls._traced = True
            if "lower" not in cls.__dict__:
                cls.lower = cls.lower_traced  # what lowering calls (``GraphBuilder.lower_layer``)

    def __init__(self, name: str | None = None, input_shape: Sequence | None = None,
                 input_dim: int | None = None, dtype: Any = None, **kwargs: Any):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(kwargs)}")
        if name is not None and (not isinstance(name, str) or not name):
            raise CompilerError(f"{type(self).__name__}: name must be a non-empty string, "
                                f"received {name!r}")
        self._name = name
        self._declared_input: tuple | None = None
        if input_dim is not None:
            self._declared_input = (None, _positive_int(input_dim, "input_dim", self._kind))
        if input_shape is not None:
            if isinstance(input_shape, (int, np.integer)):
                input_shape = (input_shape,)
            if not isinstance(input_shape, (tuple, list)):
                raise CompilerError(f"{self._kind}: input_shape must be a tuple of sizes "
                                    f"excluding the batch axis, received {input_shape!r}")
            dims = tuple(None if d is None else _positive_int(d, "input_shape entry", self._kind)
                         for d in input_shape)
            self._declared_input = (None,) + dims
        try:
            self.dtype = None if dtype is None else as_model_dtype(dtype)
        except DTypeError as e:
            raise DTypeError(f"{self._kind}: {e}") from None
        self._variables: dict[str, Variable] = {}
        self._lock = threading.RLock()

    # -- pickling (Keras 3 models pickle; Dask and multiprocessing ship models this way) -----
    def __getstate__(self) -> dict:
        """Everything the user defined, weights included; locks and compiled plans are rebuilt
        on the other side (a plan is cheap to recompile and the kernels come from the cache)."""
        state = self.__dict__.copy()
        state.pop("_lock", None)
        if "_plans" in state:
            state["_plans"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)  # not setattr: a subclassed model would re-scan its layers
        self.__dict__["_lock"] = threading.RLock()

    # -- identity ---------------------------------------------------------------------------
    @property
    def _kind(self) -> str:
        return type(self).__name__

    @property
    def name(self) -> str:
        """Keras-style ``dense``, ``dense_1``...; fixed when first read or when joining a model."""
        if self._name is None:
            self._assign_name(set())
        return self._name

    def _assign_name(self, taken: set) -> None:
        """Pick the first free ``base``, ``base_1``... not in ``taken`` (unless already named)."""
        if self._name is not None:
            return
        base = _snake_case(self._kind)
        with _name_lock:
            for i in itertools.count():
                candidate = base if i == 0 else f"{base}_{i}"
                if candidate not in taken:
                    self._name = candidate
                    self._auto_named = True
                    return

    def __repr__(self) -> str:
        return f"<{self._kind} name={self.name}>"

    # -- configuration ----------------------------------------------------------------------
    def op_attrs(self) -> dict:
        return {}

    def initializer(self, param: str) -> initializers.Initializer:
        specs = self.__dict__.get("_weight_specs", {})
        if param in specs:
            return specs[param].initializer
        raise CompilerError(f"{self._kind} has no parameter {param!r}")

    @property
    def param_names(self) -> list[str]:
        if self._traced:
            return list(self.__dict__.get("_weight_specs", ()))
        return list(get_op(self.op).param_shapes([TensorType(None)], self.op_attrs()))

    # -- custom layers (compiler/frontend/tracing.py) ---------------------------------------
    def build(self, input_shape: Any) -> None:
        """Create weights with ``add_weight``; runs once, on the first call, with the inferred
        input shape (``None`` for sizes known only at run time, like the batch)."""

    def add_weight(self, name: str | None = None, shape: Sequence = (),
                   initializer: Any = "glorot_uniform", dtype: Any = None,
                   trainable: bool = True) -> Any:
        """Declare a weight (Keras ``add_weight``); it is created with the model's others."""
        from .tracing import add_weight

        return add_weight(self, name, shape, initializer, dtype)

    def _sublayers(self) -> list[Layer]:
        """The layers a custom layer holds in its attributes (``sublayers.py``)."""
        if not self._traced:
            return []
        from .sublayers import sublayers

        return sublayers(self)

    def lower_traced(self, builder: Any, inputs: list[int]) -> list[int]:
        """``lower`` of a custom layer: its ``call`` traced into primitive nodes."""
        from .tracing import trace_call

        return [trace_call(self, builder, inputs)]

    # -- weights ----------------------------------------------------------------------------
    def variable(self, pname: str) -> Variable:
        """The ``Variable`` holding parameter ``pname`` (created empty on first request)."""
        var = self._variables.get(pname)
        if var is None:
            with self._lock:
                var = self._variables.setdefault(pname, Variable(pname, owner=self))
        return var

    @property
    def _weights(self) -> dict[str, np.ndarray]:
        """The initialized weights by parameter name (a snapshot dict of the live arrays)."""
        return {p: v.value for p, v in self._variables.items() if v.value is not None}

    @property
    def built(self) -> bool:
        if self._traced and not self.__dict__.get("_build_done"):
            return False
        return all(self.variable(p).value is not None for p in self.param_names) and \
            all(sub.built for sub in self._sublayers())

    @property
    def param_shapes(self) -> dict[str, tuple]:
        """Each parameter's shape as far as known; ``None`` marks a size not inferred yet."""
        if self.built:
            return {p: self.variable(p).value.shape for p in self.param_names}
        if self._traced:
            return {p: spec.shape for p, spec in self.__dict__.get("_weight_specs", {}).items()}
        declared = [TensorType(self._declared_input)] if self._declared_input else [
            TensorType(None)]
        return dict(get_op(self.op).param_shapes(declared, self.op_attrs()))

    def count_params(self) -> int | None:
        """Number of scalars in the weights, or ``None`` while some size is unknown."""
        if self._traced and not self.__dict__.get("_build_done"):
            return None  # a custom layer's weights are declared by its build()
        total = 0
        for shape in self.param_shapes.values():
            if any(d is None or not isinstance(d, int) for d in shape):
                return None
            total += int(np.prod(shape, dtype=np.int64))
        for sub in self._sublayers():
            inner = sub.count_params()
            if inner is None:
                return None
            total += inner
        return total

    @property
    def weights(self) -> list[Variable]:
        """The initialized weights as Keras 3 variables (``.name``, ``.shape``, ``.numpy()``,
        ``.assign()``); ``[]`` before initialization."""
        if self._sublayers():
            from .sublayers import all_weights

            return [owner.variable(p) for owner, p in all_weights(self)
                    if owner.variable(p).value is not None]
        return [var for var in (self.variable(p) for p in self.param_names)
                if var.value is not None]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights in Keras order, ``[]`` before initialization."""
        if not self.built:
            return []
        if self._sublayers():
            from .sublayers import all_weights

            return [owner.variable(p).value.copy() for owner, p in all_weights(self)]
        return [self.variable(p).value.copy() for p in self.param_names]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Replace all weights; shapes must match (or, before init, must fit the configuration).

        Each change bumps the weight's version, which compiled plans of every model holding this
        layer notice on their next call.
        """
        if self._sublayers():
            from .sublayers import set_composite_weights

            return set_composite_weights(self, weights)
        names = self.param_names
        weights = list(weights)
        if len(weights) != len(names):
            raise ShapeError(f"layer '{self.name}' ({self._kind}) has {len(names)} weights "
                             f"{names}, received {len(weights)}")
        staged = {}
        known = self.param_shapes
        for pname, value in zip(names, weights):
            arr = np.asarray(value)
            if arr.dtype.kind not in "fiu":
                raise CompilerError(f"layer '{self.name}': weight {pname} must be numeric, "
                                    f"received dtype {arr.dtype}")
            expected = known[pname]
            ok = len(expected) == arr.ndim and all(
                e is None or e == r for e, r in zip(expected, arr.shape))
            if not ok:
                raise ShapeError(f"layer '{self.name}' ({self._kind}): weight {pname} expects "
                                 f"shape {format_shape(expected)}, received {arr.shape}")
            staged[pname] = arr
        with self._lock:
            for pname, arr in staged.items():
                var = self.variable(pname)
                if var.value is not None and var.value.shape == arr.shape:
                    var._set(arr, in_place=True)  # arrays handed out earlier see the change
                else:
                    # Until a model fixes the dtype, keep float precision; ints become float32.
                    dtype = self.dtype or (arr.dtype if arr.dtype.kind == "f" and
                                           arr.dtype.itemsize >= 4 else np.dtype(np.float32))
                    var.replace(np.array(arr, dtype=dtype, order="C"))

    # -- calling ----------------------------------------------------------------------------
    def lower(self, builder: Any, inputs: list[int]) -> list[int]:
        """Emit this call's IR nodes (``compiler.lowering.GraphBuilder``); returns the outputs.

        A primitive layer is one node; composite layers (nested models) emit several.
        """
        return [builder.call(self, inputs)]

    def __call__(self, *inputs: Any) -> Any:
        """On symbolic tensors: record a call in a functional graph. On arrays: run the layer
        (a one-layer model, built on first use). Several inputs may come as one list."""
        from .functional import Input, SymbolicTensor, call_layer_symbolically

        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)) and inputs[0] and \
                all(isinstance(x, SymbolicTensor) or hasattr(x, "shape") for x in inputs[0]):
            inputs = tuple(inputs[0])
        if any(isinstance(x, SymbolicTensor) for x in inputs):
            return call_layer_symbolically(self, inputs)
        from .models import Model, Sequential

        with self._lock:
            eager = self.__dict__.get("_eager_model")
            if eager is None or eager.num_inputs != len(inputs):
                if len(inputs) == 1:
                    eager = Sequential([self])
                else:
                    tensors = [Input(np.shape(x)[1:]) for x in inputs]
                    eager = Model(tensors, self(tensors))
                self.__dict__["_eager_model"] = eager
        return eager(*inputs)

    # -- serialization ----------------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"name": self.name}
        if self._declared_input is not None:
            config["input_shape"] = list(self._declared_input[1:])
        if self.dtype is not None:
            config["dtype"] = str(self.dtype)
        return config

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        return cls(**config)


class Dense(Layer):
    """``activation(x @ kernel + bias)``; the input width is inferred on first use."""

    supports_masking = True  # passes a time-step mask on (frontend/masking.py)
    op = "dense"

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.units = _positive_int(units, "units", "Dense")
        self.activation = canonical_activation(activation)
        self.use_bias = _flag(use_bias, "use_bias", "Dense")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def op_attrs(self) -> dict:
        return {"units": self.units, "activation": self.activation, "use_bias": self.use_bias}

    def initializer(self, param: str) -> initializers.Initializer:
        return {"kernel": self.kernel_initializer, "bias": self.bias_initializer}[param]

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}


class Activation(Layer):
    """Applies a named activation (``Activation("tanh")``)."""

    supports_masking = True  # passes a time-step mask on (frontend/masking.py)
    op = "activation"

    def __init__(self, activation: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.activation = canonical_activation(activation)

    def op_attrs(self) -> dict:
        return {"activation": self.activation}

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": self.activation}


class ReLU(Activation):
    def __init__(self, **kwargs: Any):
        super().__init__("relu", **kwargs)

    def get_config(self) -> dict:
        return Layer.get_config(self)


class LeakyReLU(Activation):
    """Keras 3 default ``negative_slope=0.3``."""

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any):
        super().__init__("leaky_relu", **kwargs)
        if isinstance(negative_slope, bool) or not isinstance(
                negative_slope, (int, float, np.integer, np.floating)) or not np.isfinite(
                negative_slope):
            raise CompilerError(f"LeakyReLU: negative_slope must be a finite number, received "
                                f"{negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def op_attrs(self) -> dict:
        return {"activation": "leaky_relu", "alpha": self.negative_slope}

    def get_config(self) -> dict:
        return {**Layer.get_config(self), "negative_slope": self.negative_slope}


class Softmax(Activation):
    """Softmax over ``axis`` (the last by default, which fuses like any activation)."""

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__("softmax", **kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise CompilerError(f"Softmax: axis must be a non-batch axis (an int other than 0), "
                                f"received axis={axis!r}")
        self.axis = axis
        if axis != -1:
            self.op = "softmax"

    def op_attrs(self) -> dict:
        return {"activation": "softmax"} if self.axis == -1 else {"axis": self.axis}

    def get_config(self) -> dict:
        return {**Layer.get_config(self), "axis": self.axis}


class Flatten(Layer):
    op = "flatten"


class Reshape(Layer):
    op = "reshape"

    def __init__(self, target_shape: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(target_shape, (tuple, list)):
            raise CompilerError(f"Reshape: target_shape must be a tuple of sizes excluding the "
                                f"batch axis, received {target_shape!r}")
        target = tuple(target_shape)
        if sum(1 for d in target if d == -1) > 1 or any(
                not isinstance(d, (int, np.integer)) or (d <= 0 and d != -1) for d in target):
            raise CompilerError(f"Reshape: target_shape must hold positive ints and at most one "
                                f"-1, received {target_shape!r}")
        self.target_shape = tuple(int(d) for d in target)

    def op_attrs(self) -> dict:
        return {"target_shape": self.target_shape}

    def get_config(self) -> dict:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Dropout(Layer):
    """Identity at inference; ``rate`` is kept for the configuration."""

    supports_masking = True  # passes a time-step mask on (frontend/masking.py)
    op = "identity"

    def __init__(self, rate: float, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 1:
            raise CompilerError(f"Dropout: rate must be in [0, 1), received {rate!r}")
        self.rate = float(rate)

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate}


def require_built(layer: Layer) -> None:
    if not layer.built:
        raise DeferredInitializationError(
            f"layer '{layer.name}' has no weights yet: its input size is unknown. Call the model on"
            " data, or build it with an input shape, e.g. net.build((None, 20)).")


