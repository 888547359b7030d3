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

        for info in pkgutil.iter_modules(kernels.__path__):
            if info.name not in ("registry", "flags"):
                importlib.import_module(f"{kernels.__name__}.{info.name}")
        _loaded = True
