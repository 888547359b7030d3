"""Per-step switching: compile a plan's Python-level steps one at a time, heaviest first.

A tiered plan's background thread (``runtime.tiers``) used to compile everything under one hold
of the compile lock, then switch the whole plan. The steps that cost most on the lower tier (a
CNN's convolutions, launched from Python) are also the ones with the most to compile; compiling
them one by one, in order of their arithmetic (``compiler.cost``), each under its own short hold
of the lock, lets every step move to its compiled kernel as soon as that kernel is ready: the
callback tells the lower tier, which from then on runs that step's kernel without waiting for the
rest. Inputs are zeros shaped like the first call's (a kernel's machine code depends on types and
ranks, and a launcher's choice of algorithm on sizes and weights, never on input values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numba.core.registry import CPUDispatcher

from compiler.cost import step_flops

from .cache import compile_lock
from .kernels.registry import get_kernel


def step_arguments(plan: Any, index: int, values: dict, layout: Any) -> tuple:
    """The arguments ``plan``'s step ``index`` passes its kernel, as the step executor does."""
    step = plan._steps[index]
    ins = [values[n] for n in step.inputs]
    if step.casts:
        ins = [x if c is None else x.astype(c) for x, c in zip(ins, step.casts)]
    out = np.empty(layout.step_shapes[index], step.dtype)
    return (*ins, *plan._weights(step), out, *layout.scalars[index])


def launcher_order(plan: Any, layout: Any, shapes: dict) -> list[int]:
    """Indices of the Python-level (non-numba) steps, the most arithmetic first."""
    g = plan.graph
    order = []
    for index, step in enumerate(plan._steps):
        fn = step.parallel_fn if layout.parallel else step.fn
        if step.alias or isinstance(fn, CPUDispatcher):
            continue
        names = get_kernel(step.kernel).param_names
        params = {name: plan._values[p].shape for name, p in zip(names, step.params)
                  if p is not None}
        flops = step_flops(g.nodes[step.node]["op"], [shapes[n] for n in step.inputs],
                           layout.step_shapes[index], params)
        order.append((-flops, index))
    return [index for _, index in sorted(order)]


def warm_launchers(plan: Any, arrays: Sequence[np.ndarray],
                   ready: Callable[[int, Any, tuple], None]) -> None:
    """Compile (or load) each Python-level step's kernels for these inputs, heaviest first,
    calling ``ready(index, fn, args)`` after each one."""
    layout = plan._layout_for(arrays)
    values: dict = dict(zip(plan._input_nodes, arrays))
    for index, step in enumerate(plan._steps):  # zeros of every value's shape and dtype
        values[step.node] = np.zeros(layout.step_shapes[index], step.dtype)
    shapes = {n: v.shape for n, v in values.items()}
    for index in launcher_order(plan, layout, shapes):
        step = plan._steps[index]
        fn = step.parallel_fn if layout.parallel else step.fn
        args = step_arguments(plan, index, values, layout)
        try:
            with compile_lock():
                fn(*args)
        except Exception:  # noqa: BLE001 - e.g. a launcher refusing zeros: the whole-plan
            continue       # warm-up that follows compiles it, or reports why it cannot
        ready(index, fn, args)
