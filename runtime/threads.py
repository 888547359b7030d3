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
TBB comes first when it loads: unlike GNU OpenMP it survives ``fork`` (a child of a process
that ran an OpenMP region aborts at its own first region: "fork() called from a process
already using GNU OpenMP"), and multiprocessing forks by default on Linux.
``DEFERC_NUM_THREADS`` sets the default thread count.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba
from numba.core.compiler_lock import global_compiler_lock


def _preload_tbb() -> None:
    """Load ``libtbb.so.12`` from the environment's ``lib`` folder, where pip's ``tbb`` wheel
    puts it and the dynamic loader does not look; numba's TBB layer then finds it loaded."""
    if not sys.platform.startswith("linux"):
        return
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        for path in sorted(glob.glob(os.path.join(prefix, "lib", "libtbb.so.12*"))):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                return
            except OSError:
                continue


_preload_tbb()
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


class _LoadWatch:
    """Is the machine too busy for our threads to pay off? (``machine_busy``)

    A parallel region ends only when every thread has run its share; on cores that other
    processes keep busy, a worker may wait a whole scheduler slice to run (measured on a loaded
    2-core machine: ~23 ms per region, LeNet-5 at batch 64 took 95 ms instead of 9 ms serially).
    So we measure, over the last window (at least ``interval`` seconds), the cores we could have
    had: the idle time of the CPUs we may run on (``/proc/stat``) plus our own CPU time. We do
    not use the load average: it lags by a minute, so a process that just ended (or the previous
    benchmark) made a quiet machine look busy and ran everything serially. Where ``/proc/stat``
    is missing (not Linux) we never call the machine busy. Races between threads only cost a
    stale answer.
    """

    interval = 0.5

    def __init__(self) -> None:
        self.next = 0.0
        self.busy = False
        self.lock = threading.Lock()
        try:
            self.cpus = frozenset(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            self.cpus = frozenset(range(os.cpu_count() or 1))
        self.tick = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self.wall, self.idle, self.own = time.monotonic(), self.idle_seconds(), time.process_time()

    def idle_seconds(self) -> float | None:
        """Idle (and I/O-wait) seconds of the CPUs we may run on, since boot; None off Linux."""
        try:
            with open("/proc/stat", "rb") as f:
                text = f.read().decode("ascii", "replace")
        except OSError:
            return None
        ticks = 0
        for line in text.splitlines():
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            name, *fields = line.split()
            if name[3:].isdigit() and int(name[3:]) in self.cpus and len(fields) >= 5:
                ticks += int(fields[3]) + int(fields[4])
        return ticks / self.tick

    def free_cores(self, dt: float, idle: float, own: float) -> float:
        """Cores idle or running us over the last ``dt`` seconds."""
        return ((idle - self.idle) + (own - self.own)) / dt

    def __call__(self) -> bool:
        now = time.monotonic()
        if now < self.next or self.idle is None or not self.lock.acquire(blocking=False):
            return self.busy
        try:
            idle, own, dt = self.idle_seconds(), time.process_time(), now - self.wall
            self.next = now + self.interval
            if idle is None or dt < self.interval:
                return self.busy
            threads = numba.get_num_threads()
            self.busy = threads > 1 and self.free_cores(dt, idle, own) < threads - 0.5
            self.wall, self.idle, self.own = now, idle, own
            return self.busy
        finally:
            self.lock.release()


_load_watch = _LoadWatch()
#: ``DEFERC_DYNAMIC_THREADS=0`` keeps the size thresholds alone in charge.
_DYNAMIC = os.environ.get("DEFERC_DYNAMIC_THREADS", "1") != "0"


def machine_busy() -> bool:
    """True when other processes load the cores enough that waking our worker threads costs
    more than it saves: plans and kernels then run serially (re-checked twice a second)."""
    return _DYNAMIC and _load_watch()


def _current_cpu() -> Callable[[], int]:
    """glibc's ``sched_getcpu`` (about a microsecond), or a stand-in answering -1."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).sched_getcpu
    except (OSError, AttributeError):
        return lambda: -1
    fn.restype = ctypes.c_int
    fn.argtypes = []
    return fn


current_cpu = _current_cpu()


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {cpu})  # 0: the calling thread
        except OSError:
            pass  # the CPU left our set: the thread stays unpinned


class _Pool:
    """Worker threads for ``split_work``, at most one per CPU and pinned to it, made when first
    needed.

    Pinned because of how a guest kernel places a woken thread: on a VM, once the process has
    idled for ~0.2 s, an unpinned pool thread was woken on the caller's vCPU (the idle vCPU
    looks preempted to the guest scheduler) and the two ranges shared one core — a 14x14x256
    conv ran 1.9 ms with "two" threads against 1.0 ms, ResNet-18 (C3) 33 ms against 27.
    Rebuilt after a fork: a forked child inherits the executors but not their threads.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.workers: dict[int, ThreadPoolExecutor] = {}
        self.pid = 0
        self.cpus = sorted(_load_watch.cpus)

    def for_ranges(self, count: int) -> list[ThreadPoolExecutor]:
        """Workers for ``count`` ranges besides the caller's, on CPUs other than the caller's
        (cycling when there are fewer CPUs than ranges)."""
        here = current_cpu()
        cpus = [cpu for cpu in self.cpus if cpu != here] or self.cpus
        chosen = [cpus[i % len(cpus)] for i in range(count)]
        with self.lock:
            if self.pid != os.getpid():
                self.workers, self.pid = {}, os.getpid()
            for cpu in chosen:
                if cpu not in self.workers:
                    worker = ThreadPoolExecutor(1, thread_name_prefix=f"deferc-cpu{cpu}")
                    worker.submit(_pin, cpu).result()
                    self.workers[cpu] = worker
            return [self.workers[cpu] for cpu in chosen]


_pool = _Pool()


def split_work(run: Callable, items: int, *args, threads: int) -> None:
    """``run(*args, lo, hi)`` over ``[0, items)`` in ``threads`` contiguous ranges at once: the
    first on the calling thread, the others on the pool threads pinned to the other CPUs
    (``run`` is a ``nogil`` jitted function, so they run in parallel).

    A serial jitted driver called like this replaces a ``parallel=True`` twin: numba compiles a
    ``prange`` region several times slower (the Winograd conv driver ~15 s of CPU against
    ~3.5 s serially); even a twin whose ``prange`` body only calls the serial driver costs as
    much again as the driver (numba links and re-optimizes the callee: 6.8 s for Winograd),
    which took a cold ResNet-18 (T3) from 21 s to 34 s for ~10% of run time.

    A caller holding numba's compiler lock (the lower tier probing whether code is compiled,
    the warm-up of launchers) runs every range itself: a pool thread that had to compile would
    wait for that lock while the caller waits for it.
    """
    threads = max(1, min(threads, items))
    if threads == 1 or global_compiler_lock.is_locked():
        run(*args, 0, items)
        return
    bounds = [items * t // threads for t in range(threads + 1)]
    workers = _pool.for_ranges(threads - 1)
    futures = [worker.submit(run, *args, bounds[t], bounds[t + 1])
               for t, worker in enumerate(workers, start=1)]
    try:
        run(*args, bounds[0], bounds[1])
    finally:
        for future in futures:
            future.result()


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
