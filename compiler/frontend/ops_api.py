"""``compiler.ops``: Keras 3 ``keras.ops`` functions over symbolic tensors and NumPy arrays.

On NumPy arrays (and Python scalars) a function computes eagerly with the op's NumPy reference
and returns an array. When any operand is symbolic (a functional ``Input`` tensor, or a tensor a
traced ``call`` sees) it records an ``OpCall`` and returns a new symbolic tensor whose type the
op's shape rule inferred right away, so shape errors surface at the line that made them. Python
scalars become ``constant`` nodes, weakly typed as in NumPy (``x * 2`` keeps ``x``'s dtype).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..dtypes import computes_in_model_dtype, float_result
from ..errors import CompilerError, ShapeError
from ..ops import Unifier, get_op
from ..ops.primitives import result_dtype
from ..types import TensorType
from .functional import SymbolicTensor
from .tracing import OpCall, as_symbolic, is_symbolic

#: ops defined for the Keras layers whose shape rule demands one dtype: mixed operands are cast
_SAME_DTYPE_OPS = frozenset({"add", "subtract", "multiply", "maximum", "minimum", "concatenate"})

#: Keras name -> NumPy function, for the reused layer ops' eager path
_EAGER = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
          "maximum": np.maximum, "minimum": np.minimum}


def _is_scalar(x: Any) -> bool:
    return isinstance(x, (bool, int, float, np.bool_, np.integer, np.floating))


def _eager_value(x: Any) -> Any:
    if _is_scalar(x) and not isinstance(x, np.generic):
        return x  # Python scalars stay weak, as NumPy treats them
    value = getattr(x, "value", None) if hasattr(x, "numpy") else None
    if value is not None:  # a layer's weight used eagerly
        return value
    return np.asarray(x)


def apply(op: str, operands: Sequence[Any], attrs: dict | None = None,
          eager: Any = None) -> Any:
    """Run ``op`` eagerly on arrays, or record it on symbolic operands.

    Args:
        op: a registered op name.
        operands: tensors, arrays, layer weights or Python scalars, in the op's operand order.
        attrs: the op's attributes.
        eager: a NumPy function to use on arrays instead of the op's reference.
    """
    attrs = dict(attrs or {})
    if not any(is_symbolic(x) for x in operands):
        values = [_eager_value(x) for x in operands]
        if eager is not None:
            with np.errstate(all="ignore"):
                result = eager(*values)
        else:
            result = get_op(op).reference(
                [v if _is_scalar(v) else np.asarray(v) for v in values], {}, attrs)
        return _as_rule_dtype(op, values, attrs, result)
    tensors: list[SymbolicTensor] = []
    slots: list[Any] = []  # a tensor's index into ``tensors``, or ("const", value)
    for x in operands:
        if is_symbolic(x):
            slots.append(len(tensors))
            tensors.append(as_symbolic(x))
        elif _is_scalar(x) or isinstance(x, (np.ndarray, list, tuple)):
            slots.append(("const", np.asarray(x) if not _is_scalar(x) else x))
        else:
            raise CompilerError(f"ops.{op}: cannot use a {type(x).__name__} as an operand")
    dtypes = [t.dtype for t in tensors]
    common = result_dtype(dtypes + [s[1] for s in slots if isinstance(s, tuple)
                                    and _is_scalar(s[1])])
    constants = []
    types = []
    for pos, slot in enumerate(slots):
        if isinstance(slot, tuple):
            value = slot[1]
            dtype = common if _is_scalar(value) else value.dtype
            constants.append((pos, np.asarray(value, dtype=dtype)))
            types.append(TensorType(tuple(np.shape(value)), np.dtype(dtype)))
        else:
            types.append(tensors[slot].type)
    if op in _SAME_DTYPE_OPS and len({t.dtype for t in types}) > 1:
        return apply(op, [cast(x, common) if is_symbolic(x) and as_symbolic(x).dtype != common
                          else x for x in operands], attrs)
    opdef = get_op(op)
    try:
        out = opdef.shape_rule(types, {}, attrs, Unifier())
    except ShapeError as e:
        raise ShapeError(f"ops.{op}: {e}") from None
    if computes_in_model_dtype(op, opdef):  # a layer op: int operands are converted to float
        out = TensorType(out.shape, float_result(out.dtype))
    return SymbolicTensor(out, OpCall(op, attrs, tuple(constants)), tensors)


def _as_rule_dtype(op: str, values: Sequence[Any], attrs: dict, result: Any) -> Any:
    """An eager result in the dtype the compiled op gives (Keras promotion, ``compiler.dtypes``;
    NumPy's own differs: ``int64 + float32`` is ``float64`` there), so eager and compiled agree."""
    arrays = [v for v in values if not _is_scalar(v)]
    if not arrays or not isinstance(result, np.ndarray):
        return result
    common = result_dtype([a.dtype for a in arrays] + [v for v in values if _is_scalar(v)])
    opdef = get_op(op)
    if computes_in_model_dtype(op, opdef):  # a layer op: computes in a float dtype
        dtype = float_result(common)
    else:
        same = op in _SAME_DTYPE_OPS  # their operands are cast to the common dtype first
        types = [TensorType(tuple(np.shape(v)), common if same or _is_scalar(v)
                            else np.asarray(v).dtype) for v in values]
        try:
            dtype = opdef.shape_rule(types, {}, attrs, Unifier()).dtype
        except CompilerError:
            return result
    return result if result.dtype == dtype else result.astype(dtype)


# -- element-wise -------------------------------------------------------------------------------
def add(x1: Any, x2: Any) -> Any:
    return apply("add", [x1, x2], eager=np.add)


def subtract(x1: Any, x2: Any) -> Any:
    return apply("subtract", [x1, x2], eager=np.subtract)


def multiply(x1: Any, x2: Any) -> Any:
    return apply("multiply", [x1, x2], eager=np.multiply)


def maximum(x1: Any, x2: Any) -> Any:
    return apply("maximum", [x1, x2], eager=np.maximum)


def minimum(x1: Any, x2: Any) -> Any:
    return apply("minimum", [x1, x2], eager=np.minimum)


def divide(x1: Any, x2: Any) -> Any:
    return apply("divide", [x1, x2])


def power(x1: Any, x2: Any) -> Any:
    return apply("power", [x1, x2])


def floor_divide(x1: Any, x2: Any) -> Any:
    """``x1 // x2`` rounded toward minus infinity (NumPy's ``floor_divide``); integer division
    by zero gives 0 as in NumPy, float division by zero ``inf``/``nan``."""
    return apply("floor_divide", [x1, x2])


def mod(x1: Any, x2: Any) -> Any:
    """``x1 % x2`` with the divisor's sign (NumPy's ``remainder``); 0 for an integer zero
    divisor, ``nan`` for a float one."""
    return apply("mod", [x1, x2])


def _unary(name: str):
    def fn(x: Any) -> Any:
        return apply(name, [x])
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Element-wise ``{name}`` (NumPy semantics)."
    return fn


negative = _unary("negative")
abs = _unary("abs")  # noqa: A001 - Keras' name
exp = _unary("exp")
log = _unary("log")
sqrt = _unary("sqrt")
erf = _unary("erf")
logical_not = _unary("logical_not")


def _activation(name: str):
    def fn(x: Any) -> Any:
        return apply("activation", [x], {"activation": name})
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"The ``{name}`` activation, element-wise (the same op ``Activation`` uses)."
    return fn


relu = _activation("relu")
tanh = _activation("tanh")
sigmoid = _activation("sigmoid")
gelu = _activation("gelu")


def _binary(name: str):
    def fn(x1: Any, x2: Any) -> Any:
        return apply(name, [x1, x2])
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Element-wise ``{name}``, broadcast NumPy-style."
    return fn


equal = _binary("equal")
not_equal = _binary("not_equal")
greater = _binary("greater")
greater_equal = _binary("greater_equal")
less = _binary("less")
less_equal = _binary("less_equal")
logical_and = _binary("logical_and")
logical_or = _binary("logical_or")


def where(condition: Any, x1: Any, x2: Any) -> Any:
    return apply("where", [condition, x1, x2])


def cast(x: Any, dtype: Any) -> Any:
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise CompilerError(f"ops.cast: unsupported dtype {dtype}")
    return apply("cast", [x], {"dtype": dtype.name})


def zeros_like(x: Any) -> Any:
    return apply("zeros_like", [x])


def ones_like(x: Any) -> Any:
    return apply("ones_like", [x])


# -- linear algebra and rearranging -------------------------------------------------------------
def matmul(x1: Any, x2: Any) -> Any:
    return apply("matmul", [x1, x2])


def transpose(x: Any, axes: Sequence[int] | None = None) -> Any:
    return apply("transpose", [x], {"axes": None if axes is None else tuple(int(a) for a in axes)})


def reshape(x: Any, newshape: Any) -> Any:
    if isinstance(newshape, (int, np.integer)):
        newshape = (newshape,)
    target = tuple(int(d) for d in newshape)
    if builtins.sum(1 for d in target if d == -1) > 1 or builtins.any(
            d < -1 for d in target):
        raise CompilerError(f"ops.reshape: newshape may hold one -1 and sizes >= 0, received "
                            f"{tuple(newshape)}")
    return apply("reshape_array", [x], {"shape": target})


def expand_dims(x: Any, axis: int) -> Any:
    return apply("expand_dims", [x], {"axis": int(axis)})


def squeeze(x: Any, axis: Any = None) -> Any:
    return apply("squeeze", [x], {"axis": axis if axis is None or isinstance(axis, int)
                                  else tuple(axis)})


def concatenate(xs: Sequence[Any], axis: int = 0) -> Any:
    """Keras' default ``axis=0``."""
    xs = list(xs)
    if not builtins.any(is_symbolic(x) for x in xs):
        return np.concatenate([_eager_value(x) for x in xs], axis=axis)
    return apply("concatenate", xs, {"axis": int(axis)})


def stack(xs: Sequence[Any], axis: int = 0) -> Any:
    return apply("stack", list(xs), {"axis": int(axis)})


def slice(x: Any, start_indices: Sequence[int], shape: Sequence[int]) -> Any:  # noqa: A001
    return apply("slice", [x], {"start": tuple(int(i) for i in start_indices),
                                "shape": tuple(int(s) for s in shape)})


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """NumPy ``split``: ``n`` equal sections, or the indices to split at; a list of slices."""
    if not is_symbolic(x):
        return np.split(_eager_value(x), indices_or_sections, axis=axis)
    t = as_symbolic(x)
    if t.shape is None:
        raise ShapeError("ops.split: the input's rank must be known")
    rank = len(t.shape)
    ax = axis % rank if -rank <= axis < rank else None
    if ax is None:
        raise ShapeError(f"ops.split: axis {axis} is out of range for rank {rank}")
    size = t.shape[ax]
    if isinstance(indices_or_sections, (int, np.integer)):
        n = int(indices_or_sections)
        if not isinstance(size, int):
            raise ShapeError(f"ops.split: cannot split axis {ax} of size {size} (known only at "
                             f"run time) into {n} sections; give the split indices")
        if n <= 0 or size % n:
            raise ShapeError(f"ops.split: axis {ax} of size {size} does not split into {n} "
                             f"equal sections")
        bounds = [i * (size // n) for i in range(n + 1)]
    else:
        bounds = [0, *(int(i) for i in indices_or_sections), size]
    parts = []
    for lo, hi in zip(bounds, bounds[1:]):
        start = [0] * rank
        shape = [-1] * rank
        start[ax] = lo
        if hi is not size:
            shape[ax] = builtins.max(int(hi) - lo, 0)
        parts.append(slice(x, start, shape))
    return parts


def take(x: Any, indices: Any, axis: int | None = None) -> Any:
    return apply("take", [x, indices], {"axis": None if axis is None else int(axis)})


def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: float = 0) -> Any:
    if mode != "constant":
        raise CompilerError(f"ops.pad: only mode='constant' is supported, received {mode!r}")
    rank = np.ndim(x) if not is_symbolic(x) else as_symbolic(x).type.rank
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (rank, 2))
    if (widths < 0).any():
        raise CompilerError(f"ops.pad: pad widths must be >= 0, received {pad_width!r}")
    return apply("pad", [x], {"pad_width": tuple((int(a), int(b)) for a, b in widths),
                              "constant_values": float(constant_values)})


# -- reductions ---------------------------------------------------------------------------------
def _axis_attr(axis: Any) -> Any:
    if axis is None:
        return None
    if isinstance(axis, (int, np.integer)):
        return int(axis)
    return tuple(int(a) for a in axis)


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    return apply("sum", [x], {"axis": _axis_attr(axis), "keepdims": bool(keepdims)})


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return apply("mean", [x], {"axis": _axis_attr(axis), "keepdims": bool(keepdims)})


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    return apply("max", [x], {"axis": _axis_attr(axis), "keepdims": bool(keepdims)})


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    return apply("min", [x], {"axis": _axis_attr(axis), "keepdims": bool(keepdims)})


def softmax(x: Any, axis: int = -1) -> Any:
    return apply("softmax", [x], {"axis": int(axis)})


def log_softmax(x: Any, axis: int = -1) -> Any:
    return apply("log_softmax", [x], {"axis": int(axis)})


__all__ = ["abs", "add", "cast", "concatenate", "divide", "equal", "erf", "exp", "expand_dims",
           "floor_divide", "gelu", "greater", "greater_equal", "less", "less_equal", "log",
           "log_softmax", "logical_and", "logical_not", "logical_or", "matmul", "max", "maximum",
           "mean", "min", "minimum", "mod", "multiply", "negative", "not_equal", "ones_like", "pad",
           "power", "relu", "reshape", "sigmoid", "slice", "softmax", "split", "sqrt", "squeeze",
           "stack", "subtract", "sum", "take", "tanh", "transpose", "where", "zeros_like"]
