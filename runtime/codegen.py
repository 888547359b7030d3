"""Code generation: a schedule (or a run of its steps) becomes one numba function.

A plan whose kernels are all numba functions compiles to one ``forward``: one jitted call per run.
A plan with Python-level steps (launchers that choose an algorithm per call, e.g. convolutions)
compiles each maximal run of jitted steps into its own function, a *segment*, which writes into
the arena the plan allocates and hands back the values later steps read (see ``segments``).

The generated module is written to the cache directory (``runtime.cache``) under a name derived
from a hash of its source (which encodes the plan's structure: kernels, scalar arguments, ranks;
never weights) and
imported from there, so numba's ``cache=True`` can reuse the machine code in a later process.
Weights are passed as an argument (one packed buffer, sliced at offsets fixed in the code), never
as globals, which numba would freeze into the code as constants. The cache directory is already
keyed by the kernels' sources, so the module name needs to hash only the generated source.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from compiler.passes.plan_memory import ALIGN_ELEMENTS

from .cache import ensure_trusted, protect
from .kernels.registry import get_kernel

#: Plans with more steps than this run on the step executor (LLVM time grows with size).
MAX_CODEGEN_STEPS = 256
_CODEGEN_VERSION = "2"


@dataclass(frozen=True)
class GeneratedPlan:
    source: str
    key: str
    weight_slots: tuple  # (param node or None, offset, shape) per weight, in packing order
    weight_elements: int


def _is_jitted(fn: Any) -> bool:
    return isinstance(fn, numba.core.registry.CPUDispatcher)


def _literal(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if value != value or value in (np.inf, -np.inf):  # repr gives names numba cannot see
            return "np.nan" if value != value else ("np.inf" if value > 0 else "-np.inf")
        return repr(value)
    if isinstance(value, np.ndarray):
        kind = "np.int64" if value.dtype.kind in "iu" else "np.float64"
        return f"np.array([{', '.join(_literal(v) for v in value.tolist())}], dtype={kind})"
    if isinstance(value, tuple):
        return "(" + "".join(_literal(v) + ", " for v in value) + ")"
    raise TypeError(f"cannot emit scalar argument {value!r} into generated code")


def _argument(value: Any) -> str:
    """A kernel's scalar argument as typed (not literal) code: numba compiles a callee once per
    *literal* value it is called with (``zero_padding2d`` once per padding width), but once per
    type for ``np.int64(3)``."""
    if isinstance(value, (bool, np.bool_)):
        return f"np.bool_({bool(value)})"
    if isinstance(value, (int, np.integer)):
        return f"np.int64({int(value)})"
    return _literal(value)


def _np_dtype(name: str) -> str:
    """The NumPy dtype object's spelling in generated code (``np.float32``, ``np.bool_``)."""
    dt = np.dtype(name)
    return "np.bool_" if dt.kind == "b" else f"np.{dt.name}"


def _aligned(n: int) -> int:
    return -(-n // ALIGN_ELEMENTS) * ALIGN_ELEMENTS


def is_jitted_step(step: Any) -> bool:
    """Can generated code call this step (a reshape view, or a numba kernel in both variants)?"""
    if step.alias:
        return True
    kernel = get_kernel(step.kernel)
    return _is_jitted(kernel.fn) and _is_jitted(kernel.parallel_fn or kernel.fn)


@dataclass(frozen=True)
class Segment:
    """A maximal run of jitted steps ``[start, stop)``: the values it reads from earlier steps
    (or the plan's inputs) and the values it hands back (read later, or returned)."""

    start: int
    stop: int
    reads: tuple
    writes: tuple


def segments(steps: Sequence, input_nodes: Sequence[int], outputs: Sequence[int]) -> list:
    """The schedule as a program: ``Segment``s for runs of jitted steps that call at least one
    kernel, step indices (ints) for the Python-level steps in between."""
    program: list = []
    run: list = []

    def close() -> None:
        if any(not steps[i].alias for i in run):
            program.append(_segment(steps, run[0], run[-1] + 1, outputs))
        else:
            program.extend(run)
        run.clear()

    for index, step in enumerate(steps):
        if is_jitted_step(step):
            run.append(index)
        else:
            close()
            program.append(index)
    close()
    return program


def _segment(steps: Sequence, start: int, stop: int, outputs: Sequence[int]) -> Segment:
    inside = {s.node for s in steps[start:stop]}
    reads = dict.fromkeys(n for s in steps[start:stop] for n in s.inputs if n not in inside)
    later = {n for s in steps[stop:] for n in s.inputs} | set(outputs)
    writes = tuple(s.node for s in steps[start:stop] if s.node in later)
    return Segment(start, stop, tuple(reads), writes)


def _one_line(text: str) -> str:
    """User text (layer names) made safe for a source comment: a newline in a name would end
    the comment and leave the rest as code (found by the long fuzz profile)."""
    return text.encode("unicode_escape").decode("ascii")


def generate(steps: Sequence, input_nodes: Sequence[int], outputs: Sequence[int],
             fresh: Collection[int], param_shapes, parallel: bool = False,
             segment: Segment | None = None, weight_base: int = 0) -> GeneratedPlan | None:
    """Source of ``forward(inputs..., wbuf, layout) -> output(s)``.

    With ``segment``: ``forward(arena, wbuf, layout, reads...) -> (writes...,)`` for the steps
    ``segment.start:segment.stop`` only (indices into the layout stay those of the whole plan),
    its weights packed from ``weight_base`` on, so every segment slices one shared buffer.

    ``wbuf`` holds every weight, packed at offsets fixed here; ``layout`` (int64) holds the
    arena size in bytes, then each step's byte offset in it (the arena is ``uint8``, each value
    a view in its own dtype), then every step's shape, flattened (see
    ``Plan._layout_for``). Steps in ``fresh`` (the graph outputs' buffers) get new arrays, not
    arena space, as they are handed to the caller. ``param_shapes(step)`` gives
    ``(param node or None, shape)`` per weight the step's kernel takes. ``parallel`` selects the
    kernels' threaded variants. Returns ``None`` when a kernel cannot be called from numba.
    """
    if len(steps) > MAX_CODEGEN_STEPS:
        return None
    imports: dict = {}
    slots: list = []
    packed = weight_base
    dim_base = 1 + len(steps)
    scalar_base = dim_base + sum(len(step.shape) for step in steps)
    if segment is None:
        start, stop = 0, len(steps)
        body = ["    arena = np.empty(layout[0], np.uint8)"]
    else:
        start, stop = segment.start, segment.stop
        input_nodes, outputs = segment.reads, segment.writes
        dim_base += sum(len(step.shape) for step in steps[:start])
        body = []
    names = {n: f"i{k}" for k, n in enumerate(input_nodes)}
    for index in range(start, stop):
        step = steps[index]
        rank = len(step.shape)
        dims = [f"layout[{dim_base + a}]" for a in range(rank)]
        dim_base += rank
        shape = "(" + "".join(d + ", " for d in dims) + ")"
        var = names[step.node] = f"v{step.node}"
        body.append(f"    # {_one_line(step.where)}: {step.kernel}")
        if step.alias:
            body.append(f"    {var} = {names[step.inputs[0]]}.reshape({shape})")
            continue
        kernel = get_kernel(step.kernel)
        fn = (kernel.parallel_fn or kernel.fn) if parallel else kernel.fn
        if not _is_jitted(fn):
            return None
        dtype = _np_dtype(step.dtype)
        if step.node in fresh:
            body.append(f"    {var} = np.empty({shape}, {dtype})")
        else:  # a typed view of the byte-addressed arena
            size = " * ".join(dims + [str(np.dtype(step.dtype).itemsize)])
            body.append(f"    {var} = arena[layout[{1 + index}]:layout[{1 + index}] + {size}]"
                        f".view({dtype}).reshape({shape})")
        alias = imports.setdefault((fn.py_func.__module__, fn.py_func.__name__),
                                   f"k{len(imports)}")
        args = [names[n] if cast is None else f"{names[n]}.astype({_np_dtype(cast)})"
                for n, cast in zip(step.inputs, step.casts or (None,) * len(step.inputs))]
        for node, wshape in param_shapes(step):
            size = int(np.prod(wshape, dtype=np.int64))
            view = f"wbuf[{packed}:{packed + size}]"
            if len(wshape) != 1:
                view += ".reshape((" + "".join(f"{d}, " for d in wshape) + "))"
            args.append(view)
            slots.append((node, packed, tuple(wshape)))
            packed += _aligned(size)
        args.append(var)
        if step.scalars is not None:
            args += [_argument(v) for v in step.scalars]
        else:  # sizes-dependent scalars sit after the shapes in the layout array
            args += [f"layout[{scalar_base} + {slot}]" if isinstance(slot, int)
                     else _argument(slot[1]) for slot in step.dynamic]
        body.append(f"    {alias}({', '.join(args)})")
    results = [names[n] for n in outputs]
    if segment is None:
        body.append("    return " + (results[0] if len(results) == 1 else
                                     "(" + "".join(r + ", " for r in results) + ")"))
        params = [f"i{k}" for k in range(len(input_nodes))] + ["wbuf", "layout"]
    else:
        body.append("    return (" + "".join(r + ", " for r in results) + ")" if results
                    else "    return 0")
        params = ["arena", "wbuf", "layout"] + [f"i{k}" for k in range(len(input_nodes))]
    header = [f"# generated by deferc codegen v{_CODEGEN_VERSION}; do not edit",
              "import numpy as np", "from numba import njit"]
    header += [f"from {mod} import {name} as {alias}" for (mod, name), alias in imports.items()]
    source = "\n".join(header + ["", "", "@njit(cache=True, nogil=True)",
                                 f"def forward({', '.join(params)}):"] + body + [""])
    key = hashlib.sha256((source + sys.version).encode()).hexdigest()[:20]
    return GeneratedPlan(source, key, tuple(slots), packed)


def combine(parts: Sequence[GeneratedPlan]) -> GeneratedPlan:
    """The segments of one plan as one record: their sources, and every weight slot of the one
    buffer they share (each segment packed its weights after the previous one's)."""
    return GeneratedPlan("\n".join(p.source for p in parts), "+".join(p.key for p in parts),
                         tuple(slot for p in parts for slot in p.weight_slots),
                         max((p.weight_elements for p in parts), default=0))


def pack_weights(gen: GeneratedPlan, value_of, dtype) -> np.ndarray:
    """One buffer holding every weight the generated code reads (copies, at fixed offsets)."""
    wbuf = np.zeros(max(gen.weight_elements, 1), dtype)
    for node, offset, shape in gen.weight_slots:
        if node is not None:
            size = int(np.prod(shape, dtype=np.int64))
            wbuf[offset:offset + size] = value_of(node).reshape(-1)
    return wbuf


def _holds(path, source: str) -> bool:
    try:
        return path.read_text() == source
    except (OSError, UnicodeDecodeError):
        return False


def load(gen: GeneratedPlan) -> Any:
    """Write the module (atomically, unless it is there intact) into the cache directory and
    import ``forward``; a rewritten file has a new timestamp, so numba recompiles it."""
    directory = ensure_trusted()
    path = directory / f"plan_{gen.key}.py"
    if not _holds(path, gen.source):  # absent, or damaged since: write it (again)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(gen.source)
        os.replace(tmp, path)
    name = f"deferc_plan_{gen.key}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        protect(module.forward)
        sys.modules[name] = module
    return module.forward
