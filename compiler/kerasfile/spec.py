"""What one table entry says about a Keras layer class (``KerasLayer``), and where a layer's
weights live in ``model.weights.h5`` (``variables_of``), wrappers included."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..frontend.layers import Layer


def default_variables(layer: Layer) -> list[tuple[str, str]]:
    """Default layout: ``vars/<i>`` in ``param_names`` order (our order is Keras' order)."""
    return [(f"vars/{i}", p) for i, p in enumerate(layer.param_names)]


@dataclass(frozen=True)
class KerasLayer:
    """How one Keras layer class maps to ours (both directions)."""

    cls: type
    args: tuple[str, ...] = ()
    initializers: tuple[str, ...] = ()
    #: key -> accepted values; the first is what we write
    fixed: Mapping[str, tuple] = field(default_factory=dict)
    #: Keras config (already checked) -> our constructor kwargs, when not a plain copy
    from_keras: Callable[[dict], tuple[type, dict]] | None = None
    #: (h5 path below the layer's group, our parameter name) in Keras' variable order
    variables: Callable[[Layer], list[tuple[str, str]]] = default_variables
    #: config keys holding a whole layer entry (wrappers) -> our attribute holding that layer
    nested: Mapping[str, str] = field(default_factory=dict)
    #: sub-groups Keras writes with no variables (``_softmax``): written for fidelity
    empty_groups: tuple[str, ...] = ()
    #: activation-valued config keys, each checked against the activations we compute exactly
    activations: tuple[str, ...] = ("activation",)
    #: where Keras finds the class: built-ins in ``keras.layers``; keras-hub layers are
    #: registered (``keras_hub>PositionEmbedding``) and need keras-hub installed to load
    module: str = "keras.layers"
    registered_name: str | None = None


def variables_of(layer: Layer) -> list[tuple[str, str]]:
    """``(h5 path, param name)`` of any table layer (what a wrapper asks of its inner layer)."""
    from .table import KERAS_NAME, TABLE

    return TABLE[KERAS_NAME[type(layer)]].variables(layer)
