"""Thread settings for the kernels, and the threading layer started before any kernel loads.

We ask for a layer that is safe when plans are called from several Python threads at once (TBB
or OpenMP, never ``workqueue``) and start it when ``runtime`` is imported, before any compiled
code is loaded from the on-disk cache. That ordering is what keeps a warm cache from crashing:
a cached function that calls a ``parallel=True`` function links the callee's machine code, which
calls ``numba_parallel_for`` & co., symbols that exist only once the threading layer is started.
numba records "start the threading layer on load" on the parallel function's cache entry, but
when the callee itself came from the cache that note is lost on the way into the caller's entry
(``_rebuild`` runs the callee's reload hooks without keeping them on its library), so a fresh
process loading only the caller jumps to a null symbol (issue 8: SIGSEGV). Starting the layer
ourselves makes every cached entry safe to load, whatever numba recorded in it.
``DEFERC_NUM_THREADS`` sets the default thread count.
"""

from __future__ import annotations

import os

import numba

numba.config.THREADING_LAYER = os.environ.get("NUMBA_THREADING_LAYER", "threadsafe")
numba.get_num_threads()  # starts the threading layer (public API; ~10 ms)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in parallel kernels (at most the cores numba found)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"thread count must be a positive int, received {n!r}")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def get_num_threads() -> int:
    return numba.get_num_threads()


def threading_layer() -> str:
    """The layer in use (``omp``, ``tbb``), started when ``runtime`` was imported."""
    return numba.threading_layer()


if os.environ.get("DEFERC_NUM_THREADS"):
    set_num_threads(int(os.environ["DEFERC_NUM_THREADS"]))


def _single_threaded_blas() -> bool:
    """Run the BLAS numba calls (scipy's OpenBLAS) on the calling thread only.

    Our kernels parallelise with numba's threads; OpenBLAS threads on top of them oversubscribe
    the cores, and their spin-waiting starves numba's workers (measured: a batch-256 MLP ran
    ~50x slower). numpy's own BLAS is a separate library and keeps its threads.
    """
    import ctypes
    import glob

    import scipy

    libs = glob.glob(os.path.join(os.path.dirname(scipy.__file__), os.pardir, "scipy.libs",
                                  "libscipy_openblas*.so*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            setter = getattr(lib, "scipy_openblas_set_num_threads", None)
            if setter is not None:
                setter(1)
                return True
        except OSError:
            continue
    return False


BLAS_SINGLE_THREADED = _single_threaded_blas()
