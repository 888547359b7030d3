"""Recurrent layers: ``SimpleRNN``, ``LSTM``, ``GRU`` and ``Bidirectional`` (Keras 3 API).

Each call lowers to one node of the ``simple_rnn``/``lstm``/``gru`` op per value the model
reads (``compiler/ops/recurrent.py``): the output, and with ``return_state`` the final states.
The input mask, if any (``masking.py``), becomes the node's last data operand.
Several outputs: the first is the layer's own ``SymbolicTensor``; the others come from
``OutputOf`` stand-ins (``outputs.py``), which ``Model`` maps back to the layer (they hold no
weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import CompilerError
from ..ir import add_node
from ..ops.activations import canonical_activation
from ..ops.recurrent import GATES, STATES, packed_part
from ..types import TensorType
from . import initializers
from .layers import Layer, _flag, _positive_int
from .masking import mask_node
from .outputs import OutputOf as _OutputOf
from .outputs import call_memo


class UnitForgetBias(initializers.Initializer):
    """LSTM's ``unit_forget_bias``: the forget gate's bias starts at 1 (Jozefowicz et al.)."""

    name = "unit_forget_bias"

    def __init__(self, inner: initializers.Initializer, units: int):
        super().__init__()
        self.inner, self.units = inner, units

    def sample(self, shape, rng):
        u = self.units
        rest = self.inner.generate((2 * u,), np.float64, rng)
        return np.concatenate([self.inner.generate((u,), np.float64, rng), np.ones(u), rest])


class _MultiOutput(Layer):
    """``initial_state=`` in the call and several outputs with ``return_state``."""

    return_state = False

    def __call__(self, *inputs: Any, initial_state: Any = None, mask: Any = None,
                 training: Any = None) -> Any:
        from .functional import Input, SymbolicTensor, call_layer_symbolically

        if mask is not None:
            raise CompilerError(f"layer '{self.name}' ({self._kind}): an explicit mask= is not "
                                f"supported; use Embedding(mask_zero=True) or Masking")
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
            inputs = tuple(inputs[0])
        if initial_state is not None:
            states = initial_state if isinstance(initial_state, (list, tuple)) else \
                [initial_state]
            inputs = tuple(inputs) + tuple(states)
        if not any(isinstance(x, SymbolicTensor) for x in inputs):
            from .models import Model

            with self._lock:
                key = (len(inputs),) + tuple(np.shape(x)[1:] for x in inputs)
                cache = self.__dict__.setdefault("_eager_models", {})
                if key not in cache:
                    tensors = [Input(np.shape(x)[1:]) for x in inputs]
                    outs = self(*tensors)
                    cache[key] = Model(tensors, outs)
            return cache[key](*inputs)
        out = self._symbolic_output(inputs) if hasattr(self, "_symbolic_output") else \
            call_layer_symbolically(self, inputs)
        extras = self._extra_types(out, inputs)
        if not extras:
            return out
        return [out] + [SymbolicTensor(t, _OutputOf(self, k), inputs)
                        for k, t in enumerate(extras, start=1)]

    def _extra_types(self, out, inputs) -> list[TensorType]:
        """Types of the outputs after the first (the final states with ``return_state``)."""
        return self._state_types(out, inputs) if self.return_state else []


class _RNN(_MultiOutput):
    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, seed: Any = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        kind = self._kind
        self.units = _positive_int(units, "units", kind)
        self.activation = canonical_activation(activation)
        self.recurrent_activation = canonical_activation(recurrent_activation)
        for what, act in (("activation", self.activation),
                          ("recurrent_activation", self.recurrent_activation)):
            if act == "softmax":
                raise CompilerError(f"{kind}: {what} must be element-wise, received 'softmax'")
        self.use_bias = _flag(use_bias, "use_bias", kind)
        self.return_sequences = _flag(return_sequences, "return_sequences", kind)
        self.return_state = _flag(return_state, "return_state", kind)
        self.go_backwards = _flag(go_backwards, "go_backwards", kind)
        self.unroll = _flag(unroll, "unroll", kind)  # accepted, ignored: one fused loop
        if _flag(stateful, "stateful", kind):
            raise CompilerError(f"{kind}: stateful=True is not supported (inference plans keep "
                                f"no state between calls)")
        for what, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
                raise CompilerError(f"{kind}: {what} must be in [0, 1), received {rate!r}")
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        #: set by Bidirectional on its copies, as Keras does
        self.zero_output_for_mask = False

    @property
    def supports_masking(self) -> bool:
        return self.return_sequences  # Keras: the output keeps the mask only as a sequence

    def op_attrs(self) -> dict:
        attrs = {"units": self.units, "activation": self.activation,
                 "use_bias": self.use_bias, "return_sequences": self.return_sequences,
                 "go_backwards": self.go_backwards}
        if GATES[self.op] > 1:
            attrs["recurrent_activation"] = self.recurrent_activation
        return attrs

    def initializer(self, param: str) -> initializers.Initializer:
        return {"kernel": self.kernel_initializer,
                "recurrent_kernel": self.recurrent_initializer,
                "bias": self.bias_initializer}[param]

    # -- lowering ----------------------------------------------------------------------------
    def _state_types(self, out, inputs) -> list[TensorType]:
        n = None if out.shape is None else out.shape[0]
        return [out.type.with_shape((n, self.units))] * STATES[self.op]

    def _emit(self, builder: Any, inputs: Sequence[int], which: str, origin: Any = None,
              **extra: Any) -> int:
        """The node computing ``which`` (``"sequence"``, ``"h"``, ``"c"``) of this call.

        With ``return_state`` every value is a slice of one ``output="all"`` node, so the
        recurrence runs once per call however many of its outputs the model reads."""
        memo = call_memo(builder, self, list(inputs) + sorted(extra.items()))
        if which not in memo:
            if self.return_state:
                if "all" not in memo:
                    memo["all"] = self._recurrent_node(builder, inputs, "all", origin, extra)
                memo[which] = self._unpack(builder, memo["all"], which, origin)
            elif which == "h" and not self.return_sequences:
                memo[which] = self._emit(builder, inputs, "sequence", origin, **extra)
            else:
                memo[which] = self._recurrent_node(builder, inputs, which, origin, extra)
        return memo[which]

    def _recurrent_node(self, builder: Any, inputs: Sequence[int], which: str, origin: Any,
                        extra: dict) -> int:
        mask = mask_node(builder, inputs[0])
        attrs = {**self.op_attrs(), **extra, "output": which, "masked": mask is not None}
        if self.zero_output_for_mask:
            attrs["zero_output_for_mask"] = True
        operands = list(inputs) + ([mask] if mask is not None else []) + builder.params(self)
        node = add_node(builder.graph, self.op, operands, attrs=attrs,
                        origin=origin or builder.origin(self))
        if self._declared_input is not None and origin is None:
            builder.graph.nodes[node]["expects"] = self._declared_input
        return node

    def _unpack(self, builder: Any, packed: int, which: str, origin: Any) -> int:
        """``which`` out of the ``(N, S + T, units)`` packed output (``compiler/ops/recurrent``)."""
        origin = origin or builder.origin(self)
        start, shape, squeeze = packed_part(self.op, which, self.return_sequences)
        part = add_node(builder.graph, "slice", [packed], origin=origin,
                        attrs={"start": start, "shape": shape})
        if not squeeze:
            return part
        return add_node(builder.graph, "squeeze", [part], attrs={"axis": 1}, origin=origin)

    def lower(self, builder: Any, inputs: list[int]) -> list[int]:
        return [self._emit(builder, inputs, "sequence")]

    def _lower_output(self, builder: Any, inputs: list[int], index: int) -> int:
        return self._emit(builder, inputs, ("h", "c")[index - 1])

    def get_config(self) -> dict:
        config = {**super().get_config(), "units": self.units, "activation": self.activation,
                  "use_bias": self.use_bias, "return_sequences": self.return_sequences,
                  "return_state": self.return_state, "go_backwards": self.go_backwards,
                  "unroll": self.unroll, "dropout": self.dropout,
                  "recurrent_dropout": self.recurrent_dropout,
                  "kernel_initializer": initializers.serialize(self.kernel_initializer),
                  "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                  "bias_initializer": initializers.serialize(self.bias_initializer)}
        if GATES[self.op] > 1:
            config["recurrent_activation"] = self.recurrent_activation
        return config


class SimpleRNN(_RNN):
    """``h = activation(x @ kernel + h @ recurrent_kernel + bias)``."""

    op = "simple_rnn"

    def __init__(self, units: int, activation: Any = "tanh", **kwargs: Any):
        if "recurrent_activation" in kwargs:
            raise TypeError("SimpleRNN: unexpected argument 'recurrent_activation'")
        super().__init__(units, activation=activation, **kwargs)


class LSTM(_RNN):
    """Keras LSTM: gates i, f, c, o; kernel ``(in, 4u)``, recurrent ``(u, 4u)``, bias ``(4u,)``."""

    op = "lstm"

    def __init__(self, units: int, unit_forget_bias: bool = True, **kwargs: Any):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = _flag(unit_forget_bias, "unit_forget_bias", "LSTM")

    def initializer(self, param: str) -> initializers.Initializer:
        if param == "bias" and self.unit_forget_bias:
            return UnitForgetBias(self.bias_initializer, self.units)
        return super().initializer(param)

    def get_config(self) -> dict:
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


class GRU(_RNN):
    """Keras GRU: gates z, r, h; ``reset_after=True`` (default) has bias ``(2, 3u)``."""

    op = "gru"

    def __init__(self, units: int, reset_after: bool = True, **kwargs: Any):
        super().__init__(units, **kwargs)
        self.reset_after = _flag(reset_after, "reset_after", "GRU")

    def op_attrs(self) -> dict:
        return {**super().op_attrs(), "reset_after": self.reset_after}

    def get_config(self) -> dict:
        return {**super().get_config(), "reset_after": self.reset_after}


MERGE_MODES = ("concat", "sum", "mul", "ave", None)
_MERGE_OPS = {"concat": ("concatenate", {"axis": -1}),
              "sum": ("add", {"expand_after_batch": True}),
              "mul": ("multiply", {"expand_after_batch": True}),
              "ave": ("average", {"expand_after_batch": True})}


class Bidirectional(_MultiOutput):
    """Runs ``layer`` forwards and a copy backwards, then merges (Keras ``merge_mode``).

    Weights: the forward layer's, then the backward copy's (``forward/kernel``, ...).
    """

    def __init__(self, layer: Layer, merge_mode: Any = "concat", backward_layer: Any = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(layer, _RNN):
            raise CompilerError(f"Bidirectional: layer must be a SimpleRNN, LSTM or GRU, "
                                f"received {layer!r}")
        if merge_mode not in MERGE_MODES:
            raise CompilerError(f"Bidirectional: merge_mode must be one of {MERGE_MODES}, "
                                f"received {merge_mode!r}")
        self.merge_mode = merge_mode
        self.forward_layer = layer
        if backward_layer is None:
            config = layer.get_config()
            config.update(name=f"backward_{layer.name}", go_backwards=not layer.go_backwards)
            backward_layer = type(layer).from_config(config)
        elif not isinstance(backward_layer, _RNN) or \
                backward_layer.go_backwards == layer.go_backwards or \
                backward_layer.return_sequences != layer.return_sequences:
            raise CompilerError("Bidirectional: backward_layer must be an RNN with the opposite "
                                "go_backwards and the same return_sequences")
        self.backward_layer = backward_layer
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        for inner in (self.forward_layer, self.backward_layer):
            inner.zero_output_for_mask = self.return_sequences  # as Keras does

    @property
    def op(self) -> str:  # what the rest of the frontend asks (input rank, ...)
        return self.forward_layer.op

    @property
    def supports_masking(self) -> bool:
        return self.return_sequences

    def _inner(self, pname: str) -> tuple[Layer, str]:
        side, _, name = pname.partition("/")
        return (self.forward_layer if side == "forward" else self.backward_layer), name

    @property
    def param_names(self) -> list[str]:
        return [f"{side}/{p}" for side, layer in (("forward", self.forward_layer),
                                                  ("backward", self.backward_layer))
                for p in layer.param_names]

    @property
    def param_shapes(self) -> dict:
        return {f"{side}/{p}": s for side, layer in (("forward", self.forward_layer),
                                                     ("backward", self.backward_layer))
                for p, s in layer.param_shapes.items()}

    @property
    def built(self) -> bool:
        return self.forward_layer.built and self.backward_layer.built

    def variable(self, pname: str):
        layer, name = self._inner(pname)
        return layer.variable(name)

    def initializer(self, pname: str) -> initializers.Initializer:
        layer, name = self._inner(pname)
        return layer.initializer(name)

    def op_attrs(self) -> dict:
        return self.forward_layer.op_attrs()

    # -- calling and lowering ----------------------------------------------------------------
    def _symbolic_output(self, inputs):
        from .functional import SymbolicTensor, call_layer_symbolically

        n_states = STATES[self.forward_layer.op] if len(inputs) > 1 else 0
        if len(inputs) not in (1, 1 + 2 * STATES[self.forward_layer.op]):
            raise CompilerError(f"layer '{self.name}' (Bidirectional) takes the input and "
                                f"optionally {2 * STATES[self.forward_layer.op]} initial "
                                f"states, received {len(inputs)} tensors")
        fwd = call_layer_symbolically(self.forward_layer, inputs[:1 + n_states])
        call_layer_symbolically(self.backward_layer, inputs[:1] + inputs[1 + n_states:])
        t = fwd.type
        if self.merge_mode == "concat" and t.shape is not None:
            t = t.with_shape(t.shape[:-1] + (2 * self.forward_layer.units,))
        return SymbolicTensor(t, self, inputs)

    def _state_types(self, out, inputs) -> list[TensorType]:
        n = None if out.shape is None else out.shape[0]
        k = STATES[self.forward_layer.op]
        return [out.type.with_shape((n, self.forward_layer.units))] * (2 * k)

    def _extra_types(self, out, inputs) -> list[TensorType]:
        """``merge_mode=None``: the backward output comes second (then the states)."""
        return ([out.type] if self.merge_mode is None else []) + super()._extra_types(out,
                                                                                       inputs)

    def _split(self, inputs: Sequence[int]) -> tuple[list[int], list[int]]:
        k = STATES[self.forward_layer.op] if len(inputs) > 1 else 0
        x = list(inputs[:1])
        return x + list(inputs[1:1 + k]), x + list(inputs[1 + k:])

    def lower(self, builder: Any, inputs: list[int]) -> list[int]:
        memo = call_memo(builder, self, inputs)
        if "merged" not in memo:
            fwd_in, bwd_in = self._split(inputs)
            origin = builder.origin(self)
            fwd = self.forward_layer._emit(builder, fwd_in, "sequence", origin)
            bwd = self.backward_layer._emit(builder, bwd_in, "sequence", origin,
                                            reverse_output=self.return_sequences)
            if self.merge_mode is None:  # two outputs: forward here, backward as output 1
                memo["merged"] = fwd
            else:
                op, attrs = _MERGE_OPS[self.merge_mode]
                memo["merged"] = add_node(builder.graph, op, [fwd, bwd], attrs=attrs,
                                          origin=origin)
        return [memo["merged"]]

    def _lower_output(self, builder: Any, inputs: list[int], index: int) -> int:
        fwd_in, bwd_in = self._split(inputs)
        reverse = {"reverse_output": self.return_sequences}
        if self.merge_mode is None:
            if index == 1:
                return self.backward_layer._emit(builder, bwd_in, "sequence",
                                                 builder.origin(self), **reverse)
            index -= 1
        k = STATES[self.forward_layer.op]
        layer, ins = (self.forward_layer, fwd_in) if index <= k else (self.backward_layer,
                                                                      bwd_in)
        which = ("h", "c")[(index - 1) % k]
        extra = {} if layer is self.forward_layer else reverse
        return layer._emit(builder, ins, which, builder.origin(self), **extra)

    def get_config(self) -> dict:
        return {**super().get_config(), "merge_mode": self.merge_mode,
                "layer": {"class_name": type(self.forward_layer).__name__,
                          "config": self.forward_layer.get_config()}}

    @classmethod
    def from_config(cls, config: dict) -> Bidirectional:
        config = dict(config)
        inner = config.pop("layer")
        layer = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}[inner["class_name"]]
        return cls(layer.from_config(inner["config"]), **config)
