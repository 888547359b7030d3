"""The kernel index: a warm process imports only the kernel modules it asks for, and an index it
cannot trust (missing, garbage, stale, pointing outside the package) costs time, never a kernel."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime.kernels import registry

ROOT = Path(__file__).resolve().parent.parent

_CHILD = textwrap.dedent("""
    import sys
    from runtime.kernels.registry import all_kernels, get_kernel
    if sys.argv[1] == "all":
        all_kernels()
    else:
        assert get_kernel(sys.argv[1]).name == sys.argv[1]
    print(",".join(sorted(m for m in sys.modules if m.startswith("runtime.kernels."))))
""")


def _child(cache: Path, arg: str) -> set:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEFERC_CACHE_DIR": str(cache)}
    env.pop("NUMBA_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", _CHILD, arg], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.strip().split(","))


def _index_file(cache: Path) -> Path:
    (found,) = cache.glob(f"*/{registry.INDEX}")
    return found


def test_a_process_with_an_index_imports_only_the_module_it_needs(tmp_path):
    everything = _child(tmp_path, "all")  # no index yet: imports all, then writes the index
    index = json.loads(_index_file(tmp_path).read_text())
    assert index["max_pool2d"] == "runtime.kernels.pooling"
    assert index["conv2d"] == "runtime.kernels.conv"
    loaded = _child(tmp_path, "max_pool2d")
    assert "runtime.kernels.pooling" in loaded
    assert "runtime.kernels.recurrent" not in loaded and "runtime.kernels.attention" not in loaded
    assert len(loaded) < len(everything)


def test_a_garbage_index_means_importing_everything(tmp_path):
    _child(tmp_path, "all")
    _index_file(tmp_path).write_text("{not json")
    assert "runtime.kernels.recurrent" in _child(tmp_path, "max_pool2d")
    # and the full import wrote a good index again
    assert json.loads(_index_file(tmp_path).read_text())["max_pool2d"] == \
        "runtime.kernels.pooling"


def test_a_stale_entry_falls_back_to_importing_everything(tmp_path):
    _child(tmp_path, "all")
    path = _index_file(tmp_path)
    index = json.loads(path.read_text())
    index["max_pool2d"] = "runtime.kernels.merge"  # a module that does not register it
    path.write_text(json.dumps(index))
    assert "runtime.kernels.pooling" in _child(tmp_path, "max_pool2d")


def test_an_index_naming_modules_outside_the_kernels_is_ignored(tmp_path, monkeypatch):
    import runtime.cache

    (tmp_path / registry.INDEX).write_text(json.dumps({"relu": "os", "add": "runtime.plan"}))
    monkeypatch.setattr(runtime.cache, "cache_dir", lambda: tmp_path)
    assert registry._read_index() == {}


def test_an_unknown_kernel_name_still_says_what_exists(monkeypatch):
    monkeypatch.setattr(registry, "_index", {"no_such_kernel": "runtime.kernels.pooling"})
    with pytest.raises(KeyError, match="no runtime kernel named 'no_such_kernel'; have"):
        registry.get_kernel("no_such_kernel")


def test_saving_the_index_never_waits_for_a_compilation_holding_the_lock(tmp_path, monkeypatch):
    import threading

    import runtime.cache

    monkeypatch.setattr(registry, "_index", registry._index)  # restored afterwards
    monkeypatch.setattr(runtime.cache, "cache_dir", lambda: tmp_path)
    held, release = threading.Event(), threading.Event()

    def compiling():
        with runtime.cache.compile_lock():
            held.set()
            release.wait(60)
    worker = threading.Thread(target=compiling)
    worker.start()
    held.wait(60)
    saver = threading.Thread(target=registry._save_index, args=({"add": "runtime.kernels.merge"},))
    saver.start()
    saver.join(30)
    finished = not saver.is_alive()
    release.set()
    worker.join()
    saver.join()
    assert finished and not (tmp_path / registry.INDEX).exists()  # skipped, not waited
    registry._save_index({"add": "runtime.kernels.merge"})  # the lock is free: written
    assert json.loads((tmp_path / registry.INDEX).read_text()) == {"add": "runtime.kernels.merge"}
