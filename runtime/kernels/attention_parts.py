"""``weight_value``'s kernel: copy one of the layer's weights (by role) into the output.

A plain Python launcher (a copy needs no jitted code); the params arrive in ``ROLES`` order,
the absent ones as empty arrays, and ``attrs["role"]`` says which one the node reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from compiler.ops.attention_parts import WEIGHT_ROLES

from .registry import Kernel, register_kernel


def _attrs(attrs: Mapping, input_shapes: Sequence[tuple], out_shape: tuple) -> tuple:
    return (WEIGHT_ROLES.index(attrs["role"]),)


def weight_value(*args) -> None:
    *rest, out, index = args
    out[...] = np.asarray(rest[1 + index]).reshape(out.shape)  # rest[0]: the ordering operand


register_kernel(Kernel(name="weight_value", fn=weight_value, scalars=_attrs,
                       param_names=WEIGHT_ROLES, optional_params=frozenset(WEIGHT_ROLES)))
