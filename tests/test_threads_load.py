"""``runtime.threads.machine_busy``: serial kernels when other processes hold the cores.

The watch reads the 1-minute load average; we stand in for the kernel's reading so the test
decides what "busy" is, then check the decision and that a plan gives the same numbers either way.
"""

from __future__ import annotations

import numpy as np
import pytest

from runtime import threads


@pytest.fixture
def load(monkeypatch):
    """Set the load average other processes appear to put on the machine."""
    watch = threads._load_watch
    monkeypatch.setattr(watch, "own", 0.0)
    monkeypatch.setattr(watch, "cpus", 2)

    def set_load(value: float) -> None:
        monkeypatch.setattr(threads.os, "getloadavg", lambda: (value, value, value))
        watch.next = 0.0  # re-read at the next call, not half a second later
        monkeypatch.setattr(watch, "own", 0.0)

    yield set_load
    watch.next = 0.0
    watch.busy = False


@pytest.fixture
def two_threads():
    before = threads.get_num_threads()
    if threads.numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba runs one thread here")
    threads.set_num_threads(2)
    yield
    threads.set_num_threads(before)


def test_busy_when_others_hold_the_cores(load, two_threads, monkeypatch):
    monkeypatch.setattr(threads, "_DYNAMIC", True)
    load(3.0)
    assert threads.machine_busy()
    load(0.2)
    assert not threads.machine_busy()


def test_one_thread_is_never_busy(load, monkeypatch):
    monkeypatch.setattr(threads, "_DYNAMIC", True)
    before = threads.get_num_threads()
    threads.set_num_threads(1)
    try:
        load(8.0)
        assert not threads.machine_busy()
    finally:
        threads.set_num_threads(before)


def test_switch_off_keeps_threads(load, two_threads, monkeypatch):
    monkeypatch.setattr(threads, "_DYNAMIC", False)
    load(8.0)
    assert not threads.machine_busy()


def test_our_own_use_is_not_counted_as_others(load, two_threads, monkeypatch):
    """A load of 2 that is all ours (two threads running our kernels) is not "busy"."""
    monkeypatch.setattr(threads, "_DYNAMIC", True)
    load(2.0)
    threads._load_watch.own = 2.0
    threads._load_watch.wall -= 1e-3  # the decay keeps ``own`` near its value
    threads._load_watch.cpu = threads.time.process_time() - 2e-3
    assert not threads.machine_busy()


def test_plan_gives_the_same_numbers_busy_or_not(load, two_threads, monkeypatch):
    from compiler import Sequential, TensorSpec, compile, layers

    monkeypatch.setattr(threads, "_DYNAMIC", True)
    model = Sequential([layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(),
                        layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(5)])
    plan = compile(model, TensorSpec((None, 20, 20, 3)))
    x = np.random.default_rng(0).standard_normal((64, 20, 20, 3)).astype(np.float32)
    load(0.0)
    quiet = plan(x)
    load(6.0)
    assert threads.machine_busy()
    busy = plan(x)
    np.testing.assert_allclose(busy, quiet, rtol=1e-5, atol=1e-5)
