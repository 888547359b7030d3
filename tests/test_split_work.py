"""``runtime.threads.split_work``: serial jitted drivers spread over a pool of Python threads
(what replaced the ``parallel=True`` conv drivers, which cost ~5x more to compile)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

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


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_pool():
    split_work(lambda lo, hi: None, 4, threads=2)  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # child: the inherited executor has no threads; a new pool must serve it
        signal.alarm(60)  # a hang ends the child (SIGALRM) instead of the test run
        try:
            out = []
            split_work(lambda lo, hi: out.append((lo, hi)), 4, threads=2)
            os._exit(0 if sorted(out) == [(0, 2), (2, 4)] else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
