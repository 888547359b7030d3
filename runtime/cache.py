"""Where compiled code is cached on disk, keyed so that stale machine code is never loaded.

numba's ``cache=True`` checks only the timestamp of the file a function is defined in, not of
the functions it calls in other files. Keying the whole cache directory by a hash of every kernel
module's source means a changed kernel can never be served from an old cache. This module must
run before any kernel module is imported, since numba fixes a function's cache location when the
function is decorated.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path

import numba


def _kernels_fingerprint() -> str:
    digest = hashlib.sha256(numba.__version__.encode())
    for path in sorted((Path(__file__).parent / "kernels").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


KERNELS_FINGERPRINT = _kernels_fingerprint()


def cache_root() -> Path:
    """``$DEFERC_CACHE_DIR``, else ``~/.cache/deferc``."""
    root = os.environ.get("DEFERC_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "deferc")
    return Path(root)


def cache_dir() -> Path:
    """The directory for this exact set of kernels (generated plans and numba's cache)."""
    return cache_root() / KERNELS_FINGERPRINT


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = str(cache_dir() / "numba")


@contextlib.contextmanager
def compile_lock():
    """Serialise compilation across processes sharing the cache.

    numba's on-disk cache is not safe when two processes compile the same functions at once
    (numba issue #10128: cached pieces from different processes can disagree and crash the
    loader), so first compilations take an exclusive file lock on the cache directory.
    """
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".compile.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
