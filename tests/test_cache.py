"""The on-disk compiled-code cache as users meet it: fresh processes, warm caches, several
processes and installed copies at once, damaged files (issue 8: a warm cache crashed a process).

Every test runs real child processes (``cache_child.py``) on its own cache directory; a child
that dies (SIGSEGV is exit -11) fails the test with its output.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import runtime.cache as cache

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "cache_child.py"
TIMEOUT = 300  # per child: a hang fails the test instead of the whole run


def _env(cache_root, threads=None, root=ROOT):
    env = dict(os.environ, DEFERC_CACHE_DIR=str(cache_root), PYTHONPATH=str(root))
    env.pop("NUMBA_CACHE_DIR", None)
    if threads is not None:
        env["DEFERC_NUM_THREADS"] = str(threads)
    return env


def _start(cache_root, out, names, threads=None, root=ROOT):
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, str(CHILD), str(out), *names], cwd=root,
                            env=_env(cache_root, threads, root), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc):
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"child hung for {TIMEOUT} s:\n{output}")
    assert proc.returncode == 0, f"child exited {proc.returncode}:\n{output}"
    return output


def _run(cache_root, out, names, threads=None, root=ROOT):
    return _finish(_start(cache_root, out, names, threads, root))


def _outputs(out):
    return {p.stem: np.load(p) for p in sorted(out.glob("*.npy"))}


def _assert_agree(runs):
    """Every run's outputs equal the first run's (threads change only the summation order)."""
    first = runs[0]
    for other in runs[1:]:
        assert other.keys() == first.keys()
        for name, value in other.items():
            np.testing.assert_allclose(value, first[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_the_issue_8_sequence_loads_a_warm_cache_without_crashing(tmp_path):
    # 1: the threaded dense kernel is compiled and cached; 2: a plan's forward is compiled
    # against the cache-loaded kernel and cached; 3: a fresh process loads only that forward.
    _run(tmp_path / "c", tmp_path / "o1", ["seed_threaded"])
    _run(tmp_path / "c", tmp_path / "o2", ["wide"])
    _run(tmp_path / "c", tmp_path / "o3", ["wide"])
    _run(tmp_path / "c", tmp_path / "o4", ["wide"])
    _assert_agree([_outputs(tmp_path / f"o{k}") for k in (2, 3, 4)])


def test_concurrent_compilers_then_fresh_loaders_from_two_installed_copies(tmp_path):
    """Rounds of concurrent processes on one fresh cache: different thread counts and call
    orders compile the same plans (MLP serial and threaded, a CNN), two of them from a second
    installed copy of the package; then fresh processes load what they wrote."""
    copy = tmp_path / "copy"
    for package in ("compiler", "runtime"):
        shutil.copytree(ROOT / package, copy / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shared = tmp_path / "cache"
    orders = [["seed_threaded", "wide", "cnn", "seed_serial"],
              ["cnn_threaded", "seed_serial", "wide_serial", "wide"],
              ["wide", "cnn", "seed_threaded", "cnn_threaded"],
              ["seed_serial", "cnn_threaded", "wide", "seed_threaded"]]
    compilers = [_start(shared, tmp_path / f"c{k}", names, threads=1 + k % 2,
                        root=copy if k >= 2 else ROOT) for k, names in enumerate(orders)]
    for proc in compilers:
        _finish(proc)
    everything = sorted({n for names in orders for n in names})
    loaders = [_start(shared, tmp_path / f"l{k}", everything[k::2] + everything[:k] ,
                      threads=2 - k % 2, root=copy if k == 1 else ROOT) for k in range(3)]
    for proc in loaders:
        _finish(proc)
    runs = [_outputs(tmp_path / f"c{k}") for k in range(4)]
    runs += [_outputs(tmp_path / f"l{k}") for k in range(3)]
    merged = {}
    for run in runs:
        for name, value in run.items():
            merged.setdefault(name, []).append(value)
    assert set(merged) == set(everything)
    for name, values in merged.items():
        for value in values[1:]:
            np.testing.assert_allclose(value, values[0], rtol=1e-5, atol=1e-5, err_msg=name)
    # each installed copy compiled into its own directory (the package location is in the key)
    assert len([p for p in shared.iterdir() if p.is_dir()]) == 2


def test_damaged_cache_files_mean_a_recompile_not_a_crash(tmp_path):
    names = ["seed_threaded", "seed_serial"]
    _run(tmp_path / "c", tmp_path / "warm", names)
    damaged = sorted(p for p in (tmp_path / "c").rglob("*")
                     if p.suffix in (".nbi", ".nbc") or p.name.startswith("plan_"))
    assert len(damaged) > 4
    for k, path in enumerate(damaged):  # half truncated, half scrambled
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if k % 2 else bytes(reversed(data)))
    output = _run(tmp_path / "c", tmp_path / "after", names)
    assert "unreadable cache entry" in output  # the guard ran, and the process lived
    _assert_agree([_outputs(tmp_path / "warm"), _outputs(tmp_path / "after")])
    # the rebuilt cache serves a third process, silently
    output = _run(tmp_path / "c", tmp_path / "third", names)
    assert "unreadable" not in output
    _assert_agree([_outputs(tmp_path / "warm"), _outputs(tmp_path / "third")])


def test_a_directory_whose_manifest_disagrees_is_emptied_before_use(tmp_path):
    root = tmp_path / "c"
    _run(root, tmp_path / "o1", ["seed_serial"])
    (directory,) = [p for p in root.iterdir() if p.is_dir()]
    manifest = json.loads((directory / cache.MANIFEST).read_text())
    assert manifest["package"] == str(ROOT / "runtime")
    assert manifest["numba"] and manifest["cpu"] and manifest["kernel_sources"]
    (directory / cache.MANIFEST).write_text(json.dumps(manifest | {"numba": "0.0"}))
    stray = directory / "plan_stale.py"
    stray.write_text("this is not python")
    _run(root, tmp_path / "o2", ["seed_serial"])
    assert not stray.exists()
    assert json.loads((directory / cache.MANIFEST).read_text()) == manifest
    _assert_agree([_outputs(tmp_path / "o1"), _outputs(tmp_path / "o2")])


def test_cache_cli_info_and_clear(tmp_path):
    root = tmp_path / "c"
    _run(root, tmp_path / "o", ["seed_serial"])

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "runtime.cache", *args], cwd=ROOT,
                              env=_env(root), capture_output=True, text=True, timeout=TIMEOUT)

    shown = cli("info", "--json")
    assert shown.returncode == 0, shown.stderr
    facts = json.loads(shown.stdout)
    assert facts["root"] == str(root)
    (entry,) = facts["directories"]
    assert entry["current"] and entry["bytes"] > 0 and entry["plans"] >= 1
    assert "this environment" in cli("info").stdout
    cleared = cli("clear")
    assert cleared.returncode == 0 and "removed" in cleared.stdout
    assert not [p for p in root.iterdir() if p.is_dir()]
    assert "nothing to remove" in cli("clear", "--current").stdout


def test_the_cache_lock_is_reentrant_and_excludes_other_processes(tmp_path):
    marker = tmp_path / "acquired"
    probe = ("import sys, runtime.cache as c\n"
             "with c.compile_lock():\n"
             "    open(sys.argv[1], 'w').close()\n")
    with cache.compile_lock(), cache.compile_lock():  # a thread may take it twice
        other = subprocess.Popen([sys.executable, "-c", probe, str(marker)], cwd=ROOT,
                                 env=_env(cache.cache_root()), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        try:
            other.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass  # still waiting for the lock this process holds
        else:
            pytest.fail(f"the child did not wait for the lock (exit {other.returncode}):\n"
                        f"{other.stdout.read()}")
        assert not marker.exists()
    output, _ = other.communicate(timeout=120)
    assert other.returncode == 0, output
    assert marker.exists()
