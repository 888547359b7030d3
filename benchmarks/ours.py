"""One of the two modules that know deferc's API (with ``ours_graph``, for conv nets): "ours"
as the rest of the suite sees it.

``resolve("auto")`` returns the real compiler when ``from compiler import Sequential`` works, and
otherwise a NumPy stand-in with the same interface, so the suite (peers, timing, reports) can be
exercised before deferc exists. Reports always name which one ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from . import snippets
from .modelspec import DenseConfig, DenseLayer, ModelSpec, glorot_uniform_spec
from .peers import numpy_peer

Run = Callable[[np.ndarray], np.ndarray]
DEFERC = "deferc"
STAND_IN = "stand-in (numpy)"


@dataclass(frozen=True)
class Built:
    """A ready-to-call model and the weights it was built with (for the peers)."""

    run: Run
    spec: ModelSpec


class Ours(Protocol):
    name: str

    def build(self, input_dim: int, configs: Sequence[DenseConfig], seed: int) -> Built: ...

    def build_seconds(self, n_layers: int, width: int) -> float: ...

    def script(self, input_dim: int, configs: Sequence[DenseConfig], batch: int,
               extra_calls: int = 0) -> str: ...


def deferc_unavailable_reason() -> str | None:
    try:
        from compiler import Sequential, TensorSpec, compile, layers  # noqa: F401
    except ImportError as exc:
        return f"deferc not importable ({exc})"
    return None


def _activation_name(activation: object) -> str:
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", str(activation))


def spec_from_net(net: object, input_dim: int) -> ModelSpec:
    """Read layer config + weights back out of a built ``Sequential`` (Keras layout)."""
    layers = []
    for layer in net.layers:
        weights = layer.get_weights()
        if len(weights) != 2:
            raise ValueError(f"{type(layer).__name__}: expected [kernel, bias] from get_weights(),"
                             f" received {len(weights)} arrays")
        kernel, bias = (np.ascontiguousarray(w, dtype=np.float32) for w in weights)
        if kernel.shape[1] != layer.units:
            raise ValueError(f"{type(layer).__name__}: kernel {kernel.shape} does not end in "
                             f"units={layer.units}")
        layers.append(DenseLayer(kernel, bias, _activation_name(layer.activation)))
    return ModelSpec((input_dim,), tuple(layers))


class Deferc:
    """The real thing: ``Sequential`` -> ``build`` -> ``compile`` -> ``Plan``."""

    name = DEFERC

    @staticmethod
    def _sequential(configs: Sequence[DenseConfig]):
        from compiler import Sequential, layers

        return Sequential([layers.Dense(c.units, activation=c.activation) for c in configs])

    def build(self, input_dim: int, configs: Sequence[DenseConfig], seed: int) -> Built:
        from compiler import TensorSpec, compile

        net = self._sequential(configs)
        net.build((None, input_dim))
        _randomize_biases(net, seed)
        plan = compile(net, TensorSpec((None, input_dim)), tier="jit")  # steady state: jitted
        return Built(plan, spec_from_net(net, input_dim))

    def build_seconds(self, n_layers: int, width: int) -> float:
        """Seconds for ``net.build((None, width))`` alone (construction is not timed)."""
        net = self._sequential([DenseConfig(width, "relu")] * n_layers)
        start = time.perf_counter_ns()
        net.build((None, width))
        return (time.perf_counter_ns() - start) * 1e-9

    def script(self, input_dim: int, configs: Sequence[DenseConfig], batch: int,
               extra_calls: int = 0) -> str:
        return snippets.deferc_script(input_dim, configs, batch, extra_calls)


def _randomize_biases(net: object, seed: int) -> None:
    """Give biases non-zero values when the API allows it, so a dropped bias-add is caught.

    Keras initialises biases to zero, which would let a missing bias go unnoticed by the output
    check. ``set_weights`` is optional API; without it the check still covers the kernels.
    """
    if not hasattr(net, "set_weights"):
        return
    rng = np.random.default_rng(seed + 1)
    weights = [np.asarray(w, dtype=np.float32) for w in net.get_weights()]
    for i in range(1, len(weights), 2):
        weights[i] = rng.uniform(-0.1, 0.1, weights[i].shape).astype(np.float32)
    net.set_weights(weights)


class StandIn:
    """NumPy pretending to be ours; numbers from it say nothing about deferc."""

    name = STAND_IN

    def build(self, input_dim: int, configs: Sequence[DenseConfig], seed: int) -> Built:
        spec = glorot_uniform_spec(input_dim, configs, seed)
        rng = np.random.default_rng(seed + 1)
        spec = ModelSpec(spec.input_shape, tuple(
            DenseLayer(layer.kernel, rng.uniform(-0.1, 0.1, layer.bias.shape).astype(np.float32),
                       layer.activation) for layer in spec.layers))
        return Built(numpy_peer.build(spec), spec)

    def build_seconds(self, n_layers: int, width: int) -> float:
        start = time.perf_counter_ns()
        glorot_uniform_spec(width, [DenseConfig(width, "relu")] * n_layers)
        return (time.perf_counter_ns() - start) * 1e-9

    def script(self, input_dim: int, configs: Sequence[DenseConfig], batch: int,
               extra_calls: int = 0) -> str:
        return snippets.numpy_script(input_dim, configs, batch, extra_calls)


def resolve(mode: str = "auto") -> Ours:
    """``"deferc"``, ``"stand-in"`` or ``"auto"`` (deferc when importable)."""
    if mode == "stand-in":
        return StandIn()
    reason = deferc_unavailable_reason()
    if mode == "deferc" and reason:
        raise RuntimeError(reason)
    return StandIn() if reason else Deferc()
