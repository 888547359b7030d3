"""Call numba code on the lower tier only when that needs no compilation.

The lower tier (``runtime.tiers``) must answer at once, so it may run a step's kernel only if
the machine code is already at hand: compiled by this process, or in the on-disk cache (numba's
own lookup: ``Dispatcher.compile`` finds an entry in the cache index and loads it, which takes a
few milliseconds). Anything else would compile for seconds, so it is *refused*: a listener on
numba's ``numba:compile`` event raises ``WouldCompile`` in the calling thread just before numba
would start compiling, and the caller runs the op in NumPy instead. Python-level launchers (a
convolution picks its algorithm per call and calls several numba functions) go through the same
refusal, so they run exactly when every function they call is loaded.

Locks: looking in the disk cache needs the compile lock; the lower tier only *tries* it
(``try_compile_lock``), so a call never waits behind a background compilation that holds it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numba
from numba.core import event
from numba.core.registry import CPUDispatcher

from .cache import try_compile_lock


class WouldCompile(RuntimeError):
    """Raised inside numba, in a refusing thread, instead of starting a compilation."""


_local = threading.local()
#: (dispatcher, signature) pairs the disk cache did not have: not looked up again (the
#: background compilation adds them to ``dispatcher.overloads`` when it gets there)
_absent: set = set()


class _Refuse(event.Listener):
    def on_start(self, ev: event.Event) -> None:
        if getattr(_local, "refusing", False):
            raise WouldCompile("the lower tier never compiles")

    def on_end(self, ev: event.Event) -> None:
        pass


event.register("numba:compile", _Refuse())


@contextlib.contextmanager
def refusing() -> Iterator[None]:
    """Within the block, this thread's numba calls load code but never compile it."""
    before = getattr(_local, "refusing", False)
    _local.refusing = True
    try:
        yield
    finally:
        _local.refusing = before


def signature(args: Sequence[Any]) -> tuple | None:
    try:
        return tuple(numba.typeof(a) for a in args)
    except (ValueError, TypeError):
        return None


def call(fn: Any, args: Sequence[Any], known_good: bool = False) -> bool:
    """Run ``fn(*args)`` if it needs no compilation; ``False`` (nothing run) otherwise.

    ``known_good``: this Python-level launcher already ran without compiling on arguments of
    these types, so it may run without taking the lock (its numba calls find their code).
    """
    if isinstance(fn, CPUDispatcher):
        sig = signature(args)
        if sig is None:
            return False
        if sig not in fn.overloads:
            if (fn, sig) in _absent:
                return False
            with try_compile_lock() as held:
                if not held:
                    return False
                try:
                    with refusing():
                        fn.compile(sig)  # numba's cache lookup; a miss is refused
                except WouldCompile:
                    _absent.add((fn, sig))
                    return False
        fn(*args)
        return True
    if known_good:
        with refusing():
            try:
                fn(*args)
                return True
            except WouldCompile:
                return False
    with try_compile_lock() as held:
        if not held:
            return False
        try:
            with refusing():
                fn(*args)
        except WouldCompile:
            return False
    return True
