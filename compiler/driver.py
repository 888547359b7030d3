"""Entry points that run pipelines on a model: ``build_model`` and ``compile``."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import threading
from collections.abc import Sequence
from typing import Any

import networkx as nx

from .backend import runtime_factory
from .errors import CompilerError, ShapeError
from .lowering import lower
from .passes import BUILD_PIPELINE, COMPILE_PIPELINE, CompileContext, commit_weights, run_pipeline
from .types import TensorSpec

#: ``compile(tier=...)``: answer first calls while compiling in the background, or wait for it
TIERS = ("auto", "jit")

#: Held while weights are created and committed. Process-wide, not per model: a layer may be
#: shared by several models, and two of them initializing it at once must not both create it.
BUILD_LOCK = threading.RLock()


def _input_types(model: Any, specs: Sequence[TensorSpec]) -> list:
    if len(specs) != model.num_inputs:
        raise CompilerError(f"model '{model.name}' takes {model.num_inputs} input(s), received "
                            f"{len(specs)} input spec(s)")
    for name, spec in zip(model.input_names, specs):
        if not spec.shape:  # every input has a batch axis; kernels index the last axis
            raise ShapeError(f"model '{model.name}': input '{name}' needs a batch axis (rank >= "
                             f"1), received rank 0 (a scalar)")
    # a spec without a dtype takes the one the model's Input declared (an int input stays int)
    declared = getattr(model, "_input_specs", None) or [None] * len(specs)
    specs = [s if s.dtype is not None or getattr(d, "dtype", None) is None
             else dataclasses.replace(s, dtype=d.dtype) for s, d in zip(specs, declared)]
    return [s.to_type(model.dtype, i) for i, s in enumerate(specs)]


def build_graph(model: Any, specs: Sequence[TensorSpec], passes: Sequence, **ctx_args: Any
                ) -> tuple[nx.DiGraph, CompileContext]:
    """Lower ``model`` for ``specs`` and run ``passes``; the model itself is not modified."""
    with _gc_paused():
        graph = lower(model, _input_types(model, specs))
        # the store ``lower`` read after lowering (tracing a custom layer's first call declares
        # its weights); walking every layer for it again costs as much as a pass
        ctx = CompileContext(store=graph.graph["weights"], **ctx_args)
        return run_pipeline(graph, passes, ctx), ctx


@contextlib.contextmanager
def _gc_paused():
    """Building allocates many small objects and frees few; the cyclic collector would rescan
    them again and again (superlinear on 10,000-layer models), so it waits until we are done."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build_model(model: Any, specs: Sequence[TensorSpec], seed: int | None = None) -> None:
    """Infer shapes and initialize missing weights; all-or-nothing."""
    from .frontend.tracing import build_scope

    with BUILD_LOCK, build_scope():
        _graph, ctx = build_graph(model, specs, BUILD_PIPELINE, seed=seed)
        commit_weights(ctx)
        model._built_specs = list(specs)


def _as_spec(item: Any) -> TensorSpec:
    if isinstance(item, TensorSpec):
        return item
    if isinstance(item, tuple) and all(d is None or isinstance(d, (int, str)) for d in item):
        return TensorSpec(item)
    if hasattr(item, "shape") and hasattr(item, "dtype"):
        return TensorSpec.from_array(item)
    raise CompilerError(f"an input spec must be a TensorSpec, a shape tuple or a sample array, "
                        f"received {item!r}")


def compile(model: Any, *input_specs: Any, seed: int | None = None, dump_ir: bool = False,
            disabled: Sequence[str] = (), options: dict | None = None,
            executor: str | None = None, tier: str | None = None):
    """Compile ``model`` for the given input signature into an executable ``runtime.Plan``.

    Uninitialized weights are created on the way (as ``model.build`` would). Without specs, the
    model's own declared or built signature is used. The plan comes from the registered runtime
    (``compiler.backend``); it reads the model's weights by key and sees later ``set_weights``.

    Args:
        model: a ``Sequential`` or functional ``Model``.
        input_specs: one ``TensorSpec`` (or shape tuple, or sample array) per model input.
        seed: seed for weights created now.
        dump_ir: keep the IR text after every pass in the plan's report.
        disabled: names of optional passes to skip (e.g. ``"fuse"``).
        options: pass options.
        executor: ``"codegen"`` (default: the whole plan as one jitted call) or ``"steps"``
            (kernel by kernel); ``$DEFERC_EXECUTOR`` sets the default.
        tier: ``"auto"`` (default; ``$DEFERC_TIER`` changes it): the first calls are answered
            at once by a lower tier (compiled kernels where this process has them, else the
            NumPy reference) while the jitted code compiles in the background, then calls
            switch to it; ``"jit"``: compile (or load from the cache) before returning.
    Returns:
        A ``runtime.Plan``: call it with arrays.
    """
    if tier is not None and tier not in TIERS:
        raise CompilerError(f"compile(model '{model.name}'): tier must be one of {list(TIERS)}, "
                            f"received {tier!r}")
    make_plan = runtime_factory()
    specs = [_as_spec(s) for s in input_specs] or model._built_specs or model._input_specs
    if not specs:
        raise CompilerError(f"compile(model '{model.name}') needs input specs, e.g. "
                            f"compile(net, TensorSpec((None, 20)))")
    from .frontend.tracing import build_scope

    with model._lock, BUILD_LOCK, build_scope():
        graph, ctx = build_graph(model, specs, COMPILE_PIPELINE, seed=seed, dump_ir=dump_ir,
                                 disabled=frozenset(disabled), options=dict(options or {}))
        commit_weights(ctx)
        # the graph's weight values (derived ones too) are those of these versions: a plan
        # need not recompute them (folding and Winograd transforms took ~0.5 s on ResNet-18)
        graph.graph["weight_versions"] = model.weight_store.versions()
        if model._built_specs is None:
            model._built_specs = list(specs)
    extra = {} if tier is None else {"tier": tier}  # a runtime without tiers still plugs in
    return make_plan(graph, ctx.records, model_name=model.name, executor=executor,
                     store=model.weight_store, **extra)
