"""Table entries for the sequence layers: Embedding, Masking, the Conv1D family, recurrent
layers and their wrappers, MultiHeadAttention.

Where Keras keeps weights in sub-layers, the paths say so (verified by saving real Keras 3.15
models and listing the HDF5 file): a recurrent layer's in its cell (``cell/vars/0..2``:
kernel, recurrent kernel, bias), ``Bidirectional``'s under ``forward_layer/`` and
``backward_layer/``, ``TimeDistributed``'s under ``layer/``, ``MultiHeadAttention``'s in its
four ``EinsumDense`` parts (``query_dense/vars/0`` kernel, ``.../1`` bias, then ``key_dense``,
``value_dense``, ``output_dense``). keras-hub's ``PositionEmbedding`` (``vars/0``: the
``(sequence_length, features)`` table) is representable: its config is plain, its call returns
the table's first ``T`` rows broadcast to the input, as ours does.
"""

from __future__ import annotations

from typing import Any

from ..errors import CompilerError
from ..frontend import attention, recurrent, sequence, sequence1d, wrappers
from ..frontend.layers import Layer
from .spec import KerasLayer, variables_of

_CHANNELS_LAST = {"data_format": ("channels_last", None)}
_KERNEL_BIAS = ("kernel_initializer", "bias_initializer")
_POOL = ("pool_size", "strides", "padding")
#: Keras 2's ``implementation`` (compute-only) and ``time_major``; ``zero_output_for_mask``
#: (set by the wrapper): read, never written
_RNN_EXTRA = ("implementation", "time_major", "zero_output_for_mask")
_RNN = ("units", "activation", "use_bias", "return_sequences", "return_state", "go_backwards",
        "unroll", "dropout", "recurrent_dropout") + _RNN_EXTRA
_RNN_FIXED = {"stateful": (False,)}
_RNN_INITS = ("kernel_initializer", "recurrent_initializer", "bias_initializer")
_CELL = {"kernel": "cell/vars/0", "recurrent_kernel": "cell/vars/1", "bias": "cell/vars/2"}


def _cell_variables(layer: Layer) -> list[tuple[str, str]]:
    return [(_CELL[p], p) for p in layer.param_names]


def _rnn(cls: type) -> Any:
    """Build the layer, then set what Keras keeps as state rather than arguments."""
    def convert(config: dict) -> tuple[Any, dict]:
        config.pop("implementation", None)
        if config.pop("time_major", False):
            raise CompilerError(f"layer '{config.get('name')}' ({cls.__name__}): "
                                f"time_major=True is not supported; only batch-major inputs")
        zero_output = bool(config.pop("zero_output_for_mask", False))

        def build(**kwargs: Any) -> Layer:
            layer = cls(**kwargs)
            layer.zero_output_for_mask = zero_output
            return layer
        return build, config
    return convert


def _embedding(config: dict) -> tuple[type, dict]:
    """Keras 2's ``input_length`` only declared the input shape (the InputLayer has it)."""
    config.pop("input_length", None)
    return sequence.Embedding, config


def _attention(config: dict) -> tuple[type, dict]:
    """Keras 2 recorded the build shapes in the config; ours come from the call."""
    for key in _ATTENTION_SHAPES:
        config.pop(key, None)
    return attention.MultiHeadAttention, config


_ATTENTION_SHAPES = ("query_shape", "key_shape", "value_shape")


def _bidirectional_variables(layer: Layer) -> list[tuple[str, str]]:
    return [(f"{side}_layer/{path}", f"{side}/{p}")
            for side in ("forward", "backward")
            for path, p in variables_of(getattr(layer, f"{side}_layer"))]


def _time_distributed_variables(layer: Layer) -> list[tuple[str, str]]:
    return [(f"layer/{path}", p) for path, p in variables_of(layer.layer)]


def _mha_variables(layer: Layer) -> list[tuple[str, str]]:
    """``query_kernel`` -> ``query_dense/vars/0``, ``query_bias`` -> ``.../1``..."""
    out = []
    for p in layer.param_names:
        role, kind = p.rsplit("_", 1)
        out.append((f"{role}_dense/vars/{0 if kind == 'kernel' else 1}", p))
    return out


SEQUENCE_TABLE: dict[str, KerasLayer] = {
    "Embedding": KerasLayer(sequence.Embedding,
                            ("input_dim", "output_dim", "mask_zero", "input_length"),
                            ("embeddings_initializer",), from_keras=_embedding),
    "Masking": KerasLayer(sequence.Masking, ("mask_value",)),
    "GlobalAveragePooling1D": KerasLayer(sequence.GlobalAveragePooling1D, ("keepdims",),
                                         fixed=_CHANNELS_LAST),
    "GlobalMaxPooling1D": KerasLayer(sequence.GlobalMaxPooling1D, ("keepdims",),
                                     fixed=_CHANNELS_LAST),
    "Conv1D": KerasLayer(sequence1d.Conv1D,
                         ("filters", "kernel_size", "strides", "padding", "dilation_rate",
                          "groups", "activation", "use_bias"), _KERNEL_BIAS, _CHANNELS_LAST),
    "MaxPooling1D": KerasLayer(sequence1d.MaxPooling1D, _POOL, fixed=_CHANNELS_LAST),
    "AveragePooling1D": KerasLayer(sequence1d.AveragePooling1D, _POOL, fixed=_CHANNELS_LAST),
    "UpSampling1D": KerasLayer(sequence1d.UpSampling1D, ("size",)),
    "ZeroPadding1D": KerasLayer(sequence1d.ZeroPadding1D, ("padding",), fixed=_CHANNELS_LAST),
    "Cropping1D": KerasLayer(sequence1d.Cropping1D, ("cropping",)),
    "SimpleRNN": KerasLayer(recurrent.SimpleRNN, _RNN, _RNN_INITS, _RNN_FIXED,
                            from_keras=_rnn(recurrent.SimpleRNN), variables=_cell_variables),
    "LSTM": KerasLayer(recurrent.LSTM, _RNN + ("recurrent_activation", "unit_forget_bias"),
                       _RNN_INITS, _RNN_FIXED, from_keras=_rnn(recurrent.LSTM),
                       variables=_cell_variables,
                       activations=("activation", "recurrent_activation")),
    "GRU": KerasLayer(recurrent.GRU, _RNN + ("recurrent_activation", "reset_after"),
                      _RNN_INITS, _RNN_FIXED, from_keras=_rnn(recurrent.GRU),
                      variables=_cell_variables,
                      activations=("activation", "recurrent_activation")),
    "Bidirectional": KerasLayer(recurrent.Bidirectional, ("merge_mode",),
                                variables=_bidirectional_variables,
                                nested={"layer": "forward_layer",
                                        "backward_layer": "backward_layer"}),
    "TimeDistributed": KerasLayer(wrappers.TimeDistributed,
                                  variables=_time_distributed_variables,
                                  nested={"layer": "layer"}),
    "MultiHeadAttention": KerasLayer(
        attention.MultiHeadAttention,
        ("num_heads", "key_dim", "value_dim", "dropout", "use_bias", "output_shape",
         "attention_axes") + _ATTENTION_SHAPES, _KERNEL_BIAS, from_keras=_attention,
        variables=_mha_variables,
        empty_groups=("_softmax", "_dropout_layer")),
    "PositionEmbedding": KerasLayer(
        attention.PositionEmbedding, ("sequence_length",), ("initializer",),
        module="keras_hub.src.layers.modeling.position_embedding",
        registered_name="keras_hub>PositionEmbedding"),
}
