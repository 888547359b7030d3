"""codegen: one jitted call equals the step executor and the NumPy reference; disk cache."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from compiler import Input, Model, Sequential, TensorSpec, compile, layers
from compiler.reference import run_reference

MODELS = {
    "seed": lambda: Sequential([layers.Dense(256, activation="relu"), layers.Dense(10)]),
    "deep": lambda: Sequential([layers.Dense(16, activation="gelu") for _ in range(12)]),
    "chain": lambda: Sequential([layers.Dense(8), layers.Dropout(0.1), layers.ReLU(),
                                 layers.Activation("tanh"), layers.Flatten(),
                                 layers.Reshape((2, 4)), layers.Dense(3, activation="softmax")]),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("batch", [0, 1, 3, 257])
def test_codegen_equals_steps_and_reference(name, batch):
    net = MODELS[name]()
    fast = compile(net, TensorSpec((None, 20)))
    slow = compile(net, TensorSpec((None, 20)), executor="steps")
    assert fast.executor == "codegen" and slow.executor == "steps"
    x = np.random.default_rng(batch).normal(size=(batch, 20)).astype(np.float32)
    a, b = fast(x), slow(x)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a, run_reference(fast.graph, x), rtol=2e-4, atol=2e-5)


def test_multiple_outputs_and_views():
    x = Input((6,))
    h = layers.Dense(4)(x)
    model = Model(x, [h, layers.Reshape((2, 2))(h), layers.ReLU()(h)])
    plan = compile(model)
    xs = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    outs = plan(xs)
    ref = run_reference(plan.graph, xs)
    for o, r in zip(outs, ref):
        np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-6)


def test_set_weights_after_compile_is_seen_by_the_plan():
    net = Sequential([layers.Dense(3)])
    plan = compile(net, TensorSpec((None, 2)))
    net.layers[0].set_weights([np.ones((2, 3)), np.full(3, 2.0)])
    np.testing.assert_allclose(plan(np.ones((1, 2))), [[4.0, 4.0, 4.0]])


def test_generated_source_has_no_weights_and_one_function():
    net = Sequential([layers.Dense(5, activation="relu"), layers.Dense(2)])
    plan = compile(net, TensorSpec((None, 3)))
    src = plan.source
    assert src.count("def forward(") == 1 and "wbuf[" in src
    k = net.get_weights()[0]
    assert repr(float(k[0, 0]))[:8] not in src


def test_second_process_reuses_the_disk_cache(tmp_path):
    script = textwrap.dedent("""
        import numpy as np
        from compiler import Sequential, layers, TensorSpec, compile
        net = Sequential([layers.Dense(7, activation="tanh"), layers.Dense(3)])
        plan = compile(net, TensorSpec((None, 5)))
        plan(np.ones((2, 5), np.float32))
        print(sum(plan._forward.stats.cache_hits.values()),
              sum(plan._forward.stats.cache_misses.values()))
    """)
    env = dict(os.environ, DEFERC_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_CACHE_DIR", None)
    root = Path(__file__).resolve().parents[1]
    runs = [subprocess.run([sys.executable, "-c", script], cwd=root, env=env,
                           capture_output=True, text=True, timeout=300) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    first_hits, first_misses = map(int, runs[0].stdout.split())
    second_hits, second_misses = map(int, runs[1].stdout.split())
    assert first_misses == 1 and second_hits == 1 and second_misses == 0
    assert list(tmp_path.rglob("plan_*.py"))
