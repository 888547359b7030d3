"""The d2l "Deferred Initialization" chapter, cell for cell, on deferc; then a short timing.

Run: .venv/bin/python examples/deferred_init.py
"""

import time

import numpy as np

from compiler import (
    DeferredInitializationError,
    Input,
    Sequential,
    ShapeError,
    TensorSpec,
    compile,
    layers,
)


def main() -> None:
    start = time.perf_counter()
    print("# Instantiating a network")
    net = Sequential([layers.Dense(256, activation="relu"), layers.Dense(10)])
    print("[net.layers[i].get_weights() for i in range(len(net.layers))] ->",
          [net.layers[i].get_weights() for i in range(len(net.layers))])
    try:
        net.get_weights()
    except DeferredInitializationError as e:
        print("net.get_weights() ->", type(e).__name__ + ":", e)
    net.summary()

    print("\n# Passing data through the network initializes it")
    X = np.random.uniform(size=(2, 20)).astype(np.float32)
    Y = net(X)
    first = time.perf_counter() - start
    print("net(X).shape ->", Y.shape)
    print("[w.shape for w in net.get_weights()] ->", [w.shape for w in net.get_weights()])
    net.summary()

    print("\n# Exercise 1: input size given to the first layer only -> immediate initialization")
    net1 = Sequential([Input((20,)), layers.Dense(256), layers.Dense(10)])
    print([w.shape for w in net1.get_weights()])

    print("\n# Exercise 2: mismatching sizes -> a clear error")
    try:
        Sequential([layers.Dense(256, input_dim=20), layers.Dense(10, input_dim=128)])
    except ShapeError as e:
        print("ShapeError:", e)
    try:
        net(np.ones((2, 30), np.float32))
    except ShapeError as e:
        print("ShapeError:", e)

    print("\n# Exercise 3: varying input size -> symbolic batch, one plan for every size")
    plan = compile(net, TensorSpec((None, 20)))
    print(plan)
    for batch in (1, 2, 1000, 0):
        print(f"  batch {batch:>4} -> {plan(np.ones((batch, 20), np.float32)).shape}")

    print("\n# Timing (median of repeated calls, batch 2)")
    w = net.get_weights()

    def numpy_forward(x):
        return np.maximum(x @ w[0] + w[1], 0) @ w[2] + w[3]

    np.testing.assert_allclose(plan(X), numpy_forward(X), rtol=1e-4, atol=1e-5)
    plan.wait()  # time the jitted code (calls until it is compiled run on the lower tier)
    for name, fn in (("deferc plan", plan), ("deferc net(X)", net), ("numpy", numpy_forward)):
        print(f"  {name:<14} {median_us(fn, X):8.2f} us/call")
    print(f"  time to first result (build + compile + run, this process): {first * 1e3:.0f} ms")


def median_us(fn, x, reps: int = 7, inner: int = 2000) -> float:
    fn(x)
    times = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        for _ in range(inner):
            fn(x)
        times.append((time.perf_counter_ns() - t) / inner / 1e3)
    return float(np.median(times))


if __name__ == "__main__":
    main()
