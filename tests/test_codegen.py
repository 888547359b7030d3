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


def small_cnn():
    return Sequential([Input((None, None, 3)), layers.Conv2D(4, 3, activation="relu"),
                       layers.MaxPooling2D(), layers.ZeroPadding2D(1),
                       layers.Conv2D(6, 3, padding="same"), layers.AveragePooling2D(),
                       layers.GlobalAveragePooling2D(), layers.Dense(5, activation="tanh"),
                       layers.Dense(3)])


@pytest.mark.parametrize("batch", [0, 1, 2, 128])  # 128: big enough for the threaded variants
def test_cnn_plan_compiles_runs_of_jitted_steps_into_segments(batch):
    net = small_cnn()
    plan = compile(net)
    steps = compile(net, executor="steps")
    # conv launchers stay Python-level; the pools, the padding and the dense head are generated
    assert plan.executor == "codegen" and plan.segments == (2, 2)
    assert steps.segments == (0, 8)
    assert plan.source.count("def forward(arena, wbuf, layout, ") == 2
    assert "0 generated function(s), 8 Python-level" in steps.describe()
    assert "2 generated function(s), 2 Python-level" in plan.describe()
    x = np.random.default_rng(batch).normal(size=(batch, 20, 18, 3)).astype(np.float32)
    a, b = plan(x), steps(x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, run_reference(plan.graph, x), rtol=1e-4, atol=1e-5)
    assert plan.layout(x).parallel == (batch == 128)


def test_segments_hand_values_to_later_steps_and_outputs():
    x = Input((None, None, 2))
    p = layers.MaxPooling2D()(x)                 # generated, read by a conv and returned
    c = layers.Conv2D(3, 1)(p)                   # Python-level
    g = layers.GlobalMaxPooling2D()(c)           # generated again, reads the conv
    model = Model(x, [p, layers.Dense(2)(g), layers.Flatten()(c)])
    plan = compile(model)
    assert plan.segments == (2, 1)
    xs = np.random.default_rng(1).normal(size=(2, 6, 8, 2)).astype(np.float32)
    for o, s, r in zip(plan(xs), compile(model, executor="steps")(xs),
                       run_reference(plan.graph, xs)):
        np.testing.assert_array_equal(o, s)
        np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-6)


def test_whole_plan_stays_one_function():
    plan = compile(MODELS["seed"](), TensorSpec((None, 20)))
    assert plan.segments == (1, 0) and plan.source.count("def forward(") == 1
    assert plan._program is None and "def forward(i0, wbuf, layout)" in plan.source


def test_layer_names_with_newlines_do_not_break_generated_code():
    """Names go into the generated source's comments (regression: the long fuzz profile's
    ``Activation(name="\\n")`` left the rest of the comment as code, a SyntaxError)."""
    net = Sequential([layers.Dense(4, name="first\nline"),
                      layers.Activation("relu", name="\r\n'\\"), layers.Dense(2, name="ünï")])
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    plan = compile(net, TensorSpec((None, 5)), executor="codegen")
    assert plan.executor == "codegen"
    np.testing.assert_allclose(plan(x), run_reference(plan.graph, x), rtol=1e-5, atol=1e-6)
