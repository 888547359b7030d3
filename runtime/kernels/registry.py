"""The kernel table: op kernel name -> jitted function and how to derive its scalar arguments.

Every kernel has the calling convention ``fn(*inputs, *params, out, *scalars)`` and writes into
``out``; the step executor and generated code both call it that way, so a kernel is written once.

Dtype contract (``compiler/dtypes.py``): each input arrives in its IR value's dtype (float32,
float64, int32, int64 or bool; several may differ in one call, e.g. ``take(float32 table, int32
ids)`` or ``where(bool, int32, float32)``), except that a layer op's non-float inputs are
converted to the model dtype before the call; params are in the model dtype; ``out`` is a
C-contiguous array (often a view of the byte arena) in the node's dtype, which the op's shape
rule gave. A kernel computes as NumPy would on those dtypes and stores into ``out``'s dtype (a
comparison stores ``True``/``False`` into a bool ``out``). Numba compiles one specialization per
dtype combination, so a kernel must not hard-code ``np.float32`` temporaries for its inputs. An
index kernel (``take``) must raise ``IndexError`` for an index outside ``[-size, size)`` — never
wrap or read out of bounds — with the message of ``compiler/ops/primitives.py::_take_ref``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cache import protect_module

#: ``scalars(attrs, input_shapes, out_shape) -> tuple`` of plain ints/floats for the kernel.
Scalars = Callable[[Mapping[str, Any], Sequence[tuple], tuple], tuple]


@dataclass(frozen=True)
class Kernel:
    name: str
    fn: Callable
    scalars: Scalars
    #: params the kernel takes, in order (missing optional ones are passed as empty arrays)
    param_names: tuple = ()
    #: which of ``param_names`` a node may omit (no bias); any other missing name is an error
    optional_params: frozenset = frozenset()
    #: same convention, spreads large work over threads; ``fn`` must never start threads, so
    #: plans that only see small inputs never pay for compiling a parallel region
    parallel_fn: Callable | None = None


_KERNELS: dict[str, Kernel] = {}


def register_kernel(kernel: Kernel) -> Kernel:
    """Add a kernel to the table; its module's (and helper modules') numba functions load and
    save their on-disk cache under the cache lock from here on (see ``runtime.cache``)."""
    if kernel.name in _KERNELS:
        raise ValueError(f"kernel {kernel.name!r} registered twice")
    for name, module in list(sys.modules.items()):
        if name.startswith(__package__ + ".") and module is not None:
            protect_module(module)
    _KERNELS[kernel.name] = kernel
    return kernel


def get_kernel(name: str) -> Kernel:
    kernel = _KERNELS.get(name)
    if kernel is None and _load_from_index(name):
        kernel = _KERNELS.get(name)
    if kernel is not None:
        return kernel
    _load_all()
    try:
        return _KERNELS[name]
    except KeyError:
        raise KeyError(f"no runtime kernel named {name!r}; have {sorted(_KERNELS)}") from None


def all_kernels() -> dict[str, Kernel]:
    _load_all()
    return dict(_KERNELS)


def empty_param(dtype) -> np.ndarray:
    """Stand-in for an absent optional parameter (e.g. no bias), so signatures stay fixed."""
    return np.zeros(0, dtype=dtype)


_loaded = False
_load_lock = threading.RLock()
#: ``kernels.json`` in the cache directory: kernel name -> the module that registers it
INDEX = "kernels.json"
_index: dict | None = None


def _load_all() -> None:
    # The flag is set only once every module is imported: a thread arriving meanwhile waits on
    # the lock instead of seeing a half-filled table (first calls from several threads at once).
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        import importlib
        import pkgutil

        from .. import kernels

        index = {}
        for info in pkgutil.iter_modules(kernels.__path__):
            if info.name not in ("registry", "flags"):
                module = f"{kernels.__name__}.{info.name}"
                before = set(_KERNELS)
                importlib.import_module(module)
                index.update((name, module) for name in set(_KERNELS) - before)
        _loaded = True
    _save_index(index)  # outside our lock: it takes the cache lock, which may be held first


def _load_from_index(name: str) -> bool:
    """Import only the module that registers ``name``, as a previous process recorded it.

    Importing every kernel module (and creating each numba dispatcher) took ~0.7 s of a warm
    ResNet-18 start that needs a handful of them. The index lives in the cache directory, which is
    named by a digest of every kernel source, so an edited kernel file never meets a stale
    index; a name it does not know (or a module that no longer registers it) means the full
    import. ``False``: not found that way.
    """
    global _index
    with _load_lock:
        if _index is None:
            _index = _read_index()
        module = _index.get(name)
        if module is None:
            return False
        import importlib

        try:
            importlib.import_module(module)
        except ImportError:
            return False
        return name in _KERNELS


def _read_index() -> dict:
    from ..cache import cache_dir

    try:
        index = json.loads((cache_dir() / INDEX).read_text())
    except (OSError, ValueError):
        return {}
    prefix = __package__ + "."
    if not isinstance(index, dict) or not all(
            isinstance(m, str) and m.startswith(prefix) for m in index.values()):
        return {}  # only ever import our own kernel modules, whatever the file says
    return index


def _save_index(index: dict) -> None:
    """Best effort: a read-only or missing cache directory only costs the next process time."""
    global _index
    _index = index
    from ..cache import cache_dir, ensure_trusted, try_compile_lock, write_atomically

    try:
        # never waits: a background compilation may hold the lock for minutes, and a plan
        # being built must not wait for it just to save this file
        with try_compile_lock() as held:
            if held:
                ensure_trusted()  # creates the directory; never writes into another's
                write_atomically(cache_dir() / INDEX, json.dumps(index, indent=0,
                                                                 sort_keys=True))
    except OSError:
        pass
