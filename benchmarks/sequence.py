"""S3/S4: one Transformer encoder block, checked against PyTorch and ONNX Runtime, then timed.

Same rules as the other inference workloads: the peers are built from the weights ours was
compiled with and must reproduce our output before anything is timed; all contenders are timed
in shared rounds. Ours is a functional model (``MultiHeadAttention``, ``Add``,
``LayerNormalization``, ``Dense``) compiled for a symbolic batch and length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from .context import RunContext
from .inference import check_and_time, comparison_rows, skipped_rows
from .ours import DEFERC
from .peers import transformer_peer
from .records import Row, Target


@dataclass(frozen=True)
class EncoderWorkload:
    """A post-norm encoder block on ``batch`` sequences of ``length`` steps."""

    id: str
    title: str
    d_model: int
    num_heads: int
    ffn_dim: int
    length: int
    batch: int
    activation: str = "relu"
    peers: tuple[str, ...] = ("torch", "onnxruntime")
    targets: dict[str, Target] = field(default_factory=dict)

    @property
    def case(self) -> str:
        return f"batch {self.batch}, T={self.length}"

    def steps(self) -> int:
        return 2 + len(self.peers)

    def flops(self) -> int:
        """Multiply-adds x 2: projections, scores, weighted sum, feed-forward."""
        n, t, d, f = self.batch, self.length, self.d_model, self.ffn_dim
        return 2 * n * (4 * t * d * d + 2 * t * t * d + 2 * t * d * f)


def encoder_block(d_model: int, num_heads: int, ffn_dim: int, activation: str = "relu",
                  epsilon: float = 1e-5):
    """``LayerNorm(x + MHA(x, x))`` then ``LayerNorm(h + FFN(h))`` as a deferc functional model."""
    from compiler import Input, Model, layers

    x = Input((None, d_model))
    attended = layers.MultiHeadAttention(num_heads, d_model // num_heads)(x, x)
    h = layers.LayerNormalization(epsilon=epsilon)(layers.Add()([x, attended]))
    f = layers.Dense(ffn_dim, activation=activation)(h)
    f = layers.Dense(d_model)(f)
    return Model(x, layers.LayerNormalization(epsilon=epsilon)(layers.Add()([h, f])))


def _weights(model, wl: EncoderWorkload, epsilon: float) -> transformer_peer.EncoderWeights:
    mha, norm1, ffn1, ffn2, norm2 = (layer for layer in model.layers if layer.param_names)
    return transformer_peer.EncoderWeights(
        wl.d_model, wl.num_heads, wl.ffn_dim, wl.activation, epsilon,
        tuple(mha.get_weights()), tuple(norm1.get_weights()), tuple(ffn1.get_weights()),
        tuple(ffn2.get_weights()), tuple(norm2.get_weights()))


def _randomize(model, seed: int) -> None:
    """Non-trivial biases and norm parameters, so a peer that drops one cannot pass the check."""
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        weights = layer.get_weights()
        for i, name in enumerate(layer.param_names):
            if name == "gamma":
                weights[i] = rng.uniform(0.5, 1.5, weights[i].shape).astype(weights[i].dtype)
            elif name == "beta" or name.endswith("bias"):
                weights[i] = rng.uniform(-0.2, 0.2, weights[i].shape).astype(weights[i].dtype)
        if weights:
            layer.set_weights(weights)


_EPSILON = 1e-5


def _build_ours(wl: EncoderWorkload, seed: int) -> tuple:
    """``(model, plan, x)``: the randomized block compiled for any batch and length."""
    from compiler import TensorSpec, compile, set_random_seed

    set_random_seed(seed)
    model = encoder_block(wl.d_model, wl.num_heads, wl.ffn_dim, wl.activation, _EPSILON)
    _randomize(model, seed)
    plan = compile(model, TensorSpec((None, None, wl.d_model)), tier="jit")  # jitted code
    x = np.random.default_rng(seed).standard_normal(
        (wl.batch, wl.length, wl.d_model)).astype(np.float32)
    return model, plan, x


def profiled(wl: EncoderWorkload, seed: int) -> tuple:
    """``(plan, x)``: what ``run_encoder`` times, for ``--profile``."""
    _, plan, x = _build_ours(wl, seed)
    return plan, x


def run_encoder(ctx: RunContext, wl: EncoderWorkload) -> list[Row]:
    if ctx.ours.name != DEFERC:
        return skipped_rows(wl, wl.steps(), ctx, "sequence workloads need deferc")
    bar = ctx.progress
    bar.describe(f"{wl.id}: build ours ({ctx.ours.name})")
    model, plan, x = _build_ours(wl, ctx.seed)
    expected = np.array(plan(x), copy=True)
    weights = _weights(model, wl, _EPSILON)
    bar.step()

    builders = {"torch": lambda: transformer_peer.build_torch(weights),
                "onnxruntime": lambda: transformer_peer.build_onnxruntime(weights, x)}

    def attempt(name: str) -> tuple[Callable[[], object], np.ndarray]:
        run = builders[name]()
        return (lambda: run(x)), run(x)

    timings, statuses = check_and_time(ctx, wl.id, lambda: plan(x), expected,
                                       {name: partial(attempt, name) for name in wl.peers})
    return comparison_rows(wl.id, wl.case, wl.peers, timings, wl.flops(), wl.targets, statuses)


def describe(wl: EncoderWorkload) -> str:
    return (f"{wl.title} (d={wl.d_model}, {wl.num_heads} heads, FFN {wl.ffn_dim}, "
            f"{wl.activation}, post-norm), {wl.case}")
