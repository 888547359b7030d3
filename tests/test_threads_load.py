"""``runtime.threads.machine_busy``: serial kernels when other processes hold the cores.

The watch reads the idle time of our CPUs from ``/proc/stat``; we stand in for the kernel's
reading so the test decides how many cores were free, then check the decision and that a plan gives
the same numbers either way.
"""

from __future__ import annotations

import numpy as np
import pytest

from runtime import threads


@pytest.fixture
def load(monkeypatch):
    """Set how many cores stood idle over the watch's last window (one second)."""
    watch = threads._load_watch

    def set_load(idle_cores: float, own_cores: float = 0.0) -> None:
        monkeypatch.setattr(watch, "idle_seconds", lambda: idle_cores)
        watch.wall = threads.time.monotonic() - 1.0
        watch.idle = 0.0
        watch.own = threads.time.process_time() - own_cores
        watch.next = 0.0  # re-read at the next call, not half a second later

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
    load(idle_cores=0.3)
    assert threads.machine_busy()
    load(idle_cores=1.9)
    assert not threads.machine_busy()


def test_one_thread_is_never_busy(load, monkeypatch):
    monkeypatch.setattr(threads, "_DYNAMIC", True)
    before = threads.get_num_threads()
    threads.set_num_threads(1)
    try:
        load(idle_cores=0.0)
        assert not threads.machine_busy()
    finally:
        threads.set_num_threads(before)


def test_switch_off_keeps_threads(load, two_threads, monkeypatch):
    monkeypatch.setattr(threads, "_DYNAMIC", False)
    load(idle_cores=0.0)
    assert not threads.machine_busy()


def test_our_own_use_is_not_counted_as_others(load, two_threads, monkeypatch):
    """No idle core, but both were running us (our threads, our BLAS): not "busy"."""
    monkeypatch.setattr(threads, "_DYNAMIC", True)
    load(idle_cores=0.0, own_cores=2.0)
    assert not threads.machine_busy()


def test_real_reading_of_a_quiet_moment_is_sane():
    """The real ``/proc/stat`` reading: free cores between 0 and the CPUs we may use."""
    watch = threads._LoadWatch()
    if watch.idle is None:
        pytest.skip("no /proc/stat here")
    start = threads.time.monotonic()
    threads.time.sleep(0.5)
    dt = threads.time.monotonic() - start
    free = watch.free_cores(dt, watch.idle_seconds(), threads.time.process_time())
    assert -0.25 <= free <= len(watch.cpus) + 0.25  # /proc/stat counts in 10 ms ticks


def test_plan_gives_the_same_numbers_busy_or_not(load, two_threads, monkeypatch):
    from compiler import Sequential, TensorSpec, compile, layers

    monkeypatch.setattr(threads, "_DYNAMIC", True)
    model = Sequential([layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(),
                        layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(5)])
    plan = compile(model, TensorSpec((None, 20, 20, 3)))
    x = np.random.default_rng(0).standard_normal((64, 20, 20, 3)).astype(np.float32)
    load(idle_cores=2.0)
    quiet = plan(x)
    load(idle_cores=0.0)
    assert threads.machine_busy()
    busy = plan(x)
    np.testing.assert_allclose(busy, quiet, rtol=1e-5, atol=1e-5)
