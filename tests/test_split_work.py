"""``runtime.threads.split_work``: serial jitted drivers spread over pinned worker threads (what
replaced the ``parallel=True`` conv drivers, which cost ~5x more to compile), and the threading
layer behind the rest of the kernels (TBB where installed, because it survives ``fork``)."""

from __future__ import annotations

import importlib.metadata
import os
import signal
import threading

import numpy as np
import pytest

import runtime.threads
from runtime.kernels.conv import conv2d_nhwc
from runtime.threads import split_work


@pytest.mark.parametrize("threads", [1, 2, 3, 5])
@pytest.mark.parametrize("items", [0, 1, 2, 7, 64])
def test_every_item_runs_once_in_contiguous_ranges(threads, items):
    seen, lock = [], threading.Lock()

    def run(tag, lo, hi):
        assert tag == "args pass through"
        with lock:
            seen.append((lo, hi, threading.get_ident()))

    split_work(run, items, "args pass through", threads=threads)
    ranges = sorted((lo, hi) for lo, hi, _ in seen)
    covered = [i for lo, hi in ranges for i in range(lo, hi)]
    assert covered == list(range(items))
    assert len(ranges) == max(1, min(threads, items))
    assert any(ident == threading.get_ident() for *_, ident in seen)  # the caller works too


def test_an_error_in_a_pool_thread_reaches_the_caller_after_every_range_ended():
    ended = []

    def run(lo, hi):
        if lo > 0:
            raise ValueError(f"range {lo}:{hi} failed")
        ended.append((lo, hi))

    with pytest.raises(ValueError, match="range 5:10 failed"):
        split_work(run, 10, threads=2)
    assert ended == [(0, 5)]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs CPU affinity")
def test_each_worker_is_pinned_to_its_own_cpu_and_ranges_avoid_the_callers_cpu():
    """Unpinned, a worker woken on a VM landed on the caller's vCPU and shared it (README,
    Threads); the pool keeps one worker per CPU and hands ranges to the others."""
    placed, lock = [], threading.Lock()

    def run(lo, hi):
        with lock:
            placed.append((threading.get_ident(), os.sched_getaffinity(0),
                           runtime.threads.current_cpu()))

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    split_work(run, 2 * len(cpus), threads=len(cpus))
    caller_cpu = [cpu for ident, _, cpu in placed if ident == threading.get_ident()]
    workers = [(mask, cpu) for ident, mask, cpu in placed if ident != threading.get_ident()]
    assert len(caller_cpu) == 1 and len(workers) == len(cpus) - 1
    for mask, cpu in workers:
        assert len(mask) == 1 and cpu in mask  # a worker runs on the one CPU it is pinned to
    assert len({cpu for _, cpu in workers}) == len(workers)  # one worker per CPU
    assert set(runtime.threads._pool.workers) <= set(cpus)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_pool():
    split_work(lambda lo, hi: None, 4, threads=2)  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # child: the inherited executors have no threads; a new pool must serve it
        signal.alarm(60)  # a hang ends the child (SIGALRM) instead of the test run
        try:
            out = []
            split_work(lambda lo, hi: out.append((lo, hi)), 4, threads=2)
            os._exit(0 if sorted(out) == [(0, 2), (2, 4)] else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_tbb_is_the_threading_layer_where_it_is_installed():
    """pip's tbb wheel puts libtbb in the environment's lib folder, which numba's TBB layer
    does not search; runtime.threads loads it first (without that, numba falls back to OpenMP
    and a forked child aborts)."""
    try:
        importlib.metadata.distribution("tbb")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("tbb is not installed")
    assert runtime.threads.threading_layer() == "tbb"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_runs_parallel_kernels_after_its_parent_did(monkeypatch):
    """multiprocessing forks by default on Linux; a child of a process that ran a GNU OpenMP
    region aborts at its own first region ("fork() called from a process already using GNU
    OpenMP"), a TBB one does not. The dense kernel's threaded variant is a prange region."""
    if runtime.threads.threading_layer() != "tbb":
        pytest.skip("needs the TBB threading layer (GNU OpenMP is not fork-safe)")
    monkeypatch.setattr(runtime.threads, "_DYNAMIC", False)
    from compiler import Sequential, TensorSpec, compile, layers

    model = Sequential([layers.Dense(512, activation="relu"), layers.Dense(512)])
    plan = compile(model, TensorSpec((None, 256)), tier="jit")
    x = np.random.default_rng(0).standard_normal((2048, 256)).astype(np.float32)
    rng = np.random.default_rng(1)
    image = rng.standard_normal((2, 12, 12, 32)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)

    def run() -> list:
        out = np.empty((2, 12, 12, 32), np.float32)
        conv2d_nhwc(image, kernel, np.zeros(32, np.float32), np.zeros((0, 0, 0, 0), np.float32),
                    out, 1, 1, 1, 1, 1, 1, 1, 0, 0.0)
        return [plan(x), out]

    expected = run()  # the parent has run parallel regions and split_work
    assert plan.layout(x).parallel  # the threaded variant ran, not only the serial one
    pid = os.fork()
    if pid == 0:
        signal.alarm(120)  # a hang ends the child (SIGALRM) instead of the test run
        try:
            got = run()
            os._exit(0 if all(np.array_equal(a, b) for a, b in zip(got, expected)) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
