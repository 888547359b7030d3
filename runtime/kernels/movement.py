"""Data-movement kernels for ``compiler.ops`` primitives: ``transpose slice pad cast stack``
and the value sources ``constant`` / ``variable``.

All but ``stack`` are numba functions with the kernel convention (``fn(*inputs, *params, out,
*scalars)``, scalars plain ints/floats/tuples), so generated plans call them directly.
``transpose``/``slice``/``pad`` are one strided copy each (``strided.py``); tuples of a rank-0
op carry one dummy entry (numba cannot index an empty tuple). ``stack`` is ``concatenate``'s
launcher: stacking along ``axis`` lays the inputs out exactly as concatenating them there would
after each gains a size-1 axis, which changes no element's position.
"""

import numpy as np
from numba import njit

from compiler.ops.clamped_slice import run_time_bounds

from .flags import JIT, PARALLEL_MIN_ELEMENTS
from .merge import concatenate
from .registry import Kernel, register_kernel
from .strided import copy_region, copy_region_parallel, natural_strides, shape_of

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}


@njit(inline="always", **_INLINE)
def _copy(src, sbase, sstr, dst, dbase, dstr, box, parallel):
    if parallel and dst.shape[0] >= PARALLEL_MIN_ELEMENTS:
        copy_region_parallel(src, sbase, sstr, dst, dbase, dstr, box)
    else:
        copy_region(src, sbase, sstr, dst, dbase, dstr, box)


def _dims(values) -> tuple:
    """A tuple the kernels can index (never empty)."""
    return tuple(int(v) for v in values) or (0,)


# -- transpose --------------------------------------------------------------------------------
@njit(inline="always", **_INLINE)
def _transpose(x, out, perm, parallel):
    xstr = natural_strides(shape_of(x))
    box = shape_of(out)
    sstr = np.zeros(box.shape[0], np.int64)
    for d in range(x.ndim):
        sstr[d] = xstr[perm[d]]
    _copy(x.ravel(), 0, sstr, out.reshape(-1), 0, natural_strides(box), box, parallel)


@njit(**JIT)
def transpose(x, out, perm):
    """``out = np.transpose(x, perm)``."""
    _transpose(x, out, perm, False)


@njit(**JIT)
def transpose_parallel(x, out, perm):
    _transpose(x, out, perm, True)


def _transpose_scalars(attrs, input_shapes, out_shape) -> tuple:
    rank = len(out_shape)
    axes = attrs.get("axes")
    axes = tuple(range(rank))[::-1] if axes is None else tuple(a % rank for a in axes)
    return (_dims(axes),)


# -- slice ------------------------------------------------------------------------------------
@njit(inline="always", **_INLINE)
def _slice(x, out, start, parallel):
    xstr = natural_strides(shape_of(x))
    base = 0
    for d in range(x.ndim):
        base += start[d] * xstr[d]
    box = shape_of(out)
    _copy(x.ravel(), base, xstr, out.reshape(-1), 0, natural_strides(box), box, parallel)


@njit(**JIT)
def slice_(x, out, start):
    """``out = x[start[0]:start[0] + out.shape[0], ...]``."""
    _slice(x, out, start, False)


@njit(**JIT)
def slice_parallel(x, out, start):
    _slice(x, out, start, True)


def _slice_scalars(attrs, input_shapes, out_shape) -> tuple:
    return (_dims(attrs["start"]),)


# -- clamped slice (ONNX Slice on run-time sizes) --------------------------------------------
@njit(inline="always", **_INLINE)
def _clamped_slice(x, out, axis, start, step, parallel):
    xstr = natural_strides(shape_of(x))
    box = shape_of(out)
    sstr = xstr.copy()
    sstr[axis] = step * xstr[axis]
    _copy(x.ravel(), start * xstr[axis], sstr, out.reshape(-1), 0, natural_strides(box), box,
          parallel)


@njit(**JIT)
def clamped_slice(x, like, out, axis, start, step):
    """``out = x[..., start::step, ...]`` on ``axis`` (``start``, ``step`` already clamped to
    ``x``: the scalars below)."""
    _clamped_slice(x, out, axis, start, step, False)


@njit(**JIT)
def clamped_slice_parallel(x, like, out, axis, start, step):
    _clamped_slice(x, out, axis, start, step, True)


def _clamped_slice_scalars(attrs, input_shapes, out_shape) -> tuple:
    first, step, n = run_time_bounds(attrs, input_shapes[0], input_shapes[1])
    axis = attrs["axis"]
    if n != out_shape[axis] or len(out_shape) != len(input_shapes[0]):  # never read outside x
        raise ValueError(f"clamped_slice: output shape {tuple(out_shape)} is not the clamped "
                         f"slice ({n} on axis {axis}) of {tuple(input_shapes[0])}")
    return axis, first, step


# -- pad --------------------------------------------------------------------------------------
@njit(inline="always", **_INLINE)
def _pad(x, out, before, value, parallel):
    flat = out.reshape(-1)
    flat[:] = value
    ostr = natural_strides(shape_of(out))
    base = 0
    for d in range(out.ndim):
        base += before[d] * ostr[d]
    box = shape_of(x)
    _copy(x.ravel(), 0, natural_strides(box), flat, base, ostr, box, parallel)


@njit(**JIT)
def pad(x, out, before, value):
    """``out = np.pad(x, ..., constant_values=value)``; ``before[d]`` leading pad of axis d."""
    _pad(x, out, before, value, False)


@njit(**JIT)
def pad_parallel(x, out, before, value):
    _pad(x, out, before, value, True)


def _pad_scalars(attrs, input_shapes, out_shape) -> tuple:
    before = _dims(w[0] for w in attrs["pad_width"])
    return before, float(attrs.get("constant_values", 0))


# -- cast -------------------------------------------------------------------------------------
COPY, TO_INT, TO_BOOL, TO_FLOAT32 = range(4)


def cast_mode(dtype) -> int:
    """How ``cast`` to ``dtype`` rounds a value it stores (the arena may be wider)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return TO_BOOL
    if dtype.kind in "iu":
        return TO_INT
    if dtype.kind == "f" and dtype.itemsize < 8:
        return TO_FLOAT32
    return COPY


@njit(**JIT)
def cast(x, out, mode):
    """``out = x.astype(dtype)`` stored in ``out``'s dtype: integers truncate toward zero, bools
    are 0/1, float32 rounds; converting NaN or out-of-range values to ints is undefined, as in
    NumPy."""
    src, dst = x.ravel(), out.reshape(-1)
    if mode == TO_BOOL:
        for i in range(dst.shape[0]):
            dst[i] = src[i] != 0
    elif mode == TO_INT:
        for i in range(dst.shape[0]):
            dst[i] = np.int64(src[i])
    elif mode == TO_FLOAT32:
        for i in range(dst.shape[0]):
            dst[i] = np.float32(src[i])
    else:
        for i in range(dst.shape[0]):
            dst[i] = src[i]


def _cast_scalars(attrs, input_shapes, out_shape) -> tuple:
    return (cast_mode(attrs["dtype"]),)


# -- value sources ----------------------------------------------------------------------------
@njit(**JIT)
def constant(out, values):
    """``out`` filled from ``values`` (flat; a single value fills it all)."""
    dst = out.reshape(-1)
    n = values.shape[0]
    for i in range(dst.shape[0]):
        dst[i] = values[i % n]


def _constant_scalars(attrs, input_shapes, out_shape) -> tuple:
    value = np.asarray(attrs["value"], dtype=attrs.get("dtype"))
    flat = value.reshape(-1)
    if flat.size == 0:
        flat = np.zeros(1, value.dtype)
    if flat.dtype.kind == "b":
        flat = flat.astype(np.float64)
    return (flat.astype(np.int64 if flat.dtype.kind in "iu" else np.float64),)


@njit(**JIT)
def variable(value, out):
    """``out`` = the weight ``value`` (a custom layer's weight read as a value)."""
    dst, src = out.reshape(-1), value.ravel()
    for i in range(dst.shape[0]):
        dst[i] = src[i]


# -- stack ------------------------------------------------------------------------------------
def _stack_scalars(attrs, input_shapes, out_shape) -> tuple:
    return (attrs.get("axis", 0) % len(out_shape),)


register_kernel(Kernel("transpose", transpose, _transpose_scalars,
                       parallel_fn=transpose_parallel))
register_kernel(Kernel("slice", slice_, _slice_scalars, parallel_fn=slice_parallel))
register_kernel(Kernel("clamped_slice", clamped_slice, _clamped_slice_scalars,
                       parallel_fn=clamped_slice_parallel))
register_kernel(Kernel("pad", pad, _pad_scalars, parallel_fn=pad_parallel))
register_kernel(Kernel("cast", cast, _cast_scalars))
register_kernel(Kernel("constant", constant, _constant_scalars))
register_kernel(Kernel("variable", variable, lambda attrs, shapes, out: (),
                       param_names=("value",)))
register_kernel(Kernel("stack", concatenate, _stack_scalars))
