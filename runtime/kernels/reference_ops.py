"""The generic kernel: ops without a numba kernel of their own run their NumPy reference.

Every op whose kernel name starts with ``numpy:`` (``compiler/ops/primitives.py``) is served by
a launcher that calls ``OpDef.reference`` and writes the result into ``out``, so such an op
compiles and runs correctly — a plan containing one runs kernel by kernel (the step executor)
instead of as one generated function. Inputs arrive in their IR dtypes; the reference computes
with NumPy and the result is stored into ``out``, which has the node's dtype (a bool mask stays
bool, ``take`` of a float32 table by int ids stays float32). ``take``'s reference checks index
bounds and raises ``IndexError`` (never an out-of-bounds read).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from compiler.ops import get_op, registered_ops

from .registry import Kernel, register_kernel

PREFIX = "numpy:"


def _attrs(attrs: Mapping, input_shapes: Sequence[tuple], out_shape: tuple) -> tuple:
    return (dict(attrs),)


def _launcher(op_name: str, n_params: int):
    reference = get_op(op_name).reference

    def launch(*args):
        *rest, out, attrs = args
        inputs, params = rest[:len(rest) - n_params], rest[len(rest) - n_params:]
        with np.errstate(all="ignore"):
            result = reference(list(inputs), dict(zip(("value",), params)), attrs)
        out[...] = result
    launch.__name__ = launch.__qualname__ = f"reference_{op_name}"
    return launch


for _name, _op in sorted(registered_ops().items()):
    if _op.kernel.startswith(PREFIX):
        _params = ("value",) if _op.param_spec is not None else ()
        register_kernel(Kernel(name=_op.kernel, fn=_launcher(_name, len(_params)),
                               scalars=_attrs, param_names=_params))
