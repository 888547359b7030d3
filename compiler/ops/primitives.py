"""Primitive ops behind ``compiler.ops`` (Keras 3 ``keras.ops`` names), one ``OpDef`` each.

Element-wise ops broadcast NumPy-style over symbolic dims (``compiler.broadcast``). Dtypes: every
IR value's ``TensorType.dtype`` is the dtype it is computed and stored in (``compiler.dtypes``:
Keras-style promotion, comparisons and logical ops give ``bool``, ``cast`` gives what it names,
``divide``/``exp``/... of integers give float32). Python scalars enter the IR as ``constant``
nodes (rank 0, weakly typed: they take the other operand's dtype). The ops reused from older
layers (``add``, ``activation``, ``concatenate``...) are not redefined here; ``api.py`` maps
Keras names onto them.

Kernels: every primitive has a numba kernel named like the op: element-wise ops in
``runtime/kernels/elementwise_ops.py``, reductions in ``reductions.py``, ``matmul`` in
``matmul.py``, ``take`` in ``gather.py``, data movement (``transpose slice pad cast stack``,
``constant variable``) in ``movement.py``. An op given a kernel name starting with ``numpy:``
runs through the runtime's generic kernel, which calls its NumPy reference
(``runtime/kernels/reference_ops.py``): correct, but a Python-level step between generated code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..broadcast import broadcast_shapes
from ..dtypes import INT_DTYPES, float_result, promote
from ..errors import DTypeError, ShapeError
from ..symbolic import add, format_shape
from ..types import TensorType
from .activations import _erf
from .merge import normalize_axis
from .registry import BROADCAST, ELEMENTWISE, INJECTIVE, REDUCTION, OpDef, register
from .reshape import _product, concrete_target, infer_target


def result_dtype(dtypes: Sequence[np.dtype]) -> np.dtype:
    """Keras-style promotion of the operands' dtypes (``int64`` with ``float32`` is
    ``float32``; ``bool`` with ``int32`` is ``int32``); see ``compiler.dtypes.promote``."""
    return promote(dtypes)


def _prim(name: str, shape_rule, reference, num_inputs: int | None = 1, traits=(), doc="",
          min_inputs: int = 1, kernel: str | None = None, param_spec=None) -> OpDef:
    return register(OpDef(
        name=name, shape_rule=shape_rule, reference=reference, param_spec=param_spec,
        kernel=kernel or name, num_inputs=num_inputs, min_inputs=min_inputs,
        elementwise=ELEMENTWISE in traits, broadcast=BROADCAST in traits, doc=doc,
        traits=frozenset(traits), extras={"primitive": True}))


# -- constants ------------------------------------------------------------------------------------
def _constant_rule(inputs, params, attrs, unify) -> TensorType:
    value = np.asarray(attrs["value"])
    return TensorType(tuple(value.shape), np.dtype(attrs.get("dtype", value.dtype)))


def _constant_ref(inputs, params, attrs):
    return np.asarray(attrs["value"], dtype=attrs.get("dtype"))


_prim("constant", _constant_rule, _constant_ref, num_inputs=0, min_inputs=0,
      doc="A constant (a Python scalar or array the user wrote); attr `value`, `dtype`.")


def _variable_rule(inputs, params, attrs, unify) -> TensorType:
    return params["value"]


_prim("variable", _variable_rule, lambda inputs, params, attrs: params["value"], num_inputs=0,
      min_inputs=0, param_spec=lambda inputs, attrs: {"value": tuple(attrs["shape"])},
      doc="A custom layer's weight read as a value (its param node, role `value`; attr `weight` "
          "names it).")


# -- element-wise ---------------------------------------------------------------------------------
def _erf_ref(x):
    x = np.asarray(x)
    out = _erf(x.astype(np.float64))
    return out.astype(x.dtype if x.dtype.kind == "f" else np.float64)


#: op -> NumPy function; these keep the operand's dtype (floats) except where noted
UNARY = {
    "negative": np.negative, "abs": np.abs, "exp": np.exp, "log": np.log, "sqrt": np.sqrt,
    "erf": _erf_ref, "logical_not": np.logical_not,
}
BINARY = {
    "divide": np.divide, "power": np.power,
    "equal": np.equal, "not_equal": np.not_equal, "greater": np.greater,
    "greater_equal": np.greater_equal, "less": np.less, "less_equal": np.less_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or,
    # integer division by zero gives 0, as in NumPy (floats: inf/nan); floor for negatives
    "floor_divide": np.floor_divide, "mod": np.remainder,
}
BOOL_RESULT = frozenset({"logical_not", "equal", "not_equal", "greater", "greater_equal", "less",
                         "less_equal", "logical_and", "logical_or"})
#: ops whose result is float even for integer/bool operands (NumPy's true division, exp...)
FLOAT_RESULT = frozenset({"divide", "exp", "log", "sqrt", "erf"})


#: ops without a bool result: NumPy computes them in int8, which we do not have
NO_BOOL_RESULT = frozenset({"floor_divide", "mod"})


def elementwise_dtype(name: str, dtypes: Sequence[np.dtype]) -> np.dtype:
    if name in BOOL_RESULT:
        return np.dtype(bool)
    dtype = result_dtype(dtypes)
    if name in NO_BOOL_RESULT and dtype.kind == "b":
        raise DTypeError(f"{name} of two bool tensors has no bool result; cast an operand to "
                         f"int32 first")
    return float_result(dtype) if name in FLOAT_RESULT else dtype


def _elementwise_rule(name: str):
    def rule(inputs, params, attrs, unify) -> TensorType:
        shape = broadcast_shapes([t.shape for t in inputs], unify, name)
        return TensorType(shape, elementwise_dtype(name, [t.dtype for t in inputs]))
    return rule


def _elementwise_ref(fn):
    def reference(inputs, params, attrs):
        with np.errstate(all="ignore"):
            return fn(*inputs)
    return reference


for _name, _fn in UNARY.items():
    _prim(_name, _elementwise_rule(_name), _elementwise_ref(_fn), num_inputs=1, kernel=_name,
          traits=(ELEMENTWISE,), doc=f"Element-wise {_name} (NumPy `{_name}`).")
for _name, _fn in BINARY.items():
    _prim(_name, _elementwise_rule(_name), _elementwise_ref(_fn), num_inputs=2, kernel=_name,
          traits=(ELEMENTWISE, BROADCAST), doc=f"Element-wise {_name}, broadcast NumPy-style.")


def _where_rule(inputs, params, attrs, unify) -> TensorType:
    shape = broadcast_shapes([t.shape for t in inputs], unify, "where")
    return TensorType(shape, result_dtype([t.dtype for t in inputs[1:]]))


def _where_ref(inputs, params, attrs):
    cond, x, y = inputs
    return np.where(np.asarray(cond).astype(bool), x, y)


_prim("where", _where_rule, _where_ref, num_inputs=3, kernel="where",
      traits=(ELEMENTWISE, BROADCAST),
      doc="`x` where `condition` else `y`, broadcast NumPy-style.")


def _cast_rule(inputs, params, attrs, unify) -> TensorType:
    return TensorType(inputs[0].shape, np.dtype(attrs["dtype"]))


def _cast_ref(inputs, params, attrs):
    dtype = np.dtype(attrs["dtype"])
    with np.errstate(all="ignore"):
        return np.asarray(inputs[0]).astype(dtype)


_prim("cast", _cast_rule, _cast_ref, traits=(ELEMENTWISE,), doc="Convert to attr `dtype`.")


def _fill_rule(inputs, params, attrs, unify) -> TensorType:
    return inputs[0]


_prim("zeros_like", _fill_rule, lambda inputs, params, attrs: np.zeros_like(inputs[0]),
      kernel="zeros_like", traits=(ELEMENTWISE,), doc="Zeros of the input's shape and dtype.")
_prim("ones_like", _fill_rule, lambda inputs, params, attrs: np.ones_like(inputs[0]),
      kernel="ones_like", traits=(ELEMENTWISE,), doc="Ones of the input's shape and dtype.")


# -- matmul ---------------------------------------------------------------------------------------
def _matmul_rule(inputs, params, attrs, unify) -> TensorType:
    a, b = inputs
    dtype = result_dtype([a.dtype, b.dtype])
    if a.shape is None or b.shape is None:
        return TensorType(None, dtype)
    if not a.shape or not b.shape:
        raise ShapeError(f"matmul: operands must have rank >= 1, received "
                         f"{format_shape(a.shape)} and {format_shape(b.shape)}")
    sa = (1,) + a.shape if len(a.shape) == 1 else a.shape
    sb = b.shape + (1,) if len(b.shape) == 1 else b.shape
    try:
        unify.dims(sa[-1], sb[-2], "matmul contraction axis")
    except ShapeError as e:
        which = "only" if len(b.shape) == 1 else "second-to-last"
        raise ShapeError(f"{format_shape(a.shape)} @ {format_shape(b.shape)}: the last axis of "
                         f"the first and the {which} axis of the second must agree ({e})"
                         ) from None
    batch = broadcast_shapes([sa[:-2], sb[:-2]], unify, "matmul batch axes")
    out = tuple(batch) + (sa[-2], sb[-1])
    if len(a.shape) == 1:
        out = out[:-2] + out[-1:]
    if len(b.shape) == 1:
        out = out[:-1]
    return TensorType(out, dtype)


def _matmul_ref(inputs, params, attrs):
    return np.matmul(inputs[0], inputs[1])


_prim("matmul", _matmul_rule, _matmul_ref, num_inputs=2,
      doc="NumPy matmul: batched, the batch axes broadcast; rank-1 operands as in NumPy.")


# -- rearranging ----------------------------------------------------------------------------------
def _transpose_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    if x.shape is None:
        return x
    axes = attrs.get("axes")
    rank = len(x.shape)
    if axes is None:
        axes = tuple(range(rank))[::-1]
    axes = tuple(normalize_axis(a, rank, "transpose") for a in axes)
    if sorted(axes) != list(range(rank)):
        raise ShapeError(f"transpose: axes {attrs.get('axes')} are not a permutation of the "
                         f"{rank} axes of {format_shape(x.shape)}")
    return x.with_shape(tuple(x.shape[a] for a in axes))


_prim("transpose", _transpose_rule,
      lambda inputs, params, attrs: np.transpose(inputs[0], attrs.get("axes")),
      traits=(INJECTIVE,), doc="Permute axes (attr `axes`; default: reversed).")


def _reshape_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    target = tuple(attrs["shape"])
    if x.shape is None:
        return x.with_shape(None)
    return x.with_shape(infer_target(_product(x.shape), target, unify, f"reshape to {target}",
                                     format_shape(x.shape)))


def _reshape_ref(inputs, params, attrs):
    x = inputs[0]
    return np.reshape(x, concrete_target(x.size, tuple(attrs["shape"])))


_prim("reshape_array", _reshape_rule, _reshape_ref, kernel="reshape", traits=(INJECTIVE,),
      doc="NumPy reshape (the whole shape, batch axis included; one entry may be -1).")


def _expand_dims_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    if x.shape is None:
        return x
    axis = normalize_axis(attrs["axis"], len(x.shape) + 1, "expand_dims")
    return x.with_shape(x.shape[:axis] + (1,) + x.shape[axis:])


_prim("expand_dims", _expand_dims_rule,
      lambda inputs, params, attrs: np.expand_dims(inputs[0], attrs["axis"]),
      kernel="reshape", traits=(INJECTIVE,), doc="Insert a size-1 axis at attr `axis`.")


def _squeeze_axes(shape, axis, unify) -> tuple:
    rank = len(shape)
    if axis is None:
        axes = tuple(a for a, d in enumerate(shape) if isinstance(d, int) and d == 1)
    else:
        axes = tuple(normalize_axis(a, rank, "squeeze") for a in
                     (axis if isinstance(axis, (tuple, list)) else (axis,)))
        for a in axes:
            if not (isinstance(shape[a], int) and shape[a] == 1):
                unify.dims(1, shape[a], f"squeeze axis {a} of {format_shape(shape)}")
    return axes


def _squeeze_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    if x.shape is None:
        return x
    axes = _squeeze_axes(x.shape, attrs.get("axis"), unify)
    return x.with_shape(tuple(d for a, d in enumerate(x.shape) if a not in axes))


def _squeeze_ref(inputs, params, attrs):
    axis = attrs.get("axis")
    return np.squeeze(inputs[0], axis=tuple(axis) if isinstance(axis, list) else axis)


_prim("squeeze", _squeeze_rule, _squeeze_ref, kernel="reshape", traits=(INJECTIVE,),
      doc="Remove size-1 axes (attr `axis`, or every axis known to be 1).")


def _stack_rule(inputs, params, attrs, unify) -> TensorType:
    known = [t.shape for t in inputs if t.shape is not None]
    dtype = result_dtype([t.dtype for t in inputs])
    if not known:
        return TensorType(None, dtype)
    shape = list(known[0])
    for i, s in enumerate(known[1:], start=1):
        if len(s) != len(shape):
            raise ShapeError(f"stack: all inputs need one shape, received "
                             f"{[format_shape(k) for k in known]}")
        shape = [unify.dims(a, b, f"stack input {i} axis {ax}")
                 for ax, (a, b) in enumerate(zip(shape, s))]
    axis = normalize_axis(attrs.get("axis", 0), len(shape) + 1, "stack")
    return TensorType(tuple(shape[:axis]) + (len(inputs),) + tuple(shape[axis:]), dtype)


_prim("stack", _stack_rule,
      lambda inputs, params, attrs: np.stack(inputs, axis=attrs.get("axis", 0)),
      num_inputs=None, traits=(INJECTIVE,), doc="Stack equal-shaped inputs along a new axis.")


def _slice_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    start, size = tuple(attrs["start"]), tuple(attrs["shape"])
    if x.shape is None:
        return x.with_shape(None if any(s == -1 for s in size) else size)
    if len(start) != len(x.shape) or len(size) != len(x.shape):
        raise ShapeError(f"slice: start {start} and shape {size} need one entry per axis of "
                         f"{format_shape(x.shape)}")
    out = []
    for axis, (d, b, n) in enumerate(zip(x.shape, start, size)):
        if n == -1:
            out.append(add(d, -b) if b else d)
            continue
        if isinstance(d, int) and b + n > d:
            raise ShapeError(f"slice axis {axis}: start {b} + size {n} exceeds the size {d} of "
                             f"{format_shape(x.shape)}")
        out.append(n)
    return x.with_shape(tuple(out))


def _slice_ref(inputs, params, attrs):
    x = inputs[0]
    index = tuple(slice(b, None if n == -1 else b + n)
                  for b, n in zip(attrs["start"], attrs["shape"]))
    return x[index]


_prim("slice", _slice_rule, _slice_ref, traits=(INJECTIVE,),
      doc="Keras `ops.slice(x, start_indices, shape)` (a size -1 runs to the end).")


def _take_rule(inputs, params, attrs, unify) -> TensorType:
    x, idx = inputs
    if idx.dtype not in INT_DTYPES:
        raise DTypeError(f"take: indices must be int32 or int64, received {idx.dtype} (cast "
                         f"them with ops.cast(indices, 'int32'))")
    if x.shape is None or idx.shape is None:
        return TensorType(None, x.dtype)
    axis = attrs.get("axis")
    if axis is None:
        return TensorType(tuple(idx.shape), x.dtype)
    axis = normalize_axis(axis, len(x.shape), "take")
    return TensorType(x.shape[:axis] + tuple(idx.shape) + x.shape[axis + 1:], x.dtype)


def _take_ref(inputs, params, attrs):
    """NumPy ``take``; an index outside ``[-size, size)`` is an ``IndexError`` naming the
    axis, its size and the offending index (never a wrapped or out-of-bounds read)."""
    x, idx = np.asarray(inputs[0]), np.asarray(inputs[1])
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"take: indices must be integers, received {idx.dtype}")
    axis = attrs.get("axis")
    size = x.size if axis is None else x.shape[axis]
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < -size or hi >= size:
            bad = lo if lo < -size else hi
            where = "the flattened input" if axis is None else f"axis {axis}"
            raise IndexError(f"take: index {bad} is out of range for {where} of size {size} "
                             f"(input shape {x.shape}); valid indices are {-size}..{size - 1}")
    return np.take(x, idx.astype(np.int64, copy=False), axis=axis)


_prim("take", _take_rule, _take_ref, num_inputs=2,
      doc="Gather: `x` indexed by integer `indices` along attr `axis` (None: flattened).")


def _pad_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    if x.shape is None:
        return x
    widths = tuple(tuple(w) for w in attrs["pad_width"])
    if len(widths) != len(x.shape):
        raise ShapeError(f"pad: pad_width needs one (before, after) pair per axis of "
                         f"{format_shape(x.shape)}, received {len(widths)}")
    return x.with_shape(tuple(add(d, b + a) if b + a else d
                              for d, (b, a) in zip(x.shape, widths)))


_prim("pad", _pad_rule,
      lambda inputs, params, attrs: np.pad(inputs[0], attrs["pad_width"],
                                           constant_values=attrs.get("constant_values", 0)),
      traits=(INJECTIVE,), doc="Constant padding (attr `pad_width`: (before, after) per axis).")


# -- reductions -----------------------------------------------------------------------------------
def reduction_axes(axis, rank: int, what: str) -> tuple:
    if axis is None:
        return tuple(range(rank))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = tuple(sorted({normalize_axis(a, rank, what) for a in axes}))
    if len(out) != len(axes):
        raise ShapeError(f"{what}: repeated axis in {axis}")
    return out


def _reduction_rule(name: str):
    def rule(inputs, params, attrs, unify) -> TensorType:
        x = inputs[0]
        dtype = x.dtype
        if name == "mean":
            dtype = float_result(dtype)
        elif name == "sum" and dtype.kind == "b":
            dtype = np.dtype(np.int64)
        if x.shape is None:
            return TensorType(None, dtype)
        axes = reduction_axes(attrs.get("axis"), len(x.shape), name)
        if name in ("max", "min"):
            for a in axes:
                if isinstance(x.shape[a], int) and x.shape[a] == 0:
                    raise ShapeError(f"{name}: axis {a} of {format_shape(x.shape)} is empty; a "
                                     f"{name} over no elements is undefined")
        if attrs.get("keepdims", False):
            shape = tuple(1 if a in axes else d for a, d in enumerate(x.shape))
        else:
            shape = tuple(d for a, d in enumerate(x.shape) if a not in axes)
        return TensorType(shape, dtype)
    return rule


_REDUCE = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}


def _reduction_ref(fn):
    def reference(inputs, params, attrs):
        axis = attrs.get("axis")
        with np.errstate(all="ignore"):
            return fn(inputs[0], axis=tuple(axis) if isinstance(axis, list) else axis,
                      keepdims=attrs.get("keepdims", False))
    return reference


for _name, _fn in _REDUCE.items():
    _prim(_name, _reduction_rule(_name), _reduction_ref(_fn), traits=(REDUCTION,), kernel=_name,
          doc=f"{_name} over attr `axis` (None: all; a tuple: several), `keepdims`.")


def _same_rule(inputs, params, attrs, unify) -> TensorType:
    x = inputs[0]
    if x.shape is not None:
        normalize_axis(attrs.get("axis", -1), len(x.shape), "log_softmax")
    return x


def _log_softmax_ref(inputs, params, attrs):
    x, axis = inputs[0], attrs.get("axis", -1)
    with np.errstate(all="ignore"):
        shifted = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
        return (shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
                ).astype(x.dtype)


_prim("log_softmax", _same_rule, _log_softmax_ref, traits=(REDUCTION,), kernel="log_softmax",
      doc="log(softmax(x)) along attr `axis`, computed stably.")
