"""Tiered execution: the lower tier agrees with the jitted code for every op family, and an
``auto`` plan switches from one to the other safely, under concurrent calls.

The background compilation is held back by a gate (``gated``) so a test decides when the switch
happens instead of racing it; the suite's conftest makes ``tier="jit"`` the default, so these
tests ask for ``tier="auto"`` explicitly.
"""

from __future__ import annotations

import pickle
import threading
import time

import numba
import numpy as np
import pytest

from compiler import Input, Model, Sequential, TensorSpec, compile, layers, ops
from compiler.errors import CompilerError
from compiler.reference import run_reference
from runtime import progress, tiers

RTOL, ATOL = 1e-4, 1e-5  # the reference tests' tolerance
rng = np.random.default_rng(0)


def tiny_cnn() -> Model:
    x = Input((None, None, 3))
    h = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    h = layers.BatchNormalization()(h)
    h = layers.MaxPooling2D()(h)
    y = layers.Dense(4)(layers.GlobalAveragePooling2D()(h))
    return Model(x, y, name="tiny_cnn")


def _images(n=2, side=12, channels=3):
    return rng.standard_normal((n, side, side, channels)).astype(np.float32)


def _residual_convs() -> tuple[Model, np.ndarray]:
    x = Input((10, 10, 4))
    a = layers.Conv2D(4, 3, padding="same")(x)
    a = layers.Activation("relu")(layers.Add()([a, x]))            # fused residual epilogue
    b = layers.Conv2D(6, 3, strides=2, dilation_rate=1, padding="valid", groups=2)(a)
    c = layers.DepthwiseConv2D(3, padding="same", activation="tanh")(layers.ZeroPadding2D(1)(b))
    return Model(x, c), _images(2, 10, 4)


def _pooling() -> tuple[Model, np.ndarray]:
    x = Input((8, 8, 3))
    a = layers.AveragePooling2D(2)(layers.MaxPooling2D(2, strides=1, padding="same")(x))
    y = layers.Concatenate()([layers.GlobalMaxPooling2D()(a), layers.GlobalAveragePooling2D()(a)])
    return Model(x, y), _images(3, 8, 3)


def _dense_family() -> tuple[Model, np.ndarray]:
    net = Sequential([Input((12,)), layers.Dense(16, activation="sigmoid"), layers.Dropout(0.5),
                      layers.Dense(16), layers.LeakyReLU(), layers.LayerNormalization(),
                      layers.Dense(5, activation="softmax")])
    return net, rng.standard_normal((4, 12)).astype(np.float32)


def _merges() -> tuple[Model, np.ndarray]:
    x = Input((6, 6, 4))
    s = layers.Dense(4)(layers.GlobalAveragePooling2D(keepdims=True)(x))  # (N, 1, 1, 4)
    y = layers.Average()([layers.Multiply()([x, s]), layers.Subtract()([x, s]),
                          layers.Maximum()([x, s]), layers.Minimum()([x, s])])
    y = layers.Reshape((36, 4))(y)
    return Model(x, layers.Flatten()(y)), _images(2, 6, 4)


def _primitives() -> tuple[Model, np.ndarray]:
    x = Input((5, 6))
    m = ops.matmul(ops.transpose(x, (0, 2, 1)), x)                      # (N, 6, 6)
    w = ops.where(m > 0, ops.sqrt(ops.abs(m)), ops.exp(ops.tanh(m)))
    r = ops.sum(w, axis=-1, keepdims=True) - ops.max(w, axis=1, keepdims=True)
    z = ops.log_softmax(ops.pad(r * 0.1, ((0, 0), (0, 0), (1, 1))), axis=-1)
    t = ops.concatenate([ops.mean(z, axis=1), ops.min(z, axis=1)], axis=-1)
    return Model(x, ops.log(ops.abs(t) + 1.0) * ops.cast(t < 0, "float32")), \
        rng.standard_normal((3, 5, 6)).astype(np.float32)


FAMILIES = {"conv": _residual_convs, "pooling": _pooling, "dense+norm+activations": _dense_family,
            "merge+reshape": _merges, "primitives": _primitives}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_lower_tier_matches_the_jit_tier(family):
    model, x = FAMILIES[family]()
    plan = compile(model, tier="jit")
    want = plan(x)
    np.testing.assert_allclose(want, run_reference(plan.graph, x), rtol=RTOL, atol=ATOL)
    reference_only = tiers.LowerTier(plan, kernels=False)
    np.testing.assert_allclose(reference_only(x), want, rtol=RTOL, atol=ATOL)
    assert reference_only.last_counts["kernel"] == 0 and reference_only.last_counts["reference"]
    mixed = tiers.LowerTier(plan)  # kernels the jit tier compiled, references for the rest
    np.testing.assert_allclose(mixed(x), want, rtol=RTOL, atol=ATOL)
    assert sum(mixed.last_counts.values()) == sum(reference_only.last_counts.values())


def test_lower_tier_reuses_kernels_the_process_compiled():
    net, x = _dense_family()
    plan = compile(net, tier="jit", executor="steps")
    want = plan(x)  # the step executor compiled (or loaded) each kernel for these argument types
    lower = tiers.LowerTier(plan)
    np.testing.assert_allclose(lower(x), want, rtol=RTOL, atol=ATOL)
    assert lower.last_counts["kernel"] >= 3  # the dense layers at least


@pytest.fixture
def gated(monkeypatch):
    """Hold every background compilation until the test sets the returned event."""
    gate = threading.Event()
    work = tiers.TieredCalls._work

    def held(self):
        gate.wait(120)
        work(self)
    monkeypatch.setattr(tiers.TieredCalls, "_work", held)
    monkeypatch.setattr(tiers, "likely_cached", lambda plan, wanted: None)
    yield gate
    gate.set()


def test_auto_plan_answers_at_once_then_switches(gated):
    plan = compile(tiny_cnn(), tier="auto")
    x = _images()
    first = plan(x)
    assert plan.last_tier == tiers.LOWER
    assert "jitted code compiling in the background" in plan.describe()
    gated.set()
    assert plan.wait(600)
    second = plan(x)
    assert plan.last_tier == tiers.JIT and plan._tiers is None
    assert "the last call ran on: jit" in plan.describe()
    np.testing.assert_allclose(first, second, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(second, run_reference(plan.graph, x), rtol=RTOL, atol=ATOL)
    other = _images(3, 9)  # another size after the switch: the jitted code, as with tier="jit"
    np.testing.assert_allclose(plan(other), run_reference(plan.graph, other), rtol=RTOL,
                               atol=ATOL)


def test_concurrent_calls_across_the_switch(gated):
    plan = compile(tiny_cnn(), tier="auto")
    inputs = [_images(1 + i % 2, 10 + i) for i in range(4)]
    wants = [run_reference(plan.graph, x) for x in inputs]
    errors, tiers_seen, finished = [], set(), []
    calls = [0]

    def caller(i):
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                got = plan(inputs[i])
                tiers_seen.add(plan.last_tier)
                np.testing.assert_allclose(got, wants[i], rtol=RTOL, atol=ATOL)
                calls[0] += 1
                if plan.last_tier == tiers.JIT and calls[0] > 40:
                    finished.append(i)  # a lower-tier call ending late must not hide the switch
                    return
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    while calls[0] < 8 and not errors:
        time.sleep(0.01)
    gated.set()  # the switch happens while the four threads keep calling
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert tiers_seen == {tiers.LOWER, tiers.JIT} and sorted(finished) == [0, 1, 2, 3]


def test_jit_tier_compiles_before_returning():
    net, x = _dense_family()
    plan = compile(net, tier="jit")
    assert plan._tiers is None and plan.wait(0)
    assert plan.last_tier == tiers.JIT and "tier: jit" in plan.describe()


def test_bad_tier_is_refused_before_building():
    net = Sequential([layers.Dense(3)])
    with pytest.raises(CompilerError, match="tier must be one of .*'auto', 'jit'.*'fast'"):
        compile(net, TensorSpec((None, 4)), tier="fast")
    assert [layer.get_weights() for layer in net.layers] == [[]]  # nothing was built


@pytest.mark.filterwarnings("ignore:deferc. compiling model:RuntimeWarning")
def test_a_failed_background_compile_keeps_the_lower_tier(gated, monkeypatch):
    def broken(self, *args):
        raise RuntimeError("no compiler today")
    from runtime.plan import Plan
    monkeypatch.setattr(Plan, "_build_codegen", broken)
    net, x = _dense_family()
    plan = compile(net, tier="auto", executor="codegen")
    want = run_reference(plan.graph, x)
    np.testing.assert_allclose(plan(x), want, rtol=RTOL, atol=ATOL)
    gated.set()
    assert not plan.wait(60)
    assert "failed: no compiler today" in plan.describe()
    np.testing.assert_allclose(plan(x), want, rtol=RTOL, atol=ATOL)
    assert plan.last_tier == tiers.LOWER


def test_auto_plan_pickles_before_the_switch(gated):
    net, x = _dense_family()
    plan = compile(net, tier="auto")
    first = plan(x)
    copy = pickle.loads(pickle.dumps(plan))
    gated.set()
    assert copy.wait(600) and plan.wait(600)
    np.testing.assert_allclose(copy(x), first, rtol=RTOL, atol=ATOL)
    assert copy.last_tier == tiers.JIT


def test_progress_line_once_and_quiet(capsys, monkeypatch):
    monkeypatch.setenv("DEFERC_PROGRESS_AFTER", "0.01")
    monkeypatch.delenv("DEFERC_QUIET", raising=False)
    with progress.reporting("model 'm'"):
        time.sleep(0.1)  # only loading so far: not a word
        assert capsys.readouterr().err == ""
        with progress.reporting("model 'm'"):  # nested: still one line
            numba.njit(lambda v: v + 1)(1)     # a compilation
            time.sleep(1.0)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "compiling numba kernels for model 'm'" in lines[0]
    assert "DEFERC_QUIET=1" in lines[0] and "runtime.warmup" in lines[0]
    monkeypatch.setenv("DEFERC_PROGRESS_AFTER", "5")
    with progress.reporting("quick"):  # under the threshold: silent
        pass
    monkeypatch.setenv("DEFERC_QUIET", "1")
    with progress.reporting("model 'm'"):
        numba.njit(lambda v: v + 2)(1)
        time.sleep(0.3)
    assert capsys.readouterr().err == ""


def test_progress_names_a_model_once_per_process(capsys, monkeypatch):
    monkeypatch.setenv("DEFERC_PROGRESS_AFTER", "0.01")
    monkeypatch.delenv("DEFERC_QUIET", raising=False)
    for k in range(2):  # e.g. the seed example compiles its model into two plans
        with progress.reporting("model 'twice'"):
            numba.njit(lambda v, k=k: v + k + 10)(1)
            time.sleep(0.5)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "model 'twice'" in lines[0]


def test_heavy_steps_switch_one_by_one_without_waiting_for_the_lock(gated):
    from runtime.cache import compile_lock
    from runtime.step_warmup import warm_launchers

    plan = compile(tiny_cnn(), tier="auto")
    x = _images()
    want = run_reference(plan.graph, x)
    np.testing.assert_allclose(plan(x), want, rtol=RTOL, atol=ATOL)  # the worker is held
    lower, ready = plan._tiered._lower, []

    def mark(index, fn, args):
        ready.append(index)
        lower.mark_ready(index, fn, args)
    warm_launchers(plan, [np.zeros_like(x)], mark)  # what the worker does first
    assert ready and plan._steps[ready[0]].kernel == "conv2d"  # the heaviest step first
    held, release, result = threading.Event(), threading.Event(), []

    def holder():  # a compilation elsewhere holds the lock all along
        with compile_lock():
            held.set()
            release.wait(120)
    blocker = threading.Thread(target=holder)
    blocker.start()
    held.wait(60)
    caller = threading.Thread(target=lambda: result.append(plan(x)))
    caller.start()
    caller.join(60)
    finished = not caller.is_alive()
    release.set()
    blocker.join()
    caller.join()
    assert finished  # the lower tier never waited for the lock
    assert plan.last_tier == tiers.LOWER
    assert all(lower.last_served[i] == "kernel" for i in ready)
    np.testing.assert_allclose(result[0], want, rtol=RTOL, atol=ATOL)
    gated.set()
    assert plan.wait(600)
    np.testing.assert_allclose(plan(x), want, rtol=RTOL, atol=ATOL)
    assert plan.last_tier == tiers.JIT


def test_background_build_compiles_the_variant_the_first_call_needs(gated, monkeypatch):
    from runtime.kernels.flags import PARALLEL_MIN_ELEMENTS

    # Other processes' load would (rightly) send the warm-up call to the serial variant too.
    monkeypatch.setattr("runtime.threads._DYNAMIC", False)

    net = Sequential([Input((64,)), layers.Dense(64, activation="relu"), layers.Dense(8)])
    plan = compile(net, tier="auto")
    big = rng.standard_normal((PARALLEL_MIN_ELEMENTS // 64 + 1, 64)).astype(np.float32)
    small = big[:2].copy()
    want_big = run_reference(plan.graph, big)
    np.testing.assert_allclose(plan(big), want_big, rtol=RTOL, atol=ATOL)  # lower tier
    gated.set()
    assert plan.wait(600)
    assert isinstance(plan._forward, tiers.SerialOnDemand)  # only the threaded code was built
    np.testing.assert_allclose(plan(big), want_big, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(plan(small), run_reference(plan.graph, small), rtol=RTOL,
                               atol=ATOL)  # the serial variant, compiled on demand
    assert not isinstance(plan._forward, tiers.SerialOnDemand) and plan.last_tier == tiers.JIT


_COLD_THREADED_CONVS = """
import numpy as np
from compiler import Input, Sequential, TensorSpec, compile, layers
net = Sequential([Input((48, 48, 3)), layers.Conv2D(32, 3, padding="same", activation="relu"),
                  layers.Conv2D(32, 3, padding="same"), layers.GlobalAveragePooling2D()])
x = np.random.default_rng(0).standard_normal((4, 48, 48, 3)).astype(np.float32)
plan = compile(net, TensorSpec((None, 48, 48, 3)), tier="auto")
first, tier = plan(x), plan.last_tier
assert plan.wait()
np.testing.assert_allclose(first, plan(x), rtol=1e-4, atol=1e-4)
print(tier, plan.last_tier, sep="|")
"""


def test_a_cold_process_runs_threaded_convs_on_both_tiers(tmp_path):
    """Fresh cache, threads forced: the lower tier probes the conv launchers while holding
    numba's compiler lock, so a pool thread that had to compile a driver deadlocked the first
    call (``split_work`` now runs the ranges itself then); the jit tier then threads them."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "DEFERC_TIER"}
    env.update(DEFERC_CACHE_DIR=str(tmp_path), DEFERC_DYNAMIC_THREADS="0", DEFERC_QUIET="1",
               NUMBA_NUM_THREADS="2")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        done = subprocess.run([sys.executable, "-c", _COLD_THREADED_CONVS], cwd=root, env=env,
                              capture_output=True, text=True, timeout=480)
    except subprocess.TimeoutExpired:
        pytest.fail("a cold tiered plan with threaded convs did not answer in 8 minutes")
    assert done.returncode == 0, done.stderr[-3000:]
    first, then = done.stdout.strip().split("|")
    assert first.startswith("lower") and then == "jit", done.stdout
