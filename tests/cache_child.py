"""One fresh process of the cache tests: runs named scenarios, saves each output as .npy.

Usage: ``python cache_child.py OUT_DIR SCENARIO...``. Weights come from a fixed seed, so every
process (and every installed copy of deferc) computes the same function.
"""

import sys
from pathlib import Path

import numpy as np

from compiler import Input, Model, Sequential, TensorSpec, compile, layers


def _fixed_weights(model):
    rng = np.random.default_rng(0)
    model.set_weights([(rng.standard_normal(w.shape) * 0.1).astype(w.dtype)
                       for w in model.get_weights()])
    return model


def _mlp(widths, d_in):
    net = Sequential([layers.Dense(w, activation="relu" if i < len(widths) - 1 else None)
                      for i, w in enumerate(widths)])
    net.build((None, d_in))
    return compile(_fixed_weights(net), TensorSpec((None, d_in)))


def _cnn():
    x = Input((None, None, 3))
    h = layers.Conv2D(4, 3, activation="relu")(x)
    h = layers.MaxPooling2D()(h)
    h = layers.Conv2D(8, 3, padding="same")(h)
    y = layers.Dense(3)(layers.GlobalAveragePooling2D()(h))
    return compile(_fixed_weights(Model(x, y)))


def _data(shape):
    return np.random.default_rng(1).standard_normal(shape).astype(np.float32)


SCENARIOS = {  # name -> (plan factory, input shape)
    "seed_threaded": (lambda: _mlp([256, 10], 20), (4096, 20)),
    "seed_serial": (lambda: _mlp([256, 10], 20), (2, 20)),
    "wide": (lambda: _mlp([1024, 1024, 10], 784), (256, 784)),
    "wide_serial": (lambda: _mlp([1024, 1024, 10], 784), (2, 784)),
    "cnn": (_cnn, (2, 12, 12, 3)),
    "cnn_threaded": (_cnn, (8, 40, 40, 3)),
}


def main(out_dir: str, names: list[str]) -> None:
    for name in names:
        make, shape = SCENARIOS[name]
        np.save(Path(out_dir) / f"{name}.npy", make()(_data(shape)))
        print(name, "ok", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
