"""``python -m runtime.warmup`` fills the on-disk cache so that a fresh process compiles nothing.

Both processes get their own temporary ``DEFERC_CACHE_DIR``; the seed MLP keeps them quick.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import warmup

REPO = Path(__file__).resolve().parent.parent

FRESH_PROCESS = """
import json, sys
import numpy as np
from compiler import Sequential, TensorSpec, compile, layers
from runtime.warmup import counting_compilations, resolve

model, shape = resolve("seed")
with counting_compilations() as counter:
    plan = compile(model, TensorSpec((None, *shape)))   # the default tier: auto
    plan(np.zeros((1, *shape), np.float32))
print(json.dumps({"compilations": counter.count, "tiered": plan._tiered is not None,
                  "last_tier": plan.last_tier}))
other = compile(Sequential([layers.Dense(3)]), TensorSpec((None, 5)), tier="jit")  # not warmed
"""


def _run(args, cache, **env):
    environ = {k: v for k, v in os.environ.items() if k != "DEFERC_QUIET"}  # each test says
    environ.update(DEFERC_CACHE_DIR=str(cache), PYTHONPATH=str(REPO), **env)
    environ.pop("NUMBA_CACHE_DIR", None)
    environ.pop("DEFERC_TIER", None)  # the conftest's default is for this process only
    return subprocess.run([sys.executable, *args], cwd=REPO, env=environ, capture_output=True,
                          text=True, timeout=1200)


def test_warmup_fills_the_cache_a_fresh_process_uses(tmp_path):
    cache = tmp_path / "cache"
    warm = _run(["-m", "runtime.warmup", "--model", "seed"], cache, DEFERC_QUIET="1",
                DEFERC_PROGRESS_AFTER="0")
    assert warm.returncode == 0, warm.stderr
    compiled = int(warm.stdout.split("warmed seed: ")[1].split()[0])
    assert compiled > 0
    assert "deferc:" not in warm.stderr  # DEFERC_QUIET=1: not a word, however long it took
    fresh = _run(["-c", FRESH_PROCESS], cache, DEFERC_PROGRESS_AFTER="0")
    assert fresh.returncode == 0, fresh.stderr
    result = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert result == {"compilations": 0, "tiered": False, "last_tier": "jit"}
    # the model that was not warmed compiles, and says so on stderr (one line)
    lines = [line for line in fresh.stderr.splitlines() if line.startswith("deferc: compiling")]
    assert len(lines) == 1 and "runtime.warmup" in lines[0]


def test_resolve_names_and_refuses_unknown_ones():
    model, shape = warmup.resolve("lenet5")
    assert shape == (28, 28, 1) and model.name
    with pytest.raises(SystemExit, match="unknown model 'nope'.*resnet18"):
        warmup.resolve("nope")
    model, shape = warmup.resolve("runtime.warmup:_seed")  # module:function
    assert model.name == "seed" and shape is None


WARM_TINY_CNN = """
import numpy as np
from compiler import compile
from tests.test_tiers import tiny_cnn
plan = compile(tiny_cnn(), tier="jit")                  # generated code + conv launchers
plan(np.zeros((2, 12, 12, 3), np.float32))
"""

LOWER_TIER_FROM_DISK = """
import json
import numpy as np
from compiler import compile
from compiler.reference import run_reference
from runtime import tiers
from runtime.warmup import counting_compilations
from tests.test_tiers import tiny_cnn
plan = compile(tiny_cnn(), tier="jit", executor="steps")  # builds nothing ahead of a call
x = np.random.default_rng(1).standard_normal((2, 12, 12, 3)).astype(np.float32)
lower = tiers.LowerTier(plan)
with counting_compilations() as counter:
    y = lower(x)
ok = bool(np.allclose(y, run_reference(plan.graph, x), rtol=1e-4, atol=1e-5))
print(json.dumps({"compilations": counter.count, "counts": lower.last_counts, "ok": ok,
                  "steps": sum(not s.alias for s in plan._steps)}))
"""


def test_lower_tier_loads_kernels_from_the_disk_cache(tmp_path):
    """A fresh process's lower tier runs every step on machine code from a warm cache (the
    convolution launcher included), compiling nothing; a cold cache gives NumPy, also without
    compiling."""
    cold = _run(["-c", LOWER_TIER_FROM_DISK], tmp_path / "cache", DEFERC_QUIET="1")
    assert cold.returncode == 0, cold.stderr
    result = json.loads(cold.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["compilations"] == 0
    assert result["counts"] == {"kernel": 0, "reference": result["steps"]}
    warm = _run(["-c", WARM_TINY_CNN], tmp_path / "cache", DEFERC_QUIET="1")
    assert warm.returncode == 0, warm.stderr
    fresh = _run(["-c", LOWER_TIER_FROM_DISK], tmp_path / "cache", DEFERC_QUIET="1")
    assert fresh.returncode == 0, fresh.stderr
    result = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["compilations"] == 0
    assert result["counts"] == {"kernel": result["steps"], "reference": 0}
