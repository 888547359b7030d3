"""A d2l-style sentiment classifier: Embedding -> Bidirectional(LSTM) -> Dense, deferred.

Only the vocabulary size and the layer widths are written down: the LSTM's input size (the
embedding width) and the Dense layer's (twice the LSTM's units) are inferred on the first call.
Padding (index 0) is masked, so padded steps are skipped; one compiled plan serves every batch
size and every sequence length. Checked against the NumPy reference executor.

Run: .venv/bin/python examples/text_classifier.py
"""

import time

import numpy as np

from compiler import Sequential, TensorSpec, compile, layers
from compiler.reference import run_reference

VOCAB, EMBED, HIDDEN, CLASSES = 10_000, 100, 100, 2


def batch_of_reviews(rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
    """Token ids in ``[1, VOCAB)``, each review padded with 0 after a random length."""
    tokens = rng.integers(1, VOCAB, (batch, length))
    lengths = rng.integers(1, length + 1, batch)
    tokens[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return tokens


def main() -> None:
    net = Sequential([
        layers.Embedding(VOCAB, EMBED, mask_zero=True),
        layers.Bidirectional(layers.LSTM(HIDDEN)),
        layers.Dense(CLASSES),
    ], name="text_classifier")
    print("before the first call (sizes still unknown):")
    net.summary()

    rng = np.random.default_rng(0)
    x = batch_of_reviews(rng, 64, 500)
    start = time.perf_counter()
    y = net(x)
    print(f"\nfirst call on {x.shape}: {y.shape} in {time.perf_counter() - start:.2f} s "
          "(inference, initialization, compilation)\n")
    print("after:")
    net.summary()

    plan = compile(net, TensorSpec((None, None)))
    for batch, length in ((1, 7), (8, 120), (64, 500)):
        x = batch_of_reviews(rng, batch, length).astype(np.float32)
        start = time.perf_counter()
        y = plan(x)
        took = time.perf_counter() - start
        err = float(np.max(np.abs(y - run_reference(plan.graph, x))))
        print(f"batch {batch:>3}, length {length:>3}: logits {y.shape}, {took * 1e3:7.1f} ms, "
              f"max|plan - reference| {err:.1e}")


if __name__ == "__main__":
    main()
