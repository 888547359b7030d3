"""The one table between Keras 3 layer classes and ours: adding a layer is one entry.

Each entry says which of our classes a Keras class becomes, which config keys carry over (same
name and meaning on both sides; absent keys take Keras' default, which is ours too), which keys
must hold one of a few values (``data_format="channels_last"``), which are initializers, and
where each weight lives in ``model.weights.h5`` relative to the layer's group (``vars/0``...,
in Keras' variable order). Keys that only matter for training (regularizers, constraints,
``trainable``) are dropped; any other key we do not understand is refused unless it holds its
neutral value (``None``/``False``), so an option that would change the outputs is never
silently lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import CompilerError
from ..frontend import initializers, merging, normalization, spatial
from ..frontend import layers as core
from .spec import KerasLayer

#: Keys every Keras layer config may hold that do not change inference outputs.
TRAINING_ONLY = frozenset({
    "name", "trainable", "dtype", "kernel_regularizer", "bias_regularizer",
    "activity_regularizer", "kernel_constraint", "bias_constraint", "beta_regularizer",
    "gamma_regularizer", "beta_constraint", "gamma_constraint", "depthwise_regularizer",
    "depthwise_constraint", "seed", "noise_shape", "momentum", "synchronized",
    "renorm_momentum", "renorm_clipping", "quantization_config", "lora_rank", "lora_alpha",
    "recurrent_regularizer", "recurrent_constraint", "embeddings_regularizer",
    "embeddings_constraint",
})

#: Keras layers still being added on other branches: refused with "not supported yet".
PENDING: tuple[str, ...] = ()

#: Keras classes that hold Python code: never deserialized, let alone executed.
CODE_LAYERS = ("Lambda", "TFSMLayer")


_CHANNELS_LAST = {"data_format": ("channels_last", None)}
_CONV = ("kernel_size", "strides", "padding", "dilation_rate", "activation", "use_bias")


def _relu(config: dict) -> tuple[type, dict]:
    """Keras' ReLU has options ours splits across ReLU and LeakyReLU; others are refused."""
    slope = float(config.pop("negative_slope", 0.0) or 0.0)
    for key, neutral in (("max_value", None), ("threshold", 0.0)):
        value = config.pop(key, neutral)
        if value not in (neutral, 0) or (key == "max_value" and value is not None):
            raise CompilerError(f"layer '{config.get('name')}' (ReLU): {key}={value!r} is not "
                                f"supported; only {key}={neutral!r}")
    if slope:
        return core.LeakyReLU, {**config, "negative_slope": slope}
    return core.ReLU, config


def _leaky(config: dict) -> tuple[type, dict]:
    """Keras 2 called the slope ``alpha``."""
    if "alpha" in config:
        config["negative_slope"] = config.pop("alpha")
    return core.LeakyReLU, config


def _axis_last(name: str) -> Callable[[dict], tuple[type, dict]]:
    """Normalization layers: Keras may write ``axis`` as ``[-1]`` or ``[3]``; we need the last."""
    cls = getattr(normalization, name)

    def convert(config: dict) -> tuple[type, dict]:
        axis = config.get("axis", -1)
        if isinstance(axis, list) and len(axis) == 1:
            axis = axis[0]
        config["axis"] = axis
        return cls, config
    return convert


TABLE: dict[str, KerasLayer] = {
    "Dense": KerasLayer(core.Dense, ("units", "activation", "use_bias"),
                        ("kernel_initializer", "bias_initializer")),
    "Conv2D": KerasLayer(spatial.Conv2D, ("filters", "groups") + _CONV,
                         ("kernel_initializer", "bias_initializer"), _CHANNELS_LAST),
    "DepthwiseConv2D": KerasLayer(spatial.DepthwiseConv2D, ("depth_multiplier",) + _CONV,
                                  ("depthwise_initializer", "bias_initializer"), _CHANNELS_LAST),
    "MaxPooling2D": KerasLayer(spatial.MaxPooling2D, ("pool_size", "strides", "padding"),
                               fixed=_CHANNELS_LAST),
    "AveragePooling2D": KerasLayer(spatial.AveragePooling2D, ("pool_size", "strides", "padding"),
                                   fixed=_CHANNELS_LAST),
    "GlobalAveragePooling2D": KerasLayer(spatial.GlobalAveragePooling2D, ("keepdims",),
                                         fixed=_CHANNELS_LAST),
    "GlobalMaxPooling2D": KerasLayer(spatial.GlobalMaxPooling2D, ("keepdims",),
                                     fixed=_CHANNELS_LAST),
    "ZeroPadding2D": KerasLayer(spatial.ZeroPadding2D, ("padding",), fixed=_CHANNELS_LAST),
    "Flatten": KerasLayer(core.Flatten, fixed=_CHANNELS_LAST),
    "Reshape": KerasLayer(core.Reshape, ("target_shape",)),
    "BatchNormalization": KerasLayer(
        normalization.BatchNormalization, ("axis", "epsilon", "center", "scale"),
        ("beta_initializer", "gamma_initializer", "moving_mean_initializer",
         "moving_variance_initializer"), {"renorm": (False,)},
        from_keras=_axis_last("BatchNormalization")),
    "LayerNormalization": KerasLayer(
        normalization.LayerNormalization, ("axis", "epsilon", "center", "scale"),
        ("beta_initializer", "gamma_initializer"), {"rms_scaling": (False,)},
        from_keras=_axis_last("LayerNormalization")),
    "Dropout": KerasLayer(core.Dropout, ("rate",)),
    "Activation": KerasLayer(core.Activation, ("activation",)),
    "ReLU": KerasLayer(core.ReLU, ("negative_slope", "max_value", "threshold"), from_keras=_relu),
    "LeakyReLU": KerasLayer(core.LeakyReLU, ("negative_slope", "alpha"), from_keras=_leaky),
    "Softmax": KerasLayer(core.Softmax, ("axis",)),
    "Add": KerasLayer(merging.Add),
    "Subtract": KerasLayer(merging.Subtract),
    "Multiply": KerasLayer(merging.Multiply),
    "Maximum": KerasLayer(merging.Maximum),
    "Minimum": KerasLayer(merging.Minimum),
    "Average": KerasLayer(merging.Average),
    "Concatenate": KerasLayer(merging.Concatenate, ("axis",)),
}

#: Our class -> its Keras class name (ReLU/LeakyReLU map back to their own names).
KERAS_NAME: dict[type, str] = {entry.cls: name for name, entry in TABLE.items()}

#: Keras activation names we compute exactly as Keras does. ``leaky_relu`` as an activation
#: *string* is left out: Keras' function defaults to slope 0.2, our layer to 0.3.
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "gelu", "softmax")

#: Keras initializer class -> the config keys our class of the same name takes.
_INIT_KEYS = {"Zeros": (), "Ones": (), "Constant": ("value",),
              "RandomNormal": ("mean", "stddev", "seed"),
              "RandomUniform": ("minval", "maxval", "seed"),
              "TruncatedNormal": ("mean", "stddev", "seed"),
              "VarianceScaling": ("scale", "mode", "distribution", "seed"),
              "Orthogonal": ("gain", "seed"), "Identity": ("gain",),
              **{n: ("seed",) for n in ("GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal",
                                        "LecunNormal", "LecunUniform")}}


class KerasOnlyInitializer(initializers.Initializer):
    """An initializer a file names that we cannot run (a custom or newer one): kept verbatim
    so a re-save writes it back, harmless while the file's weights replace it, and refused
    by name the moment a weight would actually be drawn from it."""

    name = "keras_only"

    def __init__(self, entry: Any, where: str):
        super().__init__()
        self.entry, self.where = entry, where
        #: while the file loads, a model built on construction draws NaN placeholders that
        #: the file's weights then replace (the reader checks that they all do)
        self.loading = True

    def sample(self, shape, rng):
        if self.loading:
            return np.full(shape, np.nan)
        raise CompilerError(f"{self.where}: initializer {_describe(self.entry)} is not "
                            f"supported, and this weight has no value in the file; supported: "
                            f"{sorted(_INIT_KEYS)}")

    def get_config(self) -> dict:
        return {"entry": self.entry}


def supported() -> list[str]:
    """Every Keras class name ``load_model`` understands (models and ``InputLayer`` too)."""
    return sorted([*TABLE, "Functional", "InputLayer", "Model", "Sequential"])


def initializer_from_keras(value: Any, where: str) -> initializers.Initializer:
    """A Keras initializer (name or ``{"class_name", "config"}``) as ours; one we cannot run
    becomes a ``KerasOnlyInitializer`` (refused only if a weight is ever drawn from it)."""
    try:
        if isinstance(value, str):
            return initializers.get(value)
        if isinstance(value, Mapping) and value.get("class_name") in _INIT_KEYS:
            keys = _INIT_KEYS[value["class_name"]]
            config = value.get("config") or {}
            return initializers.get({"class_name": value["class_name"],
                                     "config": {k: config[k] for k in keys if k in config}})
    except CompilerError:
        pass
    return KerasOnlyInitializer(value, where)


def initializer_to_keras(init: initializers.Initializer, where: str) -> dict:
    """Ours as Keras' serialized form (class names coincide for every built-in)."""
    if isinstance(init, KerasOnlyInitializer):
        return init.entry
    name = type(init).__name__
    if name not in _INIT_KEYS:
        raise CompilerError(f"{where}: initializer {name} has no Keras equivalent; supported: "
                            f"{sorted(_INIT_KEYS)}")
    config = init.get_config()
    return {"module": "keras.initializers", "class_name": name,
            "config": {k: config[k] for k in _INIT_KEYS[name] if k in config},
            "registered_name": None}


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return repr(value.get("class_name", value))
    return repr(value)


def _add_sequence_layers() -> None:
    from .sequence_table import SEQUENCE_TABLE

    TABLE.update(SEQUENCE_TABLE)
    KERAS_NAME.update({entry.cls: name for name, entry in SEQUENCE_TABLE.items()})


_add_sequence_layers()
