"""Plans and models called from many Python threads at once behave exactly like serial calls.

Every test is bounded: a fixed number of threads and calls, and joins with a timeout so a
deadlock fails the test instead of hanging CI.
"""

import itertools
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from compiler import Sequential, TensorSpec, compile, initializers, layers

THREADS = 8
CALLS = 500
JOIN_TIMEOUT = 120.0
# 600 x 64 outputs crosses the kernels' parallel threshold, so numba's thread pool is
# entered from several Python threads at once too.
BATCHES = (0, 1, 2, 3, 5, 8, 17, 64, 600)


def _run_threads(target, n: int = THREADS) -> None:
    """Start ``n`` threads on ``target(i)``, join them with a timeout, re-raise the first error."""
    errors: list = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 - reported to the main thread below
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "threads still running: deadlock?"
    if errors:
        raise errors[0]


def _assert_disjoint(arrays) -> None:
    """No two result arrays share memory (no buffer is reused while its result is alive)."""
    spans = sorted((a.__array_interface__["data"][0], a.nbytes) for a in arrays if a.nbytes)
    for (start, size), (next_start, _) in itertools.pairwise(spans):
        assert start + size <= next_start, "two results share a buffer"


def _model() -> Sequential:
    return Sequential([layers.Dense(64, activation="relu"), layers.Dropout(0.1),
                       layers.Dense(32, activation="tanh"), layers.Dense(10), layers.Softmax()])


def _input_pool(width: int, seed: int, size: int = 48) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((BATCHES[i % len(BATCHES)], width)).astype(np.float32)
            for i in range(size)]


def test_one_plan_from_many_threads_matches_serial_calls():
    net = _model()
    net.build((None, 20))
    plan = compile(net, TensorSpec((None, 20)))
    pool = _input_pool(20, seed=1)
    expected = [plan(x) for x in pool]
    results: list[list] = [[] for _ in range(THREADS)]

    def work(t: int) -> None:
        for i in range(CALLS):
            k = (7 * t + i) % len(pool)
            results[t].append((k, plan(pool[k])))

    _run_threads(work)
    assert sum(len(r) for r in results) == THREADS * CALLS
    for per_thread in results:
        for k, y in per_thread:
            assert y.shape == expected[k].shape
            assert np.array_equal(y, expected[k]), f"input {k} differs from the serial result"
    _assert_disjoint([y for per_thread in results for _, y in per_thread])


def test_one_model_from_many_threads_matches_serial_calls():
    """Calls of two ranks, so the model's plan cache is filled concurrently as well."""
    net = _model()
    net.build((None, 20))
    flat = _input_pool(20, seed=2, size=24)
    seqs = [np.random.default_rng(k).standard_normal((b, 3, 20)).astype(np.float32)
            for k, b in enumerate((0, 1, 4, 9, 200))]
    pool = flat + seqs
    plan2, plan3 = compile(net, TensorSpec((None, 20))), compile(net, TensorSpec((None, 3, 20)))
    expected = [(plan2 if x.ndim == 2 else plan3)(x) for x in pool]
    weights = net.get_weights()
    results: list[list] = [[] for _ in range(THREADS)]

    def work(t: int) -> None:
        for i in range(CALLS):
            k = (5 * t + 3 * i) % len(pool)
            results[t].append((k, net(pool[k])))

    _run_threads(work)
    for per_thread in results:
        for k, y in per_thread:
            assert np.array_equal(y, expected[k]), f"input {k} differs from the serial result"
    _assert_disjoint([y for per_thread in results for _, y in per_thread])
    assert len(net._plans) == 2  # one cached plan per signature, however many threads raced
    assert all(np.array_equal(a, b) for a, b in zip(weights, net.get_weights()))


class CountingUniform(initializers.Initializer):
    """Counts how often each parameter shape is initialized."""

    name = "counting_uniform"

    def __init__(self, seed=None):
        super().__init__(seed)
        self.calls: list[tuple] = []
        self._lock = threading.Lock()

    def sample(self, shape, rng):
        with self._lock:
            self.calls.append(shape)
        return rng.uniform(-0.5, 0.5, shape)


def _counted_model(init: CountingUniform) -> Sequential:
    return Sequential([layers.Dense(32, activation="relu", kernel_initializer=init,
                                    bias_initializer=init),
                       layers.Dense(8, kernel_initializer=init, bias_initializer=init)])


def _forward(weights, x):
    w1, b1, w2, b2 = weights
    return np.maximum(x @ w1 + b1, 0) @ w2 + b2


@pytest.mark.parametrize("trial", range(10))
def test_uninitialized_model_called_from_many_threads_initializes_once(trial):
    init = CountingUniform()
    net = _counted_model(init)
    rng = np.random.default_rng(trial)
    # every thread uses its own batch size, half of them a rank-3 input of the same width
    inputs = [rng.standard_normal((1 + t, 12) if t % 2 else (1 + t, 2, 12)).astype(np.float32)
              for t in range(THREADS)]
    barrier = threading.Barrier(THREADS, timeout=JOIN_TIMEOUT)
    outputs: list = [None] * THREADS

    def work(t: int) -> None:
        barrier.wait()
        outputs[t] = net(inputs[t])

    _run_threads(work)
    assert sorted(init.calls) == sorted([(12, 32), (32,), (32, 8), (8,)])  # each exactly once
    weights = net.get_weights()
    for x, y in zip(inputs, outputs):
        # every thread's result was computed with the one set of weights the model kept
        np.testing.assert_allclose(y, _forward(weights, x), rtol=1e-5, atol=1e-5)
    assert len(net._plans) == 2


def _call_all_at_once(models: list, x: np.ndarray) -> list:
    barrier = threading.Barrier(len(models), timeout=JOIN_TIMEOUT)
    outputs: list = [None] * len(models)

    def work(t: int) -> None:
        barrier.wait()
        outputs[t] = models[t](x)

    _run_threads(work, len(models))
    return outputs


def test_layer_shared_by_two_models_called_concurrently_is_initialized_once():
    """The models have separate locks; the shared layer must still get one set of weights."""
    for trial in range(10):
        init = CountingUniform()
        shared = layers.Dense(16, kernel_initializer=init, bias_initializer=init)
        models = [Sequential([shared, layers.Dense(3)]) for _ in range(4)]
        x = np.random.default_rng(trial).standard_normal((5, 7)).astype(np.float32)
        outputs = _call_all_at_once(models, x)
        assert sorted(init.calls) == [(7, 16), (16,)]
        w, b = shared.get_weights()
        for m, y in zip(models, outputs):
            w2, b2 = m.layers[1].get_weights()
            np.testing.assert_allclose(y, (x @ w + b) @ w2 + b2, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(m(x), y, rtol=0, atol=0)


def test_first_calls_in_a_fresh_process_from_many_threads():
    """The very first calls of a process (kernel table still empty) race safely."""
    script = textwrap.dedent(f"""
        import threading
        import numpy as np
        from compiler import Sequential, layers
        net = Sequential([layers.Dense(16, activation="relu"), layers.Dense(4)])
        xs = [np.full((1 + t, 6), t, np.float32) for t in range({THREADS})]
        out = [None] * {THREADS}
        barrier = threading.Barrier({THREADS})
        def work(t):
            barrier.wait()
            out[t] = net(xs[t])
        threads = [threading.Thread(target=work, args=(t,)) for t in range({THREADS})]
        [t.start() for t in threads]
        [t.join() for t in threads]
        w1, b1, w2, b2 = net.get_weights()
        for x, y in zip(xs, out):
            np.testing.assert_allclose(y, np.maximum(x @ w1 + b1, 0) @ w2 + b2, 1e-5, 1e-5)
        print("ok")
    """)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                          text=True, timeout=JOIN_TIMEOUT, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
