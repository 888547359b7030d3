"""``runtime.threads.split_work``: a serial jitted driver over ranges of work items, run on
several threads through its ``prange`` twin; and the threading layer behind it (TBB where
installed, because it survives ``fork``)."""

from __future__ import annotations

import importlib.metadata
import os
import signal

import numpy as np
import pytest
from numba import njit, prange
from numba.core.compiler_lock import global_compiler_lock

import runtime.threads
from runtime.kernels.conv import conv2d_nhwc
from runtime.threads import split_work


@njit(nogil=True, cache=True)
def _count(out, lo, hi):
    for i in range(lo, hi):
        out[i] += 1


@njit(parallel=True, nogil=True, cache=True)
def _count_threaded(out, items, threads):
    for t in prange(threads):
        _count(out, items * t // threads, items * (t + 1) // threads)


class _Calls:
    """Stand-ins for a driver and its twin that record how split_work called them."""

    def __init__(self):
        self.serial, self.threaded = [], []

    def run(self, tag, lo, hi):
        self.serial.append((tag, lo, hi))

    def run_threaded(self, tag, items, threads):
        self.threaded.append((tag, items, threads))


@pytest.mark.parametrize("threads", [1, 2, 3, 5])
@pytest.mark.parametrize("items", [0, 1, 2, 7, 64])
def test_the_twin_runs_when_more_than_one_thread_has_work(threads, items):
    calls = _Calls()
    split_work(calls.run, calls.run_threaded, items, "args pass through", threads=threads)
    used = max(1, min(threads, items))
    if used == 1:
        assert calls.serial == [("args pass through", 0, items)] and not calls.threaded
    else:
        assert calls.threaded == [("args pass through", items, used)] and not calls.serial


def test_a_caller_holding_the_compiler_lock_runs_every_range_itself():
    calls = _Calls()
    with global_compiler_lock:
        split_work(calls.run, calls.run_threaded, 10, "x", threads=2)
    assert calls.serial == [("x", 0, 10)] and not calls.threaded


@pytest.mark.parametrize("items", [1, 2, 7, 64, 1001])
def test_a_jitted_twin_covers_every_item_once(items, monkeypatch):
    monkeypatch.setattr(runtime.threads, "_DYNAMIC", False)
    out = np.zeros(items, np.int64)
    split_work(_count, _count_threaded, items, out, threads=2)
    assert (out == 1).all()


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
def test_a_forked_child_runs_threaded_kernels_after_its_parent_did(monkeypatch):
    """multiprocessing forks by default on Linux; a child of a process that ran a GNU OpenMP
    region aborts at its own first region, a TBB one does not."""
    if runtime.threads.threading_layer() != "tbb":
        pytest.skip("needs the TBB threading layer (GNU OpenMP is not fork-safe)")
    monkeypatch.setattr(runtime.threads, "_DYNAMIC", False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 12, 12, 32)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)
    bias = np.zeros(32, np.float32)
    none = np.zeros((0, 0, 0, 0), np.float32)

    def conv() -> np.ndarray:
        out = np.empty((2, 12, 12, 32), np.float32)
        conv2d_nhwc(x, kernel, bias, none, out, 1, 1, 1, 1, 1, 1, 1, 0, 0.0)
        return out

    expected = conv()  # the parent has run threaded regions
    pid = os.fork()
    if pid == 0:
        signal.alarm(120)  # a hang ends the child (SIGALRM) instead of the test run
        try:
            os._exit(0 if np.array_equal(conv(), expected) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
