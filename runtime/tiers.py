"""Tiered execution: a plan answers its first calls at once while its jitted code compiles.

A cold numba cache makes a CNN's first call wait for every kernel to compile (over a minute for
ResNet-18). With ``tier="auto"`` the plan starts that compilation in a background thread and
serves calls meanwhile with the *lower tier*: its steps one by one, each through its numba kernel
when the machine code is at hand (compiled by this process, or loaded from the on-disk cache:
``runtime.no_compile``, which refuses anything that would compile), else through a fast NumPy
implementation (``runtime.lower_ops``: im2col + BLAS convolutions) or the op's NumPy reference
(``OpDef.reference``, the living definition of every op). The background thread first compiles
the Python-level steps (convolutions) one at a time, heaviest first, and each one moves to its
compiled kernel as soon as that is ready (``runtime.step_warmup``); then it builds the generated
code, runs the jitted plan once on zeros shaped like the first call's inputs (which compiles or
loads everything else that call needs) and only then flips the switch: later calls run the
jitted plan, without any tier machinery.

Locking: the background thread compiles under ``runtime.cache.compile_lock`` (numba's compiler
lock first, then ours), exactly like a foreground compile, so a foreground call that compiles
another plan simply waits its turn. The lower tier never compiles and never waits for that lock:
it only *tries* it to look in the disk cache, and calls a kernel without it only when the kernel's
code is already loaded.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numba.core.registry import CPUDispatcher

from compiler import driver
from compiler.errors import CompilerError
from compiler.inputs import as_input_array
from compiler.ir import param_operands
from compiler.ops import get_op

from . import no_compile
from .lower_ops import FAST
from .progress import reporting
from .step_warmup import warm_launchers

TIERS = driver.TIERS
#: The background build waits this long for a first call, then for that call to finish (at most
#: ``FIRST_CALL_WAIT_S``): numba compiles in Python, and its thread would otherwise take the GIL
#: from the first call, the one a new user waits for, every few milliseconds. Later calls do not
#: hold it back (a steady stream of them would starve it).
FIRST_CALL_GRACE_S = 1.0
FIRST_CALL_WAIT_S = 60.0
#: what ``describe()`` calls the tiers
LOWER, JIT = "lower (compiled kernels + NumPy reference)", "jit"


def _implementation(op: str) -> Any:
    """The op's fast NumPy implementation (``runtime.lower_ops``) falling back to its reference
    for the cases the fast one does not cover; else the reference itself."""
    reference = get_op(op).reference
    quick = FAST.get(op)
    if quick is None:
        return reference

    def run(inputs: list, params: dict, attrs: dict) -> np.ndarray:
        result = quick(inputs, params, attrs)
        return reference(inputs, params, attrs) if result is None else result
    return run


class LowerTier:
    """A plan's steps, one by one: compiled kernels where they exist, else NumPy references.

    Each value is computed in its own dtype, with the same input conversions the jitted plan
    applies (``PlanStep.casts``), so both tiers agree within the tolerance the reference tests
    use. ``kernels=False`` runs every step on its reference.
    """

    def __init__(self, plan: Any, kernels: bool = True) -> None:
        g = plan.graph
        self._plan = plan
        self._kernels = kernels
        self._refs = [None if s.alias else _implementation(g.nodes[s.node]["op"])
                      for s in plan._steps]
        self._attrs = [dict(g.nodes[s.node]["attrs"]) for s in plan._steps]
        self._params = [param_operands(g, s.node) for s in plan._steps]
        #: steps served by each means in the last call: {"kernel": n, "reference": m}
        self.last_counts: dict[str, int] = {}
        self._good: set = set()  # launcher calls (step, argument types) that run uncompiled
        #: per step, what served it in the last call: "kernel", "numpy" (None: a reshape view)
        self.last_served: list = []

    @staticmethod
    def _key(index: int, fn: Any, args: tuple) -> tuple:
        return (index, fn, tuple((a.shape, a.dtype.str) if isinstance(a, np.ndarray) else type(a)
                                 for a in args))

    def mark_ready(self, index: int, fn: Any, args: tuple) -> None:
        """A Python-level step's kernels are compiled for such arguments: run them from now on
        (``runtime.step_warmup`` calls this from the background thread)."""
        self._good.add(self._key(index, fn, args))

    def _run_kernel(self, index: int, fn: Any, args: tuple) -> bool:
        """Run the step's kernel if its machine code is at hand (``runtime.no_compile``)."""
        if isinstance(fn, CPUDispatcher):
            return no_compile.call(fn, args)
        key = self._key(index, fn, args)
        ran = no_compile.call(fn, args, known_good=key in self._good)
        if ran:
            self._good.add(key)
        return ran

    def prepare(self, inputs: Sequence[Any]) -> tuple[list[np.ndarray], Any]:
        """Inputs as arrays in their declared dtypes (validated), and their memory layout."""
        plan = self._plan
        if len(inputs) != len(plan._input_nodes):
            raise CompilerError(f"plan for model '{plan.model_name}' takes "
                                f"{len(plan._input_nodes)} input(s), received {len(inputs)}")
        arrays = [as_input_array(x, dtype, name)
                  for x, name, dtype in zip(inputs, plan.signature.names, plan._input_dtypes)]
        return arrays, plan._layout_for(arrays)

    def __call__(self, *inputs: Any) -> Any:
        """What ``plan(*inputs)`` returns, computed on this tier."""
        return self.finish(self.run(*self.prepare(inputs)))

    def finish(self, outs: list[np.ndarray]) -> Any:
        """Outputs as the jitted plan hands them back: never a view of the caller's input."""
        plan = self._plan
        for i, copy in enumerate(plan._copy_outputs):
            if copy:  # a view of the caller's input: never hand the caller's array back
                outs[i] = outs[i].copy()
        return outs[0] if len(outs) == 1 else outs

    def run(self, arrays: Sequence[np.ndarray], layout: Any) -> list[np.ndarray]:
        plan = self._plan
        values: dict[int, np.ndarray] = dict(zip(plan._input_nodes, arrays))
        counts = {"kernel": 0, "reference": 0}
        served = self.last_served = [None] * len(plan._steps)
        for index, step in enumerate(plan._steps):
            shape = layout.step_shapes[index]
            ins = [values[n] for n in step.inputs]
            if step.alias:
                values[step.node] = ins[0].reshape(shape)
                continue
            if step.casts:
                ins = [x if c is None else x.astype(c) for x, c in zip(ins, step.casts)]
            fn = step.parallel_fn if layout.parallel else step.fn
            out = np.empty(shape, step.dtype)
            args = (*ins, *plan._weights(step), out, *layout.scalars[index])
            if self._kernels and self._run_kernel(index, fn, args):
                counts["kernel"] += 1
                served[index] = "kernel"
            else:
                params = {name: plan._values[node] for name, node in self._params[index].items()}
                with np.errstate(all="ignore"):
                    result = self._refs[index](ins, params, self._attrs[index])
                out[...] = result
                counts["reference"] += 1
                served[index] = "numpy"
            values[step.node] = out
        self.last_counts = counts
        return [values[n] for n in plan._output_nodes]


class SerialOnDemand:
    """Stands for a plan's serial generated function while only the threaded one is built
    (a background build compiles only what the first call's sizes need): compiled on first use."""

    def __init__(self, plan: Any) -> None:
        self._plan = plan

    def __call__(self, *args: Any) -> Any:
        plan = self._plan
        with plan._lock:
            if plan._forward is self:
                with reporting(f"model '{plan.model_name}'"):
                    plan._forward = plan._compile_forward()
        return plan._forward(*args)


class TieredCalls:
    """The switch between a plan's lower tier and its jitted code (see the module doc)."""

    def __init__(self, plan: Any, build: bool) -> None:
        self._plan = plan
        self._lower = LowerTier(plan)
        self._lock = threading.Lock()
        self._build = build            # generated code still to build (else only warm-up)
        self._pending: list | None = None  # zeros shaped like the first call's inputs
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._settled = threading.Event()  # ready, or failed for good
        self._local = threading.local()   # marks the background thread's own jitted call
        self._called = threading.Event()      # a first call started ...
        self._first_done = threading.Event()  # ... and returned
        self.last = None               # the tier that served the last call
        with self._lock:
            self._start()

    # -- the background thread ----------------------------------------------------------------
    def _start(self) -> None:
        """Start the worker unless it runs (or failed); call with ``self._lock`` held."""
        if self._thread is None and self._failed is None:
            # Not a daemon: interpreter exit waits for it. A daemon thread inside LLVM while the
            # process tears down can crash the exit; and the finished work lands in the cache.
            self._thread = threading.Thread(target=self._work, daemon=False,
                                            name=f"deferc-jit-{self._plan.model_name}")
            self._thread.start()

    def _work(self) -> None:
        plan = self._plan
        try:
            if self._called.wait(FIRST_CALL_GRACE_S):
                self._first_done.wait(FIRST_CALL_WAIT_S)
            with reporting(f"model '{plan.model_name}'", tiered=True):
                with self._lock:
                    job = self._pending
                if job is not None:  # the heavy Python-level steps first, one by one
                    warm_launchers(plan, job, self._lower.mark_ready)
                if self._build:  # the variant (serial or threaded) the first call needs
                    plan._build_codegen(job is not None and plan._layout_for(job).parallel)
                    with plan._weights_lock:  # weights may have changed while we packed them
                        if plan._generated is not None:
                            plan._wbuf = plan._pack()
                    self._build = False
                with self._lock:
                    job = self._pending
                    if job is None:     # nobody called yet: the first call starts us again
                        self._thread = None
                        return
                self._local.warming = True
                plan(*job)               # compiles (or loads) every kernel such a call needs
            with self._lock:
                self._pending, self._thread = None, None
                self._ready.set()
                self._settled.set()
        except BaseException as error:  # the lower tier keeps answering; say why, once
            with self._lock:
                self._failed, self._thread = error, None
                self._settled.set()
            warnings.warn(f"deferc: compiling model '{plan.model_name}' failed in the background "
                          f"({type(error).__name__}: {error}); its calls keep running on the "
                          "lower tier", RuntimeWarning, stacklevel=1)

    # -- calls ----------------------------------------------------------------------------------
    def intercepts(self) -> bool:
        """Should this call go through the tiers (not the worker's own warm-up call)?"""
        return not getattr(self._local, "warming", False)

    def __call__(self, inputs: Sequence[Any]) -> Any:
        plan = self._plan
        if self._ready.is_set():
            plan._tiers = None          # from now on calls go straight to the jitted code
            self.last = JIT
            return plan(*inputs)
        arrays, layout = self._lower.prepare(inputs)
        with self._lock:
            if self._pending is None and not self._ready.is_set():
                self._pending = [np.zeros(a.shape, a.dtype) for a in arrays]
            self._start()
        self._called.set()
        try:
            if plan._stale:
                plan._sync_weights()
            outs = self._lower.run(arrays, layout)
        finally:
            self._first_done.set()
        self.last = LOWER
        return self._lower.finish(outs)

    # -- introspection --------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until calls run the jitted code; ``False`` on timeout or failure.

        Before any call, the warm-up runs on zeros of batch 1 when every other input size is
        known; with symbolic sides it only builds the generated code, and the first call
        compiles the rest in the background."""
        plan = self._plan
        with self._lock:
            if self._failed is not None:
                return False
            if self._pending is None and not self._ready.is_set():
                sample = _sample_inputs(plan)
                if sample is None and not self._build:
                    return True  # nothing left to do ahead of a call
                self._pending = sample
            self._start()
            thread = self._thread
        if self._pending is None and thread is not None:  # build only
            thread.join(timeout)
            return not thread.is_alive() and self._failed is None
        self._settled.wait(timeout)
        return self._ready.is_set()

    def describe(self) -> str:
        if self._failed is not None:
            state = f"background compilation failed: {self._failed}"
        elif self.ready:
            state = "jitted code ready"
        else:
            state = "jitted code compiling in the background"
        counts = self._lower.last_counts
        served = (f"; its last call: {counts['kernel']} step(s) on compiled kernels, "
                  f"{counts['reference']} on the NumPy reference" if counts else "")
        return f"tiered ({state}){served}"


def _sample_inputs(plan: Any) -> list | None:
    """Zeros of batch 1 for every input, or ``None`` when a non-batch size is symbolic."""
    shapes, dtypes = [], []
    for t in plan.signature.types:
        dims = [1 if i == 0 and not isinstance(d, int) else d for i, d in enumerate(t.shape)]
        if not all(isinstance(d, int) for d in dims):
            return None
        shapes.append(tuple(dims))
        dtypes.append(t.dtype)
    return [np.zeros(s, dt) for s, dt in zip(shapes, dtypes)]


def likely_cached(plan: Any, codegen_wanted: bool) -> bool | None:
    """Does the on-disk cache already hold this plan's generated code? Then loading it is
    quicker than one call on the lower tier, and the plan loads it at once. Returns the cached
    variant (``True``: threaded kernels, ``False``: serial), or ``None``.

    A heuristic: it looks for numba's index files of the generated modules (a warm-up, or an
    earlier process that ran the plan, leaves them together with the kernels that run between
    them). The variant a batch-1 call would run is looked for first: a tiered process compiles
    only that one, so a cache it warmed holds no other. Plans without generated code always
    start tiered.
    """
    from .cache import cache_dir

    if not codegen_wanted:
        return None
    root = Path(numba.config.CACHE_DIR or cache_dir())
    if not root.is_dir():
        return None
    indexed = {p.name.split(".", 1)[0] for p in root.rglob("plan_*.nbi")}
    sample = _sample_inputs(plan)
    first = sample is not None and plan._layout_for(sample).parallel
    for parallel in (first, not first):
        keys = _generated_keys(plan, parallel)
        if keys and all(f"plan_{key}" in indexed for key in keys):
            return parallel
    return None


def _generated_keys(plan: Any, parallel: bool) -> list[str]:
    """The module keys of the plan's generated code (one function, or one per segment)."""
    from . import codegen

    fresh = set(plan._output_roots)
    whole = codegen.generate(plan._steps, plan._input_nodes, plan._output_nodes, fresh,
                             plan._param_shapes, parallel)
    if whole is not None:
        return [whole.key]
    if len(plan._steps) > codegen.MAX_CODEGEN_STEPS:
        return []
    keys, base = [], 0
    for seg in codegen.segments(plan._steps, plan._input_nodes, plan._output_nodes):
        if isinstance(seg, codegen.Segment):
            gen = codegen.generate(plan._steps, plan._input_nodes, plan._output_nodes, fresh,
                                   plan._param_shapes, parallel, seg, base)
            keys.append(gen.key)
            base = gen.weight_elements
    return keys


def describe(plan: Any) -> str:
    """One line for ``Plan.describe``: the tier mode, its state and what served the last call."""
    state = plan._tiered
    if state is None:
        return f"tier: {plan.tier} (jitted code; the last call ran on the jit tier)"
    last = plan.last_tier or "no call yet"
    return f"tier: {plan.tier}, {state.describe()}; the last call ran on: {last}"
