"""A small Transformer encoder (2 post-norm blocks, d=128, 4 heads) built from layers, deferred.

Nothing here says how wide the input is: the attention's query/value widths, the feed-forward
kernels and the position table's width are inferred on the first call. The sequence length stays
symbolic, so the one compiled plan serves every length up to the position table's 64.

    .venv/bin/python examples/transformer_encoder.py
"""

from __future__ import annotations

import time

import numpy as np

from compiler import Model, TensorSpec, compile, layers


class EncoderBlock(Model):
    """``LayerNorm(x + MHA(x, x))``, then ``LayerNorm(h + FFN(h))`` (PyTorch's
    ``nn.TransformerEncoderLayer(norm_first=False)``)."""

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.attention = layers.MultiHeadAttention(num_heads, d_model // num_heads)
        self.norm1 = layers.LayerNormalization(epsilon=1e-5)
        self.ffn1 = layers.Dense(ffn_dim, activation="relu")
        self.ffn2 = layers.Dense(d_model)
        self.norm2 = layers.LayerNormalization(epsilon=1e-5)

    def call(self, x):
        h = self.norm1(x + self.attention(x, x))
        return self.norm2(h + self.ffn2(self.ffn1(h)))


class TransformerEncoder(Model):
    """Learned positions, ``num_blocks`` encoder blocks, and a per-step classifier head."""

    def __init__(self, num_blocks: int = 2, d_model: int = 128, num_heads: int = 4,
                 ffn_dim: int = 256, max_length: int = 64, num_classes: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.project = layers.Dense(d_model)
        self.positions = layers.PositionEmbedding(max_length)
        self.blocks = [EncoderBlock(d_model, num_heads, ffn_dim, name=f"block_{i}")
                       for i in range(num_blocks)]
        self.head = layers.Dense(num_classes)

    def call(self, x):
        h = self.project(x)
        h = h + self.positions(h)
        for block in self.blocks:
            h = block(h)
        return self.head(h)


def main() -> None:
    net = TransformerEncoder()
    print("Before the first call (widths unknown, no weights yet):")
    net.summary()

    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((8, 32, 48)).astype(np.float32)  # 8 sequences x 32 steps x 48
    start = time.perf_counter()
    logits = net(tokens)
    print(f"\nfirst call: {logits.shape} in {time.perf_counter() - start:.1f} s "
          f"(inference, initialization, compilation)\n")
    print("After the first call:")
    net.summary()

    plan = compile(net, TensorSpec((None, None, 48)))  # batch and length stay symbolic
    for length in (5, 32, 64):
        x = rng.standard_normal((2, length, 48)).astype(np.float32)
        start = time.perf_counter()
        y = plan(x)
        print(f"length {length:3d}: output {y.shape}, {1e3 * (time.perf_counter() - start):.1f} ms")
    try:
        plan(rng.standard_normal((1, 65, 48)).astype(np.float32))
    except Exception as e:  # longer than the position table: a clear error, nothing read
        print(f"length  65: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
