"""``TimeDistributed(layer)``: apply one layer to every time step of ``(N, T, ...)``.

It lowers to a view folding time into the batch (``(N*T, ...)``), the wrapped layer's own
nodes, and a view unfolding it again, so any layer (Dense, Conv2D over frames, a nested model)
runs once over all steps with its ordinary kernel. The weights are the wrapped layer's (Keras:
``TimeDistributed(Dense(8)).get_weights() == dense.get_weights()``).
"""

from __future__ import annotations

from typing import Any

from ..errors import CompilerError
from ..ir import add_node
from ..types import TensorType
from ..weights import Variable
from . import initializers
from .layers import Layer


class TimeDistributed(Layer):
    op = "fold_time"
    supports_masking = True  # as Keras 3: the (N, T) mask passes on whatever the inner layer

    def __init__(self, layer: Layer, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise CompilerError(f"TimeDistributed: layer must be a Layer instance, received "
                                f"{type(layer).__name__}")
        if layer.is_model:
            raise CompilerError("TimeDistributed: wrapping a model is not supported yet; wrap "
                                "its layers one by one")
        self.layer = layer

    # -- the wrapped layer's weights are this layer's --------------------------------------
    @property
    def param_names(self) -> list[str]:
        return self.layer.param_names

    def variable(self, pname: str) -> Variable:
        return self.layer.variable(pname)

    def initializer(self, param: str) -> initializers.Initializer:
        return self.layer.initializer(param)

    @property
    def built(self) -> bool:
        return self.layer.built

    @property
    def param_shapes(self) -> dict[str, tuple]:
        return self.layer.param_shapes

    def count_params(self) -> int | None:
        return self.layer.count_params()

    def set_weights(self, weights: Any) -> None:
        self.layer.set_weights(weights)

    # -- calling ---------------------------------------------------------------------------
    def __call__(self, *inputs: Any) -> Any:
        from .functional import SymbolicTensor

        if len(inputs) == 1 and isinstance(inputs[0], SymbolicTensor):
            return self._call_symbolic(inputs[0])
        return super().__call__(*inputs)

    def _call_symbolic(self, x: Any) -> Any:
        from .functional import SymbolicTensor

        shape = x.shape
        if shape is not None and len(shape) < 3:
            from ..errors import ShapeError

            raise ShapeError(f"layer '{self.name}' (TimeDistributed) expects inputs of rank >= 3 "
                             f"(batch, steps, ...), received rank {len(shape)}")
        step = SymbolicTensor(TensorType(None if shape is None else (None,) + tuple(shape[2:]),
                                         x.dtype))
        inner = self.layer(step)
        out = None if inner.shape is None or shape is None else (
            (shape[0], shape[1]) + tuple(inner.shape[1:]))
        return SymbolicTensor(TensorType(out, inner.dtype), self, [x])

    def lower(self, builder: Any, inputs: list[int]) -> list[int]:
        origin = builder.origin(self)
        folded = add_node(builder.graph, "fold_time", [inputs[0]], origin=origin)
        if self._declared_input is not None:
            builder.graph.nodes[folded]["expects"] = self._declared_input
        with builder.scope(self):  # the inner layer's nodes are "time_distributed/dense"
            (inner,) = self.layer.lower(builder, [folded])
        return [add_node(builder.graph, "unfold_time", [inner, inputs[0]], origin=origin)]

    def get_config(self) -> dict:
        return {**super().get_config(), "layer": {"class_name": type(self.layer).__name__,
                                                  "config": self.layer.get_config()}}

    @classmethod
    def from_config(cls, config: dict) -> TimeDistributed:
        from .saving import layer_class

        config = dict(config)
        spec = config.pop("layer")
        inner = layer_class(spec["class_name"]).from_config(spec["config"])
        return cls(inner, **config)
