"""The on-disk cache of compiled code: keyed so stale machine code is never loaded, locked so
concurrent processes never corrupt it, and guarded so a bad entry means a recompile, not a crash.

Three rules, each answering a way a warm cache has crashed or could crash a process:

1. **One directory per build environment.** numba's ``cache=True`` checks only the timestamp of
   the file a function is defined in, not the functions it calls in other files, nor the global
   constants it froze into its code (``NUMBA_NUM_THREADS`` sets the dense kernel's block count).
   The directory is named by a hash of everything that changes machine code: every kernel's
   source, this package's location, the numba/llvmlite/numpy/Python versions, the CPU and its
   features, the thread count and threading layer, and numba's code-generation settings. A
   ``manifest.json`` in it records those facts; a directory whose manifest disagrees is cleared.
2. **Every cache read and write under one lock.** numba names a new entry's data file after the
   index it read, so two processes saving at once can leave an index pointing at the other's
   machine code (numba issue #10128). ``protect`` routes a dispatcher's cache loads and saves
   through ``compile_lock``: a process-wide re-entrant lock plus an exclusive ``flock`` on the
   directory, always taken after numba's own compiler lock, so the order never inverts.
3. **A cache entry that cannot be read is dropped and compiled again** (truncated or corrupt
   files raise inside numba's loader; we warn, remove the entry and return "not cached").

The threading layer is started by ``runtime.threads`` before any kernel loads; see there for the
crash that ordering prevents.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llvmlite
import llvmlite.binding as llvm
import numba
import numpy as np
from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import CPUDispatcher

_PACKAGE = Path(__file__).resolve().parent.parent  # the ``runtime`` package
#: numba settings that change the machine code of a function with the same source
_CODEGEN_ENV = ("NUMBA_OPT", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_BOUNDSCHECK",
                "NUMBA_DEBUGINFO", "NUMBA_FASTMATH", "NUMBA_LOOP_VECTORIZE", "NUMBA_SLP_VECTORIZE",
                "NUMBA_THREADING_LAYER", "NUMBA_NUM_THREADS")
MANIFEST = "manifest.json"


def _kernel_sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted((_PACKAGE / "kernels").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def environment() -> dict[str, Any]:
    """Everything that can change the machine code built from the same kernel sources."""
    return {
        "kernel_sources": _kernel_sources_digest(),
        "package": str(_PACKAGE),
        "python": f"{platform.python_implementation()} {sys.version}",
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "numpy": np.__version__,
        "cpu": llvm.get_host_cpu_name(),
        "cpu_features": llvm.get_host_cpu_features().flatten(),
        "threads": numba.config.NUMBA_NUM_THREADS,
        "threading_layer": numba.threading_layer(),
        "settings": {name: os.environ.get(name) for name in _CODEGEN_ENV},
    }


ENVIRONMENT = environment()
KERNELS_FINGERPRINT = hashlib.sha256(
    json.dumps(ENVIRONMENT, sort_keys=True).encode()).hexdigest()[:16]


def cache_root() -> Path:
    """``$DEFERC_CACHE_DIR``, else ``~/.cache/deferc``."""
    root = os.environ.get("DEFERC_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "deferc")
    return Path(root)


def cache_dir() -> Path:
    """The directory for this build environment (generated plans and numba's cache)."""
    return cache_root() / KERNELS_FINGERPRINT


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = str(cache_dir() / "numba")


# -- the lock ---------------------------------------------------------------------------------
class _CacheLock:
    """Re-entrant across threads of this process, exclusive across processes.

    ``flock`` locks belong to an open file, so a thread that already holds the lock must not
    open and lock the file again (it would wait for itself): the file lock is taken by the
    outermost holder only. numba's compiler lock comes first because numba calls our cache
    hooks while holding it; taking it here too means no thread ever waits for it while holding
    ours.
    """

    def __init__(self) -> None:
        self._local = threading.RLock()
        self._depth = 0
        self._handle = None

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        with global_compiler_lock, self._local:
            if self._depth == 0:
                directory = cache_dir()
                directory.mkdir(parents=True, exist_ok=True)
                handle = open(directory / ".compile.lock", "a")
                fcntl.flock(handle, fcntl.LOCK_EX)
                self._handle = handle
            self._depth += 1
            try:
                yield
            finally:
                self._leave()


    def _leave(self) -> None:
        """Drop one level of holding; the outermost one unlocks and closes the lock file."""
        self._depth -= 1
        if self._depth == 0:
            handle, self._handle = self._handle, None
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    @contextlib.contextmanager
    def try_hold(self) -> Iterator[bool]:
        """Like ``hold`` but never waits: yields ``False`` (holding nothing) when another
        thread or process has the lock, e.g. a background compilation."""
        if not global_compiler_lock._lock.acquire(blocking=False):
            yield False
            return
        try:
            if not self._local.acquire(blocking=False):
                yield False
                return
            try:
                if self._depth == 0:
                    directory = cache_dir()
                    directory.mkdir(parents=True, exist_ok=True)
                    handle = open(directory / ".compile.lock", "a")
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        handle.close()
                        yield False
                        return
                    self._handle = handle
                self._depth += 1
                try:
                    yield True
                finally:
                    self._leave()
            finally:
                self._local.release()
        finally:
            global_compiler_lock._lock.release()


_LOCK = _CacheLock()


def compile_lock() -> contextlib.AbstractContextManager:
    """Hold while compiling, so other processes load what this one writes instead of racing."""
    return _LOCK.hold()


def try_compile_lock() -> contextlib.AbstractContextManager:
    """``compile_lock`` if it is free right now: yields whether it was taken (never waits)."""
    return _LOCK.try_hold()


# -- the manifest -----------------------------------------------------------------------------
_checked = False


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def ensure_trusted() -> Path:
    """The cache directory, checked once per process against its manifest.

    A directory holding files but no manifest, or a manifest for another environment (a hash
    collision, a hand-copied directory, an interrupted clear), is emptied before use.
    """
    global _checked
    directory = cache_dir()
    if _checked:
        return directory
    with compile_lock():
        manifest = directory / MANIFEST
        try:
            trusted = json.loads(manifest.read_text()) == json.loads(json.dumps(ENVIRONMENT))
        except (OSError, ValueError):
            trusted = False
        if not trusted:
            for entry in directory.iterdir():
                if entry.name != ".compile.lock":
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            write_atomically(manifest, json.dumps(ENVIRONMENT, indent=1, sort_keys=True))
        _checked = True
    return directory


# -- protected numba caches -------------------------------------------------------------------
class _LockedCache:
    """A numba ``FunctionCache`` whose loads and saves run under ``compile_lock``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        ensure_trusted()
        with compile_lock():
            try:
                return self._inner.load_overload(sig, target_context)
            except Exception as error:  # a truncated or corrupt entry: compile it again
                warnings.warn(f"deferc: dropping an unreadable cache entry of "
                              f"{self._inner._name!r} ({type(error).__name__}: {error}); "
                              "recompiling", RuntimeWarning, stacklevel=2)
                self._inner.flush()  # an empty index: every overload is compiled afresh
                return None

    def save_overload(self, sig: Any, data: Any) -> None:
        ensure_trusted()
        with compile_lock():
            self._inner.save_overload(sig, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def protect(dispatcher: Any) -> Any:
    """Route a cached numba function's cache through the lock (idempotent)."""
    cache = getattr(dispatcher, "_cache", None)
    if isinstance(dispatcher, CPUDispatcher) and type(cache).__name__ == "FunctionCache":
        dispatcher._cache = _LockedCache(cache)
    return dispatcher


def protect_module(module: Any) -> None:
    """``protect`` every numba function defined at the top level of ``module``."""
    for value in list(vars(module).values()):
        if isinstance(value, CPUDispatcher):
            protect(value)


# -- what users see: ``python -m runtime.cache info|clear`` -----------------------------------
def info() -> dict[str, Any]:
    """Where the cache is, how big, and which environment the current directory is for."""
    root = cache_root()
    dirs = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    def size(path: Path) -> int:
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

    return {
        "root": str(root),
        "current": str(cache_dir()),
        "environment": ENVIRONMENT | {"cpu_features": f"{len(ENVIRONMENT['cpu_features'])} chars"},
        "directories": [{"name": p.name, "bytes": size(p), "current": p == cache_dir(),
                         "plans": len(list(p.glob("plan_*.py")))} for p in dirs],
    }


def clear(everything: bool = True) -> list[str]:
    """Remove the cached code (all environments, or only the current one); returns what went."""
    root = cache_root()
    targets = ([p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []) \
        if everything else [cache_dir()]
    removed = []
    for path in targets:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed
