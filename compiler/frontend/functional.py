"""Functional graphs: ``Input``, layers called on symbolic tensors, ``Model(inputs, outputs)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..dtypes import DEFAULT_FLOAT, computes_in_model_dtype, is_float, value_dtype
from ..errors import CompilerError, ShapeError
from ..ops import Unifier, get_op
from ..ops.registry import check_arity
from ..symbolic import format_shape
from ..types import TensorSpec, TensorType, as_model_dtype
from .operators import SymbolicValueGuard


class SymbolicTensor(SymbolicValueGuard):
    """A value in a functional graph: where it comes from, and its type as far as known.

    Python operators build ``compiler.ops`` calls (``x + 1``, ``a @ b``); Python control flow on
    its value raises (``operators.py``).
    """

    def __init__(self, type: TensorType, layer: Any = None,
                 inputs: Sequence[SymbolicTensor] = (), spec: TensorSpec | None = None):
        self.type, self.layer, self.inputs, self.spec = type, layer, tuple(inputs), spec

    @property
    def shape(self) -> tuple | None:
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    def __repr__(self) -> str:
        src = f"from {getattr(self.layer, 'name', 'a weight')}" if self.layer is not None \
            else "input"
        return f"<SymbolicTensor {self.type} {src}>"


def Input(shape: Sequence, dtype: Any = None, name: str | None = None,
          batch_size: int | None = None) -> SymbolicTensor:
    """Keras ``Input(shape)``: ``shape`` excludes the batch axis; ``None`` entries are symbolic."""
    if isinstance(shape, int):
        shape = (shape,)
    if shape is None or not isinstance(shape, (tuple, list)):
        raise CompilerError(f"Input: shape must be a tuple excluding the batch axis, received "
                            f"{shape!r}")
    for axis, d in enumerate(shape, start=1):
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d <= 0):
            raise CompilerError(f"Input: axis {axis} must be a positive int or None, "
                                f"received {d!r}")
    spec = TensorSpec((batch_size,) + tuple(shape), dtype, name)
    if dtype is not None:
        value_dtype(dtype, np.dtype(np.float32), "Input")  # a DTypeError for a dtype NumPy refuses
    # float16 has no kernels: it is computed in float32; int/bool inputs keep their dtype
    wide_float = dtype is not None and is_float(dtype) and np.dtype(dtype).itemsize >= 4
    model_dtype = as_model_dtype(dtype if wide_float else None)
    return SymbolicTensor(spec.to_type(model_dtype), spec=spec)


def call_layer_symbolically(layer: Any, inputs: Sequence[Any]) -> SymbolicTensor:
    """Record ``layer(*inputs)`` and infer its output type right away (errors surface here)."""
    if not all(isinstance(x, SymbolicTensor) for x in inputs):
        raise CompilerError(f"layer '{layer.name}': mix of symbolic tensors and arrays in a call")
    if getattr(layer, "_traced", False):  # a custom layer: its call is traced
        from .tracing import trace_symbolic

        return trace_symbolic(layer, inputs)
    op = get_op(layer.op)
    types = [x.type for x in inputs]
    attrs = layer.op_attrs()
    check_arity(lambda: f"layer '{layer.name}' ({type(layer).__name__})", op.arity(attrs),
                len(types))
    unify = Unifier()
    # a layer computing in the model dtype reads its operands converted (compiler.dtypes)
    computes_float = computes_in_model_dtype(layer.op, op)
    if computes_float:
        float_dtype = next((t.dtype for t in types if is_float(t.dtype)), DEFAULT_FLOAT)
        types = [TensorType(t.shape, float_dtype) for t in types]
    params = {p: TensorType(s, types[0].dtype) for p, s in op.param_shapes(types, attrs).items()}
    for p, shape in layer.param_shapes.items():
        if p in params:
            try:
                params[p] = params[p].with_shape(unify.shapes(shape, params[p].shape, p))
            except ShapeError as e:
                raise ShapeError(
                    f"layer '{layer.name}' ({type(layer).__name__}) already has {p} "
                    f"{format_shape(shape)}, which does not fit this call's input "
                    f"{format_shape(types[0].shape)}: {e}") from None
    try:
        out = op.shape_rule(types, params, attrs, unify)
    except ShapeError as e:
        raise ShapeError(f"layer '{layer.name}' ({type(layer).__name__}): {e}") from None
    return SymbolicTensor(out, layer, inputs)
