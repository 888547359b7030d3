"""Transformer layers: Keras 3 ``MultiHeadAttention`` and keras-hub's ``PositionEmbedding``.

The query, value and key widths are inferred on the first call (deferred initialization), the
sequence lengths stay symbolic. Weights keep Keras' layout and order (``get_weights()`` is
``[query kernel, query bias, key kernel, key bias, value kernel, value bias, output kernel,
output bias]``), so Keras weights load unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CompilerError
from . import initializers
from .layers import Layer, _flag, _positive_int

#: the per-token masks a call may pass explicitly (``query_mask`` is accepted and dropped)
EXPLICIT_MASKS = ("value_mask", "key_mask")


class MultiHeadAttention(Layer):
    """``mha(query, value, key=None, attention_mask=None, use_causal_mask=False)``.

    Inference only: ``dropout`` is kept for the configuration. The call's form (whether ``key``,
    ``attention_mask``, ``value_mask`` and ``key_mask`` are given, ``use_causal_mask``) is fixed
    by the first call: one layer instance is one attention pattern.

    Masks follow Keras 3: an explicit ``value_mask``/``key_mask`` ``(N, Tv)`` (nonzero = keep)
    replaces the mask propagated with ``value``/``key``; an explicit ``query_mask`` is dropped,
    since Keras' ``call`` always reads the query's own propagated mask instead.
    """

    op = "multi_head_attention"

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None,
                 dropout: float = 0.0, use_bias: bool = True, output_shape: Any = None,
                 attention_axes: Any = None, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", seed: int | None = None,
                 call_form: Any = None, call_masks: Any = (), **kwargs: Any):
        super().__init__(**kwargs)
        kind = type(self).__name__
        self.num_heads = _positive_int(num_heads, "num_heads", kind)
        self.key_dim = _positive_int(key_dim, "key_dim", kind)
        self.value_dim = self.key_dim if value_dim is None else _positive_int(
            value_dim, "value_dim", kind)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or \
                not 0 <= dropout < 1:
            raise CompilerError(f"{kind}: dropout must be in [0, 1), received {dropout!r}")
        self.dropout = float(dropout)  # training only
        self.use_bias = _flag(use_bias, "use_bias", kind)
        if isinstance(output_shape, (tuple, list)) and len(output_shape) == 1:
            output_shape = output_shape[0]
        self.output_shape = None if output_shape is None else _positive_int(
            output_shape, "output_shape (one int: the output width)", kind)
        if attention_axes not in (None, 1, (1,), [1]):
            raise CompilerError(f"{kind}: only attention over axis 1 (the sequence) is "
                                f"supported, received attention_axes={attention_axes!r}")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.seed = seed
        #: (has_key, has_mask, causal) of the first call (restored from a saved config)
        self._call_form: tuple | None = None
        if call_form is not None:
            self._call_form = tuple(_flag(call_form[k], k, kind) for k in (
                "key", "attention_mask", "use_causal_mask"))
        #: the explicit per-token masks of the first call, in ``EXPLICIT_MASKS`` order
        self._call_masks = tuple(m for m in EXPLICIT_MASKS if m in tuple(call_masks or ()))

    def __call__(self, query: Any, value: Any = None, *rest: Any, key: Any = None,
                 query_mask: Any = None, value_mask: Any = None, key_mask: Any = None,
                 attention_mask: Any = None, return_attention_scores: bool = False,
                 training: Any = None, use_causal_mask: bool = False) -> Any:
        if isinstance(query, (list, tuple)) and value is None:
            return Layer.__call__(self, *query)  # the eager path re-enters with the input list
        kind = type(self).__name__
        if rest:  # positional: Keras' third argument is key; a fixed form reads its own order
            if self._call_form is None:
                if len(rest) > 1 or key is not None:
                    raise CompilerError(f"layer '{self.name}' ({kind}): pass attention_mask by "
                                        f"keyword; positionally: mha(query, value, key)")
                key = rest[0]
            else:
                has_key, has_mask, causal = self._call_form
                slots = ["key"] * has_key + ["attention_mask"] * has_mask
                if len(rest) > len(slots):
                    raise CompilerError(f"layer '{self.name}' ({kind}): takes inputs "
                                        f"{['query', 'value'] + slots}, received "
                                        f"{2 + len(rest)}")
                named = dict(zip(slots, rest))
                key = named.get("key", key)
                attention_mask = named.get("attention_mask", attention_mask)
                use_causal_mask = use_causal_mask or causal
        if value is None:
            raise CompilerError(f"layer '{self.name}' ({kind}): call it as mha(query, value, "
                                f"key=None, attention_mask=None), received no value")
        explicit = {"value_mask": value_mask, "key_mask": key_mask}
        masks = tuple(name for name in EXPLICIT_MASKS if explicit[name] is not None)
        scores = _flag(return_attention_scores, "return_attention_scores", kind)
        with self._lock:
            if self.__dict__.setdefault("_return_scores", scores) != scores:
                raise CompilerError(
                    f"layer '{self.name}' ({kind}) was first called with "
                    f"return_attention_scores={not scores}, now with {scores}; use one layer "
                    f"instance per call pattern")
        form = (key is not None, attention_mask is not None,
                _flag(use_causal_mask, "use_causal_mask", kind))
        with self._lock:
            if self._call_form is None:
                self._call_form, self._call_masks = form, masks
            elif (self._call_form, self._call_masks) != (form, masks):
                raise CompilerError(
                    f"layer '{self.name}' ({kind}) was first called with "
                    f"{_describe(self._call_form, self._call_masks)}, now with "
                    f"{_describe(form, masks)}; use one layer instance per call pattern")
        inputs = [query, value] + [x for x in (key, attention_mask) if x is not None] + \
            [explicit[name] for name in masks]
        if any(hasattr(x, "layer") for x in inputs):  # symbolic tensors: record the call
            out = self._call_symbolic(inputs, masks)
            return (out, _scores_tensor(self, out, inputs)) if scores else out
        result = self._eager_model(inputs)(*inputs)
        return tuple(result) if scores else result

    def _call_symbolic(self, inputs: list, masks: tuple) -> Any:
        """The op's shape rule on the data inputs and ``attention_mask``; the explicit
        ``(N, Tv)`` masks only feed the merged mask, so they are checked here."""
        from .functional import SymbolicTensor, call_layer_symbolically

        if not masks:
            return Layer.__call__(self, *inputs)
        out = call_layer_symbolically(self, inputs[:len(inputs) - len(masks)])
        value = inputs[1].shape
        for name, mask in zip(masks, inputs[len(inputs) - len(masks):]):
            shape = getattr(mask, "shape", None)
            if not isinstance(mask, SymbolicTensor):
                raise CompilerError(f"layer '{self.name}' (MultiHeadAttention): {name} must be "
                                    f"a symbolic tensor like the other inputs, received "
                                    f"{type(mask).__name__}")
            if shape is not None and (len(shape) != 2 or not _fits(shape, value)):
                raise CompilerError(f"layer '{self.name}' (MultiHeadAttention): {name} must be "
                                    f"(batch, value steps) = {(value or (None, None))[:2]}, "
                                    f"received {shape}")
        return SymbolicTensor(out.type, self, inputs)

    def lower(self, builder: Any, inputs: list[int]) -> list[int]:
        """The fused op (fed the merged mask of the call), or with ``return_attention_scores``
        a composition of primitives (``frontend/attention_masks.py``)."""
        from .attention_masks import lower_fused

        if self.__dict__.get("_return_scores"):
            return [self._lower_output(builder, inputs, 0)]
        return lower_fused(self, builder, inputs)

    def _lower_output(self, builder: Any, inputs: list[int], index: int) -> int:
        from .attention_masks import lower_with_scores
        from .outputs import call_memo

        memo = call_memo(builder, self, inputs)
        if "outputs" not in memo:
            memo["outputs"] = lower_with_scores(self, builder, inputs)
        return memo["outputs"][index]

    def _eager_model(self, arrays: list) -> Any:
        """A model of this one call on arrays, cached per feature widths: the sequence lengths
        and the batch stay symbolic, so one plan serves every length; another width makes a
        new model, whose build then checks the width against this layer's weights."""
        from .functional import Input
        from .models import Model

        slots = self.input_slots()
        # a mask's axes are lengths, not widths; the data inputs' widths key the cache
        widths = tuple(() if slot.endswith("mask") else tuple(np.shape(a)[2:])
                       for slot, a in zip(slots, arrays))
        with self._lock:
            cache = self.__dict__.setdefault("_eager_models", {})
            model = cache.get(widths)
            if model is None:
                tensors = [Input((None, None)) if slot == "attention_mask" else  # (N, Tq, Tv)
                           Input((None,), dtype="bool") if slot.endswith("mask") else
                           Input((None,) + w) for slot, w in zip(slots, widths)]
                out = self._call_symbolic(tensors, self._call_masks)
                if self.__dict__.get("_return_scores"):
                    out = [out, _scores_tensor(self, out, tensors)]
                model = Model(tensors, out)
                cache[widths] = model
        return model

    def input_slots(self) -> list[str]:
        """Names of the call's inputs, in the order ``lower`` receives them."""
        has_key, has_mask, _ = self._call_form or (False, False, False)
        return ["query", "value"] + ["key"] * has_key + ["attention_mask"] * has_mask + \
            list(self._call_masks)

    def op_attrs(self) -> dict:
        has_key, has_mask, causal = self._call_form or (False, False, False)
        return {"num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "use_bias": self.use_bias,
                "output_dim": self.output_shape, "has_key": has_key, "has_mask": has_mask,
                "causal": causal}

    def initializer(self, param: str) -> initializers.Initializer:
        return self.bias_initializer if param.endswith("_bias") else self.kernel_initializer

    def get_config(self) -> dict:
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": self.output_shape,
                "call_form": None if self._call_form is None else dict(zip(
                    ("key", "attention_mask", "use_causal_mask"), self._call_form)),
                "call_masks": list(self._call_masks),
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}


def _scores_tensor(layer: MultiHeadAttention, out: Any, inputs: list) -> Any:
    """The symbolic ``(N, heads, Tq, Tv)`` attention probabilities of a call."""
    from ..types import TensorType
    from .functional import SymbolicTensor
    from .outputs import OutputOf

    q, v = out.shape, getattr(inputs[1], "shape", None)
    shape = (q[0] if q else None, layer.num_heads, q[1] if q else None,
             v[1] if v is not None and len(v) > 1 else None)
    return SymbolicTensor(TensorType(shape, out.type.dtype), OutputOf(layer, 1), inputs)


def _fits(mask: tuple, value: tuple | None) -> bool:
    """A ``(N, Tv)`` mask against value ``(N, Tv, D)``: no provable size conflict."""
    if value is None:
        return True
    return all(not (isinstance(a, int) and isinstance(b, int) and a != b)
               for a, b in zip(mask, value[:2]))


def _describe(form: tuple, masks: tuple = ()) -> str:
    has_key, has_mask, causal = form
    explicit = "".join(f", {name}={'given' if name in masks else 'None'}"
                       for name in EXPLICIT_MASKS)
    return (f"key={'given' if has_key else 'None'}, attention_mask="
            f"{'given' if has_mask else 'None'}{explicit}, use_causal_mask={causal}")


class PositionEmbedding(Layer):
    """keras-hub's learned position embedding: returns the embeddings of positions ``0..T-1``
    broadcast to the input's shape (add them to the token features yourself, as with
    keras-hub); weight ``embeddings`` ``(sequence_length, F)``, ``F`` inferred."""

    op = "position_embedding"

    def __init__(self, sequence_length: int, initializer: Any = "glorot_uniform",
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.sequence_length = _positive_int(sequence_length, "sequence_length",
                                             type(self).__name__)
        self.initializer_ = initializers.get(initializer)

    def op_attrs(self) -> dict:
        return {"sequence_length": self.sequence_length}

    def initializer(self, param: str) -> initializers.Initializer:
        return self.initializer_

    def get_config(self) -> dict:
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "initializer": initializers.serialize(self.initializer_)}

