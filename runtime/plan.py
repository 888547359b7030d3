"""The executable plan: binds dims from the actual inputs, validates, runs the kernels.

Two executors share one memory layout: generated code (see ``codegen``: the whole forward pass
as one jitted call, or, when some steps are Python-level launchers, one generated function per
run of jitted steps with those steps called in between) and a kernel-by-kernel loop (for
debugging, for plans codegen declines, and selectable with ``executor="steps"``). Intermediate
values live in one byte-addressed arena allocated per call (offsets from ``plan_memory``), each
viewed in its value's dtype, so concurrent calls never share buffers; outputs are allocated in
their own dtype. Dtype contract: a step's kernel receives its operands in their IR dtypes (a layer
op's non-float operands converted to the model dtype first, ``compiler.dtypes``) and writes
``out`` in the node's dtype (see ``runtime/kernels/registry.py``).

A plan's state is plain data (steps with kernel names, the memory layout, weight keys and arrays,
the input signature), so it pickles: jitted functions are resolved again by kernel name, and
generated code is regenerated from the steps, hitting the on-disk numba cache.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import networkx as nx
import numba
import numpy as np

from compiler.dtypes import input_conversions, model_dtype
from compiler.errors import CompilerError
from compiler.inputs import as_input_array
from compiler.ir import dump, format_node, layer_name
from compiler.passes.pipeline import PassRecord
from compiler.passes.plan_memory import assign_offsets
from compiler.symbolic import Dim
from compiler.weights import WeightStore, derive

from . import codegen, tiers
from .binding import InputSignature, concrete_shape
from .cache import compile_lock
from .kernels.flags import PARALLEL_MIN_ELEMENTS
from .kernels.registry import empty_param, get_kernel
from .progress import reporting
from .threads import machine_busy


@dataclass(frozen=True)
class PlanStep:
    node: int
    kernel: str
    fn: Any
    parallel_fn: Any   # the kernel's threaded variant (``fn`` when it has none)
    inputs: tuple
    params: tuple      # param node ids in the kernel's order (None: absent optional param)
    scalars: tuple     # the kernel's scalar arguments, when they do not depend on input sizes
    dynamic: tuple     # else: per argument, an index into the layout array (ints) or a literal
    alias: bool
    shape: tuple       # symbolic output shape
    where: str
    attrs: tuple = ()  # the op's attributes, sorted (name, value) pairs
    dtype: str = "float32"  # the output's dtype (its arena view, or its fresh array)
    casts: tuple = ()  # per input: the dtype name it is converted to when read, or None


@dataclass(frozen=True)
class Layout:
    """Everything that depends on the concrete input shapes; cached per shape signature."""

    step_shapes: tuple
    offsets: np.ndarray   # per step: arena offset (bytes), -1 when not in the arena
    array: np.ndarray     # for generated code: arena bytes, offsets, shapes, sized scalars
    arena_bytes: int
    naive_bytes: int      # the arena's buffers laid end to end, without sharing
    parallel: bool        # some step is big enough that threads may pay off
    scalars: tuple        # every step's scalar arguments for these sizes
    itemsize: int = 4     # of the model dtype, for the element counts below

    @property
    def arena_elements(self) -> int:
        """The arena's size in elements of the model dtype."""
        return self.arena_bytes // self.itemsize

    @property
    def naive_elements(self) -> int:
        return self.naive_bytes // self.itemsize


def _serial(layout: Layout) -> Layout:
    """The same layout run without threads (``threads.machine_busy``), made once per layout."""
    serial = layout.__dict__.get("_serial")
    if serial is None:
        serial = layout.__dict__["_serial"] = replace(layout, parallel=False)
    return serial


class Plan:
    """A compiled forward pass. Call it with one array per model input.

    Weights are read by key from the model's ``WeightStore``; the plan watches their versions,
    so ``set_weights``/``load_weights`` after compiling are seen on the next call (derived
    weights, e.g. BatchNorm folded into a conv, are recomputed from their sources). A plan that
    is pickled (``pickle.dumps(plan)``) and loaded elsewhere holds a *snapshot* of the weights at
    pickling time: it no longer sees the model's later changes.

    Attributes:
        graph: the final IR (``networkx.DiGraph``); ``ir`` renders it as text.
        report: one ``PassRecord`` per pass that ran (name, seconds, node counts).
        executor: ``"codegen"`` (one jitted call) or ``"steps"`` (kernel by kernel).
        tier: ``"auto"`` (answer first calls on the lower tier while the jitted code compiles
            in the background, see ``runtime.tiers``) or ``"jit"`` (compile first).
    """

    def __init__(self, graph: nx.DiGraph, records: Sequence[PassRecord], model_name: str = "",
                 executor: str | None = None, store: WeightStore | None = None,
                 tier: str | None = None):
        self.graph = graph
        self.report = list(records)
        self.model_name = model_name
        g = graph
        self._input_nodes = list(g.graph["inputs"])
        self._output_nodes = list(g.graph["outputs"])
        self.dtype = model_dtype(g)  # weights and layer ops; each value has its own dtype
        self._input_dtypes = [g.nodes[n]["type"].dtype for n in self._input_nodes]
        self._input_dtype = self._input_dtypes[0]  # the fast path's
        self.signature = InputSignature(
            [g.nodes[n]["type"] for n in self._input_nodes],
            [g.nodes[n]["attrs"]["name"] for n in self._input_nodes],
            [_first_consumer(g, n) for n in self._input_nodes],
            g.graph.get("runtime_checks", ()))
        self.memory = g.graph["memory"]
        self._dynamic_slots = 0  # scalar arguments that each layout computes
        self._steps = [self._prepare_step(s) for s in g.graph["schedule"]]
        self._step_index = {s.node: i for i, s in enumerate(self._steps)}
        self._output_roots = [n for n in dict.fromkeys(self.memory.root[o] for o in
                                                       self._output_nodes)
                              if n not in self._input_nodes]
        self._fresh = frozenset(self._output_roots)
        self._single_io = len(self._input_nodes) == 1 and len(self._output_nodes) == 1
        self._copy_outputs = [self.memory.root[o] in self._input_nodes
                              for o in self._output_nodes]
        # the fast path's one check: hand the kernel's output back as is (no copy); outputs
        # are allocated in their own dtype, so there is never a cast on the way out
        self._plain_output = not any(self._copy_outputs)
        self._layouts: dict = {}
        self._lock = threading.Lock()
        self._layouts_lock = threading.Lock()  # never held while compiling (see runtime.tiers)
        self._generated = None
        self._init_weights(store)
        self._reset_executors()
        wanted = executor or os.environ.get("DEFERC_EXECUTOR", "codegen")
        if wanted not in ("codegen", "steps"):
            raise CompilerError(f"executor must be 'codegen' or 'steps', received {wanted!r}")
        self.tier = tier or os.environ.get("DEFERC_TIER", "auto")
        if self.tier not in tiers.TIERS:
            raise CompilerError(f"tier must be one of {list(tiers.TIERS)}, received {self.tier!r}")
        self.executor = "steps"
        self._start(wanted == "codegen")

    def _start(self, codegen_wanted: bool) -> None:
        """Build the jitted executor now (``tier="jit"``, or a warm cache), else in the
        background while calls run on the lower tier."""
        self._tiers = self._tiered = None
        cached = tiers.likely_cached(self, codegen_wanted) if self.tier == "auto" else None
        if self.tier == "auto" and cached is None:
            self._tiers = self._tiered = tiers.TieredCalls(self, build=codegen_wanted)
        elif codegen_wanted:  # a warm cache loads the variant it holds (the other on demand)
            with reporting(f"model '{self.model_name}'"):
                self._build_codegen(parallel=bool(cached))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until calls run the jitted code (``tier="auto"``); ``False`` on timeout."""
        return True if self._tiers is None else self._tiers.wait(timeout)

    @property
    def last_tier(self) -> str | None:
        """The tier that served the last call (``None`` before the first call of an auto plan)."""
        return tiers.JIT if self._tiers is None else self._tiered.last  # None: switched

    def _reset_executors(self) -> None:
        self._forward = self._forward_parallel = None  # the whole plan as one function
        self._program = None       # else: Segments and Python-level step indices, in order
        self._segment_fns: dict = {}  # parallel? -> one compiled function per Segment
        self._generated = self._wbuf = None
        self._steps_warm: set = set()  # kernel variants (serial/parallel) already compiled

    def _build_codegen(self, parallel: bool = False) -> None:
        """One generated function for the whole plan; else one per run of jitted steps (when
        any run calls a kernel); else the step executor. ``parallel``: build the threaded
        variant first (the first call's sizes need it), the serial one when a call needs it."""
        if parallel:
            self._forward_parallel = self._compile_forward(parallel=True)
            self._forward = None if self._forward_parallel is None else tiers.SerialOnDemand(self)
        else:
            self._forward = self._compile_forward()
        if self._forward is not None:
            self.executor = "codegen"
            return
        if len(self._steps) > codegen.MAX_CODEGEN_STEPS:
            return
        program = codegen.segments(self._steps, self._input_nodes, self._output_nodes)
        if any(isinstance(item, codegen.Segment) for item in program):
            self._program = program
            self._segment_fns[parallel] = self._compile_segments(parallel)
            self.executor = "codegen"

    # -- construction -----------------------------------------------------------------------
    def _prepare_step(self, step) -> PlanStep:
        g = self.graph
        kernel = get_kernel(step.kernel)
        params = dict(step.params)
        _check_params(g, step, kernel, params)
        out_type = g.nodes[step.node]["type"]
        in_shapes = [g.nodes[n]["type"].shape for n in step.inputs]
        scalars, dynamic = self._static_scalars(kernel, step, in_shapes, out_type.shape)
        return PlanStep(
            node=step.node, kernel=step.kernel, fn=kernel.fn,
            parallel_fn=kernel.parallel_fn or kernel.fn, inputs=step.inputs,
            params=tuple(params.get(p) for p in kernel.param_names),
            scalars=scalars, dynamic=dynamic,
            alias=step.alias, shape=out_type.shape,
            where=f"layer '{layer_name(g, step.node)}'", attrs=step.attrs,
            dtype=str(out_type.dtype), casts=_casts(g, step))

    def _static_scalars(self, kernel, step, in_shapes, out_shape) -> tuple:
        """The kernel's scalars, or, when they depend on symbolic sizes (TF's 'same' padding
        with strides), slots in the layout array that each call's sizes fill in."""
        try:
            scalars = tuple(kernel.scalars(step.attr_dict, in_shapes, out_shape))
            if not any(isinstance(v, Dim) for v in scalars):
                return scalars, ()
        except TypeError:
            pass
        probe = {name: 61 for name in _free_symbols(in_shapes)}
        sample = kernel.scalars(step.attr_dict, [_concrete(s, probe) for s in in_shapes],
                                _concrete(out_shape, probe))
        dynamic = []
        for value in sample:
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                dynamic.append(self._dynamic_slots)
                self._dynamic_slots += 1
            else:
                dynamic.append(("literal", value))
        return None, tuple(dynamic)

    # -- weights ----------------------------------------------------------------------------
    def _init_weights(self, store: WeightStore | None) -> None:
        """Weight keys per param node; values from the store (else the graph), then watch."""
        g = self.graph
        nodes = sorted({p for s in self._steps for p in s.params if p is not None})
        self._keys = {n: g.nodes[n]["key"] for n in nodes}
        self._derived = {n: g.nodes[n]["derived"] for n in nodes if "derived" in g.nodes[n]}
        self._values = {n: g.nodes[n]["value"] for n in nodes}
        self._store = store
        self._versions: dict = {}
        self._watched: list = []
        self._stale = False
        self._weights_lock = threading.Lock()
        if store is None:
            return
        watched = {k for n, k in self._keys.items() if n not in self._derived}
        watched.update(k for spec in self._derived.values() for k in spec.keys)
        self._watched = sorted(k for k in watched if k in store)
        for key in self._watched:
            store[key].watch(self)
        if all(v is not None and v.dtype == self.dtype for v in self._values.values()):
            # the graph's values were computed from the store at these versions (``compile``):
            # only weights changed since then are re-read (derived ones recomputed)
            compiled_at = g.graph.get("weight_versions", {})
            self._versions = {k: compiled_at[k] for k in self._watched if k in compiled_at}
        self._sync_weights()

    def weights_changed(self) -> None:
        """Called by a watched ``Variable`` after it changed: re-read weights on the next call."""
        self._stale = True

    def _sync_weights(self) -> None:
        """Re-read the weights whose versions moved (recomputing derived ones) and repack."""
        store = self._store
        with self._weights_lock:
            self._stale = False
            changed = set()
            for key in self._watched:
                version = store.version(key)
                if self._versions.get(key) != version:
                    self._versions[key] = version
                    changed.add(key)
            if not changed:
                return
            for node, key in self._keys.items():
                spec = self._derived.get(node)
                if spec is not None:
                    if changed.isdisjoint(spec.keys):
                        continue
                    value = derive(spec, store.value)
                elif key in changed:
                    value = store.value(key)
                else:
                    continue
                if value is None or value.shape != self._values[node].shape:
                    continue  # not (yet) a weight of this shape: keep the compiled one
                if value.dtype != self.dtype:
                    value = value.astype(self.dtype)
                self._values[node] = value
                self.graph.nodes[node]["value"] = value
            if self._generated is not None:
                self._wbuf = self._pack()

    def _weights(self, step: PlanStep) -> list[np.ndarray]:
        return [self._values[p] if p is not None else empty_param(self.dtype)
                for p in step.params]

    def _param_shapes(self, step: PlanStep) -> list:
        return [(p, self._values[p].shape) if p is not None else (None, (0,))
                for p in step.params]

    def _compile_forward(self, parallel: bool = False) -> Any:
        """Generate, load and compile the forward function (serial or parallel variant)."""
        gen = codegen.generate(self._steps, self._input_nodes, self._output_nodes,
                               set(self._output_roots), self._param_shapes, parallel)
        if gen is None:
            return None
        if self._generated is None:
            self._generated = gen  # both variants pack weights identically
            self._wbuf = self._pack()
        with compile_lock():
            forward = codegen.load(gen)
            forward.compile(tuple(numba.typeof(np.empty((0,) * len(t.shape), t.dtype))
                                  for t in self.signature.types)
                            + (numba.typeof(self._wbuf), numba.typeof(np.empty(1, np.int64))))
        return forward

    def _parallel_forward(self) -> Any:
        """The threaded variant, compiled the first time an input is large enough to need it."""
        with self._lock:
            if self._forward_parallel is None:
                self._forward_parallel = self._compile_forward(parallel=True)
        return self._forward_parallel

    def _compile_segments(self, parallel: bool) -> list:
        """Generate, load and compile one function per ``Segment`` (serial or threaded kernels);
        their weights share one buffer, each segment's after the previous one's."""
        parts, base = [], 0
        fresh = set(self._output_roots)
        for seg in self._program:
            if isinstance(seg, codegen.Segment):
                gen = codegen.generate(self._steps, self._input_nodes, self._output_nodes, fresh,
                                       self._param_shapes, parallel, seg, base)
                parts.append((seg, gen))
                base = gen.weight_elements
        if self._generated is None:
            self._generated = codegen.combine([gen for _, gen in parts])
            self._wbuf = self._pack()
        array = numba.typeof(np.empty(0, np.uint8))  # the byte-addressed arena
        kinds = {n: ((0,) * len(t.shape), t.dtype)
                 for n, t in zip(self._input_nodes, self.signature.types)}
        kinds.update((s.node, ((0,) * len(s.shape), s.dtype)) for s in self._steps)
        fns = []
        with compile_lock():
            for seg, gen in parts:
                fn = codegen.load(gen)
                fn.compile((array, numba.typeof(self._wbuf), numba.typeof(np.empty(1, np.int64)))
                           + tuple(numba.typeof(np.empty(*kinds[n])) for n in seg.reads))
                fns.append(fn)
        return fns

    def _segments_for(self, parallel: bool) -> list:
        fns = self._segment_fns.get(parallel)
        if fns is None:
            with self._lock:
                fns = self._segment_fns.get(parallel)
                if fns is None:
                    fns = self._segment_fns[parallel] = self._compile_segments(parallel)
        return fns

    def _pack(self) -> np.ndarray:
        return codegen.pack_weights(self._generated, self._values.__getitem__, self.dtype)

    # -- layout -----------------------------------------------------------------------------
    def layout(self, *inputs: Any) -> Layout:
        """The memory layout for inputs of these shapes (arena size vs the naive sum)."""
        arrays = [np.empty(np.shape(x), dt) if not hasattr(x, "shape") else x
                  for x, dt in zip(inputs, self._input_dtypes)]
        return self._layout_for(arrays)

    def _concrete_scalars(self, step: PlanStep, value_shapes: dict, out_shape: tuple) -> tuple:
        if step.scalars is not None:
            return step.scalars
        kernel = get_kernel(step.kernel)
        return tuple(kernel.scalars(dict(step.attrs),
                                    [value_shapes[n] for n in step.inputs], out_shape))

    def _layout_for(self, arrays: Sequence[np.ndarray]) -> Layout:
        key = arrays[0].shape if len(arrays) == 1 else tuple(a.shape for a in arrays)
        layout = self._layouts.get(key)
        if layout is not None:
            return layout
        bindings = self.signature.bind(arrays)
        shapes = tuple(concrete_shape(s.shape, bindings, s.where) for s in self._steps)
        sizes = self.memory.sizes(bindings)
        offsets_by_node, arena = assign_offsets(self.memory.buffers, sizes)
        offsets = np.array([offsets_by_node.get(s.node, -1) for s in self._steps], np.int64)
        value_shapes = {n: a.shape for n, a in zip(self._input_nodes, arrays)}
        value_shapes.update((s.node, shape) for s, shape in zip(self._steps, shapes))
        scalars = tuple(self._concrete_scalars(s, value_shapes, shape)
                        for s, shape in zip(self._steps, shapes))
        dynamic = [0] * self._dynamic_slots
        for step, values in zip(self._steps, scalars):
            for slot, value in zip(step.dynamic, values):
                if isinstance(slot, int):
                    dynamic[slot] = value
        array = np.array([arena, *offsets, *(d for shape in shapes for d in shape), *dynamic],
                         np.int64)
        parallel = any(not s.alias and s.parallel_fn is not s.fn and
                       int(np.prod(shape, dtype=np.int64)) >= PARALLEL_MIN_ELEMENTS
                       for s, shape in zip(self._steps, shapes))
        layout = Layout(shapes, offsets, array, arena, sum(sizes.values()), parallel, scalars,
                        self.dtype.itemsize)
        with self._layouts_lock:
            if len(self._layouts) > 256:
                self._layouts.clear()
            self._layouts[key] = layout
        return layout

    # -- running ----------------------------------------------------------------------------
    def __call__(self, *inputs: Any) -> Any:
        if self._tiers is not None and self._tiers.intercepts():
            return self._tiers(inputs)
        if self._forward is not None and len(inputs) == 1 and self._single_io:
            # Fast path (one input, one output, generated code): a few attribute reads, a dict
            # lookup and one jitted call; everything else is precomputed.
            x = inputs[0]
            if type(x) is not np.ndarray or x.dtype != self._input_dtype or \
                    not x.flags.c_contiguous:
                x = as_input_array(x, self._input_dtype, self.signature.names[0])
            layout = self._layouts.get(x.shape) or self._layout_for([x])
            if layout.parallel and machine_busy():
                layout = _serial(layout)
            if self._stale:
                self._sync_weights()
            forward = self._forward_parallel or self._parallel_forward() if layout.parallel \
                else self._forward
            out = forward(x, self._wbuf, layout.array)
            if self._plain_output:
                return out
            return out.copy()
        if len(inputs) != len(self._input_nodes):
            raise CompilerError(f"plan for model '{self.model_name}' takes "
                                f"{len(self._input_nodes)} input(s), received {len(inputs)}")
        arrays = [x if (type(x) is np.ndarray and x.dtype == dtype and x.flags.c_contiguous)
                  else as_input_array(x, dtype, name)
                  for x, name, dtype in zip(inputs, self.signature.names, self._input_dtypes)]
        key = arrays[0].shape if len(arrays) == 1 else tuple(a.shape for a in arrays)
        layout = self._layouts.get(key) or self._layout_for(arrays)
        if layout.parallel and machine_busy():
            layout = _serial(layout)
        if self._stale:
            self._sync_weights()
        if self._forward is not None:
            forward = self._parallel_forward() if layout.parallel else self._forward
            result = forward(*arrays, self._wbuf, layout.array)
            outs = [result] if len(self._output_nodes) == 1 else list(result)
        else:
            run = self._run_steps if self._program is None else self._run_segments
            if layout.parallel in self._steps_warm:
                outs = run(arrays, layout)
            else:
                if self._program is not None:
                    self._segments_for(layout.parallel)  # compiled outside the kernels' lock
                with reporting(f"model '{self.model_name}'"), compile_lock():
                    outs = run(arrays, layout)  # the first run compiles (or loads) the kernels
                self._steps_warm.add(layout.parallel)
        for i, copy in enumerate(self._copy_outputs):
            if copy:  # the output is (a view of) an input: never hand the caller's array back
                outs[i] = outs[i].copy()
        return outs[0] if len(outs) == 1 else outs

    def _bind(self, inputs: Sequence[Any]) -> tuple[list, Layout]:
        """Validated input arrays and their layout, weights synced: a call's preamble."""
        if len(inputs) != len(self._input_nodes):
            raise CompilerError(f"plan for model '{self.model_name}' takes "
                                f"{len(self._input_nodes)} input(s), received {len(inputs)}")
        arrays = [as_input_array(x, dtype, name)
                  for x, name, dtype in zip(inputs, self.signature.names, self._input_dtypes)]
        layout = self._layout_for(arrays)
        if layout.parallel and machine_busy():
            layout = _serial(layout)
        if self._stale:
            self._sync_weights()
        return arrays, layout

    def _fresh_run(self, arrays: Sequence[np.ndarray], layout: Layout) -> tuple[dict, np.ndarray]:
        """The values table and (byte-addressed) arena one run of the step executor fills."""
        values: dict[int, np.ndarray] = dict(zip(self._input_nodes, arrays))
        return values, np.empty(max(layout.arena_bytes, 1), np.uint8)

    def _param_names(self, step: PlanStep) -> tuple:
        return get_kernel(step.kernel).param_names

    def profile(self, *inputs: Any, repeat: int = 10) -> Any:
        """Per-step times on these inputs (``runtime.profile``): op, layer, output shape, median
        time, share and GFLOP/s; ``print(plan.profile(x))`` shows the table."""
        from .profile import profile_plan

        return profile_plan(self, inputs, repeat=repeat)

    def _run_steps(self, arrays: Sequence[np.ndarray], layout: Layout) -> list:
        """The kernel-by-kernel executor (same kernels, same layout, a Python loop)."""
        values, arena = self._fresh_run(arrays, layout)
        for index in range(len(self._steps)):
            self._run_step(index, values, arena, layout)
        return [values[n] for n in self._output_nodes]

    def _run_segments(self, arrays: Sequence[np.ndarray], layout: Layout) -> list:
        """Generated segments and the Python-level steps between them, over one arena."""
        values, arena = self._fresh_run(arrays, layout)
        fns = iter(self._segments_for(layout.parallel))
        for item in self._program:
            if type(item) is int:
                self._run_step(item, values, arena, layout)
                continue
            result = next(fns)(arena, self._wbuf, layout.array, *[values[n] for n in item.reads])
            if item.writes:
                values.update(zip(item.writes, result))
        return [values[n] for n in self._output_nodes]

    def _run_step(self, index: int, values: dict, arena: np.ndarray, layout: Layout) -> None:
        step, shape = self._steps[index], layout.step_shapes[index]
        if step.alias:
            values[step.node] = values[step.inputs[0]].reshape(shape)
            return
        if step.node in self._fresh:
            out = np.empty(shape, step.dtype)
        else:
            offset = layout.offsets[index]
            dtype = np.dtype(step.dtype)
            size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            out = arena[offset:offset + size].view(dtype).reshape(shape)
        fn = step.parallel_fn if layout.parallel else step.fn
        ins = [values[i] for i in step.inputs]
        if step.casts:
            ins = [x if c is None else x.astype(c) for x, c in zip(ins, step.casts)]
        fn(*ins, *self._weights(step), out, *layout.scalars[index])
        values[step.node] = out

    # -- pickling ---------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        """Plain data only: no jitted functions, locks, store or cached layouts."""
        state = dict(self.__dict__)
        for name in ("_forward", "_forward_parallel", "_generated", "_wbuf", "_lock",
                     "_weights_lock", "_layouts_lock", "_store", "_layouts", "_steps_warm",
                     "_stale", "_versions", "_watched", "_program", "_segment_fns", "_tiers",
                     "_tiered"):
            state.pop(name, None)
        state["_steps"] = [replace(s, fn=None, parallel_fn=None) for s in self._steps]
        graph = self.graph.copy()
        graph.graph.pop("weights", None)  # the model's store: a snapshot travels in _values
        for _, data in graph.nodes(data=True):
            if data["op"] == "param":  # values travel once, in _values; initializers not at all
                data.pop("value", None)
                data.pop("init", None)
        state["graph"] = graph
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for node, value in self._values.items():
            self.graph.nodes[node]["value"] = value
        self._steps = [replace(s, fn=k.fn, parallel_fn=k.parallel_fn or k.fn)
                       for s in self._steps for k in (get_kernel(s.kernel),)]
        self._lock = threading.Lock()
        self._layouts_lock = threading.Lock()
        self._weights_lock = threading.Lock()
        self._store, self._stale, self._versions, self._watched = None, False, {}, []
        self._layouts = {}
        self._reset_executors()
        codegen_wanted, self.executor = self.executor == "codegen", "steps"
        self.tier = getattr(self, "tier", "jit")
        self._start(codegen_wanted)

    # -- introspection ----------------------------------------------------------------------
    @property
    def ir(self) -> str:
        return dump(self.graph)

    @property
    def source(self) -> str | None:
        """The generated Python/numba source, when the codegen executor is in use."""
        return self._generated.source if self._generated is not None else None

    @property
    def output_dtypes(self) -> list[np.dtype]:
        """Each output's dtype (``bool`` for a comparison, an int for int arithmetic...)."""
        return [self.graph.nodes[o]["type"].dtype for o in self._output_nodes]

    @property
    def segments(self) -> tuple[int, int]:
        """``(generated functions, Python-level steps)`` per call: ``(1, 0)`` for a plan that
        compiled whole, ``(0, steps)`` on the step executor."""
        if self._forward is not None:
            return 1, 0
        if self._program is None:
            return 0, sum(not s.alias for s in self._steps)
        segs = sum(isinstance(item, codegen.Segment) for item in self._program)
        return segs, sum(type(i) is int and not self._steps[i].alias for i in self._program)

    def describe(self) -> str:
        """The passes that ran, with timings, then the final IR."""
        segs, steps = self.segments
        lines = [f"plan for model '{self.model_name}' (executor: {self.executor}; "
                 f"{segs} generated function(s), {steps} Python-level kernel call(s))",
                 tiers.describe(self),
                 "passes:"]
        lines += [f"  {r}" for r in self.report]
        transposes = sum(1 for _, op in self.graph.nodes(data="op") if op == "transpose")
        lines.append(f"transposes left: {transposes}")
        lines += ["IR:", *("  " + line for line in self.ir.splitlines())]
        return "\n".join(lines)

    def __repr__(self) -> str:
        sig = ", ".join(str(t) for t in self.signature.types)
        return (f"<Plan '{self.model_name}' ({sig}) steps={len(self._steps)} "
                f"executor={self.executor}>")

    def to_dot(self, path: str | None = None) -> str:
        """The final IR as Graphviz DOT text (``compiler.ir.to_dot``); ``path`` renders it."""
        from compiler.ir import to_dot

        return to_dot(self.graph, path=path)


def _check_params(g: nx.DiGraph, step, kernel, params: dict) -> None:
    """Every param the node reads is one the kernel takes, and every one it needs is there: a
    misspelled name would otherwise reach the kernel as an empty array."""
    unknown = sorted(set(params) - set(kernel.param_names))
    missing = [p for p in kernel.param_names if p not in params and p not in kernel.optional_params]
    if unknown or missing:
        optional = sorted(kernel.optional_params)
        raise CompilerError(
            f"layer '{layer_name(g, step.node)}': kernel '{kernel.name}' takes params "
            f"{list(kernel.param_names)} (optional: {optional}), the node reads "
            f"{sorted(params)}" + (f"; unknown: {unknown}" if unknown else "")
            + (f"; missing: {missing}" if missing else "") + f"\n  at {format_node(g, step.node)}")


def _casts(g: nx.DiGraph, step) -> tuple:
    """Per input, the dtype name it is converted to when read (``()``: none is)."""
    casts = tuple(None if c is None else str(c)
                  for c in input_conversions(g, step.node, step.inputs))
    return casts if any(c is not None for c in casts) else ()


def _free_symbols(shapes) -> set:
    return {name for shape in shapes for d in shape if isinstance(d, Dim)
            for name in d.free_symbols}


def _concrete(shape: tuple, bindings: dict) -> tuple:
    return tuple(d if isinstance(d, int) else d.evaluate(bindings) for d in shape)


def _first_consumer(g: nx.DiGraph, node: int) -> str:
    for succ in g.successors(node):
        if g.nodes[succ].get("origin") is not None:
            return layer_name(g, succ)
    return ""
