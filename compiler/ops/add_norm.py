"""``add_layer_norm``: ``LayerNormalization(a + b)`` as one op, what a post-norm Transformer
block does twice (``LayerNorm(x + attention)``, ``LayerNorm(h + ffn)``).

Made only by the ``fuse_add_norm`` pass from an ``add`` of two same-shape values read by
nothing but a ``layer_norm``; a layer never emits it. The sum is rounded to the model dtype
before the statistics, exactly as the two separate ops do, so fusing changes no result.
Attrs and params are ``layer_norm``'s (``epsilon``; ``gamma``/``beta`` over the last axis).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..symbolic import format_shape
from .normalization import _norm_shape_rule, layer_norm_param_spec, layer_norm_reference
from .registry import REDUCTION, OpDef, register

_norm_rule = _norm_shape_rule("LayerNormalization")


def add_layer_norm_shape_rule(inputs, params, attrs, unify):
    a, b = inputs
    if a.shape is not None and b.shape is not None:
        if len(a.shape) != len(b.shape):
            raise ShapeError(f"add_layer_norm: operands {format_shape(a.shape)} and "
                             f"{format_shape(b.shape)} differ in rank")
        for axis, (da, db) in enumerate(zip(a.shape, b.shape)):
            unify.dims(da, db, f"add_layer_norm: operand axis {axis}")
    return _norm_rule([a], params, attrs, unify)


def add_layer_norm_reference(inputs, params, attrs) -> np.ndarray:
    a, b = inputs
    with np.errstate(over="ignore", invalid="ignore"):
        total = (a + b).astype(a.dtype)
    return layer_norm_reference([total], params, attrs)


register(OpDef(
    name="add_layer_norm",
    shape_rule=add_layer_norm_shape_rule,
    param_spec=lambda inputs, attrs: layer_norm_param_spec(inputs[:1], attrs),
    reference=add_layer_norm_reference,
    kernel="add_layer_norm",
    num_inputs=2,
    natural_input_rank=3,
    traits=frozenset({REDUCTION}),
    doc="LayerNormalization of a same-shape sum (a residual add folded into the norm).",
))
