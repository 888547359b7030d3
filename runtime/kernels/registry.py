"""The kernel table: op kernel name -> jitted function and how to derive its scalar arguments.

Every kernel has the calling convention ``fn(*inputs, *params, out, *scalars)`` and writes into
``out``; the step executor and generated code both call it that way, so a kernel is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

#: ``scalars(attrs, input_shapes, out_shape) -> tuple`` of plain ints/floats for the kernel.
Scalars = Callable[[Mapping[str, Any], Sequence[tuple], tuple], tuple]


@dataclass(frozen=True)
class Kernel:
    name: str
    fn: Callable
    scalars: Scalars
    #: params the kernel takes, in order (missing optional ones are passed as empty arrays)
    param_names: tuple = ()
    #: a kernel that can be skipped by aliasing its output to its first input
    alias_input: bool = False


_KERNELS: dict[str, Kernel] = {}


def register_kernel(kernel: Kernel) -> Kernel:
    if kernel.name in _KERNELS:
        raise ValueError(f"kernel {kernel.name!r} registered twice")
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


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import pkgutil

    from .. import kernels

    for info in pkgutil.iter_modules(kernels.__path__):
        if info.name not in ("registry", "flags"):
            importlib.import_module(f"{kernels.__name__}.{info.name}")
