"""A compiled plan is plain data: pickled here, run in a fresh process, bit-identical outputs."""

import io
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from compiler import Input, Sequential, compile, layers

ROOT = Path(__file__).resolve().parent.parent


def mlp():
    return Sequential([Input((12,)), layers.Dense(16, activation="relu"), layers.Dropout(0.2),
                       layers.Dense(8, activation="tanh"), layers.Dense(3)])


def small_cnn():
    net = Sequential([Input((None, None, 3)), layers.Conv2D(4, 3, activation="relu"),
                      layers.Conv2D(6, 3, padding="same"), layers.BatchNormalization(),
                      layers.ReLU(), layers.MaxPooling2D(), layers.GlobalAveragePooling2D(),
                      layers.Dense(5)])
    rng = np.random.default_rng(7)
    bn = net.layers[2]
    bn.set_weights([rng.uniform(0.5, 1.5, w.shape) if p in ("gamma", "moving_variance")
                    else rng.normal(0, 0.3, w.shape)
                    for p, w in zip(bn.param_names, bn.get_weights())])
    return net


def _globals(blob: bytes) -> set:
    """Module names of every class or function the pickle refers to (exact: via find_class)."""
    found: set = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            found.add(module)
            return super().find_class(module, name)

    Recorder(io.BytesIO(blob)).load()
    return found


@pytest.mark.parametrize("make, shape", [(mlp, (5, 12)), (small_cnn, (2, 9, 11, 3))],
                         ids=["mlp", "cnn"])
def test_pickled_plan_runs_bit_identically_in_a_fresh_process(tmp_path, make, shape):
    net = make()
    plan = compile(net)
    x = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    expected = plan(x)
    blob = pickle.dumps(plan)
    modules = _globals(blob)
    assert not any(m.startswith("compiler.frontend") for m in modules), modules
    assert "runtime.plan" in modules and not any("numba" in m for m in modules), modules
    (tmp_path / "plan.pkl").write_bytes(blob)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import pickle, sys
        import numpy as np
        plan = pickle.loads(open({str(tmp_path / 'plan.pkl')!r}, "rb").read())
        assert "compiler.frontend.layers" not in {{type(v).__module__ for v in
                                                   vars(plan).values()}}
        y = plan(np.load({str(tmp_path / 'x.npy')!r}))
        np.save({str(tmp_path / 'y.npy')!r}, y)
        print(plan.executor, *plan.segments)
        print(plan.describe().splitlines()[0])
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    executor, header = done.stdout.splitlines()[:2]
    assert executor == " ".join(map(str, [plan.executor, *plan.segments])) and net.name in header
    assert plan.executor == "codegen" and plan.segments[0] >= 1  # the CNN too: its pools and head
    got = np.load(tmp_path / "y.npy")
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("executor", ["codegen", "steps"])
def test_an_unpickled_plan_holds_a_snapshot_of_the_weights(executor):
    net = mlp()
    plan = compile(net, executor=executor)
    x = np.random.default_rng(5).normal(size=(4, 12)).astype(np.float32)
    copy = pickle.loads(pickle.dumps(plan))
    assert copy.executor == plan.executor
    np.testing.assert_array_equal(copy(x), plan(x))
    before = copy(x)
    net.set_weights([w * 0.5 for w in net.get_weights()])
    assert not np.array_equal(plan(x), before)      # the live plan sees the store
    np.testing.assert_array_equal(copy(x), before)  # the copy keeps its snapshot
    assert "dense" in copy.ir and "param dense/kernel" in copy.ir
