"""Whole-plan code generation: the schedule becomes one numba function, one jitted call per run.

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
_CODEGEN_VERSION = "1"


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
        return repr(float(value))
    if isinstance(value, np.ndarray):
        kind = "np.int64" if value.dtype.kind in "iu" else "np.float64"
        return f"np.array([{', '.join(_literal(v) for v in value.tolist())}], dtype={kind})"
    if isinstance(value, tuple):
        return "(" + "".join(_literal(v) + ", " for v in value) + ")"
    raise TypeError(f"cannot emit scalar argument {value!r} into generated code")


def _aligned(n: int) -> int:
    return -(-n // ALIGN_ELEMENTS) * ALIGN_ELEMENTS


def generate(steps: Sequence, input_nodes: Sequence[int], outputs: Sequence[int],
             fresh: Collection[int], param_shapes, parallel: bool = False
             ) -> GeneratedPlan | None:
    """Source of ``forward(inputs..., wbuf, layout) -> output(s)``.

    ``wbuf`` holds every weight, packed at offsets fixed here; ``layout`` (int64) holds the
    arena size, then each step's arena offset, then every step's shape, flattened (see
    ``Plan._layout_for``). Steps in ``fresh`` (the graph outputs' buffers) get new arrays, not
    arena space, as they are handed to the caller. ``param_shapes(step)`` gives
    ``(param node or None, shape)`` per weight the step's kernel takes. ``parallel`` selects the
    kernels' threaded variants. Returns ``None`` when a kernel cannot be called from numba.
    """
    if len(steps) > MAX_CODEGEN_STEPS:
        return None
    imports: dict = {}
    slots: list = []
    packed = 0
    names = {n: f"i{k}" for k, n in enumerate(input_nodes)}
    body = ["    arena = np.empty(layout[0], wbuf.dtype)"]
    dim_base = 1 + len(steps)
    scalar_base = dim_base + sum(len(step.shape) for step in steps)
    for index, step in enumerate(steps):
        rank = len(step.shape)
        dims = [f"layout[{dim_base + a}]" for a in range(rank)]
        dim_base += rank
        shape = "(" + "".join(d + ", " for d in dims) + ")"
        var = names[step.node] = f"v{step.node}"
        body.append(f"    # {step.where}: {step.kernel}")
        if step.alias:
            body.append(f"    {var} = {names[step.inputs[0]]}.reshape({shape})")
            continue
        kernel = get_kernel(step.kernel)
        fn = (kernel.parallel_fn or kernel.fn) if parallel else kernel.fn
        if not _is_jitted(fn):
            return None
        if step.node in fresh:
            body.append(f"    {var} = np.empty({shape}, wbuf.dtype)")
        else:
            size = " * ".join(dims) or "1"
            body.append(f"    {var} = arena[layout[{1 + index}]:layout[{1 + index}] + {size}]"
                        f".reshape({shape})")
        alias = imports.setdefault((fn.py_func.__module__, fn.py_func.__name__),
                                   f"k{len(imports)}")
        args = [names[n] for n in step.inputs]
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
            args += [_literal(v) for v in step.scalars]
        else:  # sizes-dependent scalars sit after the shapes in the layout array
            args += [f"layout[{scalar_base} + {slot}]" if isinstance(slot, int)
                     else _literal(slot[1]) for slot in step.dynamic]
        body.append(f"    {alias}({', '.join(args)})")
    results = [names[n] for n in outputs]
    body.append("    return " + (results[0] if len(results) == 1 else
                                 "(" + "".join(r + ", " for r in results) + ")"))
    params = [f"i{k}" for k in range(len(input_nodes))] + ["wbuf", "layout"]
    header = [f"# generated by deferc codegen v{_CODEGEN_VERSION}; do not edit",
              "import numpy as np", "from numba import njit"]
    header += [f"from {mod} import {name} as {alias}" for (mod, name), alias in imports.items()]
    source = "\n".join(header + ["", "", "@njit(cache=True, nogil=True)",
                                 f"def forward({', '.join(params)}):"] + body + [""])
    key = hashlib.sha256((source + sys.version).encode()).hexdigest()[:20]
    return GeneratedPlan(source, key, tuple(slots), packed)


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
