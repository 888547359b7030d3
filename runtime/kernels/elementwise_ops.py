"""Element-wise kernels for ``compiler.ops`` primitives, one compiled loop per arity, keyed by
an op code: unary (``negative abs exp log sqrt erf logical_not``, and the ``zeros_like`` /
``ones_like`` fills), binary with NumPy broadcasting (``divide power floor_divide mod``,
comparisons, ``logical_and logical_or``) and ``where``.

Broadcasting: operands are right-aligned to ``out``; ``layout`` gives per-operand element
strides (0 on broadcast axes) over ``out``'s axes with size-1 axes dropped and chained
neighbours merged, so ``(N, H, W, C) / (N, 1, 1, C)`` runs as ``(N, H*W, C) / (N, 1, C)``.
Operands arrive in their own dtypes (numba specializes per combination) and results are stored
in ``out``'s dtype, the node's: a comparison writes ``True``/``False`` into a bool ``out``. The
value functions return one unified type (float64 once any op code gives a float), so an int
``out`` (``negative abs zeros_like ones_like`` of ints, ``power floor_divide mod`` of ints) takes
int value functions, which compute in int64 and wrap like NumPy: int64 beyond 2**53 stays exact.
Integer ``floor_divide``/``mod`` by zero give 0, as NumPy does (it also warns); floats give
NumPy's ``inf``/``nan``.
"""

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .broadcast import layout, row_offsets
from .flags import JIT, PARALLEL_MIN_ELEMENTS
from .registry import Kernel, register_kernel

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}
_CHUNK = 1 << 14

NEGATIVE, ABS, EXP, LOG, SQRT, ERF, LOGICAL_NOT, ZEROS, ONES = range(9)
UNARY_CODES = {"negative": NEGATIVE, "abs": ABS, "exp": EXP, "log": LOG, "sqrt": SQRT,
               "erf": ERF, "logical_not": LOGICAL_NOT, "zeros_like": ZEROS, "ones_like": ONES}
(DIVIDE, POWER, EQUAL, NOT_EQUAL, GREATER, GREATER_EQUAL, LESS, LESS_EQUAL, LOGICAL_AND,
 LOGICAL_OR, FLOOR_DIVIDE, MOD) = range(12)
BINARY_CODES = {"divide": DIVIDE, "power": POWER, "equal": EQUAL, "not_equal": NOT_EQUAL,
                "greater": GREATER, "greater_equal": GREATER_EQUAL, "less": LESS,
                "less_equal": LESS_EQUAL, "logical_and": LOGICAL_AND, "logical_or": LOGICAL_OR,
                "floor_divide": FLOOR_DIVIDE, "mod": MOD}


@njit(inline="always", **_INLINE)
def unary_value(v, code):
    if code == NEGATIVE:
        return -v
    if code == ABS:
        return abs(v)
    if code == EXP:
        return math.exp(v)
    if code == LOG:
        if v < 0:
            return math.nan
        if v == 0:
            return -math.inf
        return math.log(v)
    if code == SQRT:
        return math.sqrt(v) if v >= 0 else math.nan
    if code == ERF:
        return math.erf(v)
    if code == LOGICAL_NOT:
        return 1.0 if v == 0 else 0.0
    if code == ZEROS:
        return 0.0
    return 1.0


@njit(inline="always", **_INLINE)
def float_divmod(x, y):
    """``(x // y, x % y)`` for floats as NumPy's ``npy_divmod`` computes them: the remainder
    takes the divisor's sign, the quotient is ``(x - fmod(x, y)) / y`` snapped to an integer."""
    x, y = np.float64(x), np.float64(y)
    if y == 0:
        return x / y, math.nan
    mod = np.fmod(x, y)
    div = (x - mod) / y
    if mod != 0:
        if (y < 0) != (mod < 0):
            mod += y
            div -= 1.0
    else:
        mod = np.copysign(0.0, y)
    if div != 0:
        floordiv = np.floor(div)
        if div - floordiv > 0.5:
            floordiv += 1.0
    else:
        floordiv = np.copysign(0.0, x / y)
    return floordiv, mod


@njit(inline="always", **_INLINE)
def binary_value(x, y, code):
    if code == DIVIDE:
        return x / y
    if code == POWER:
        return x ** y
    if code == FLOOR_DIVIDE:
        return float_divmod(x, y)[0]
    if code == MOD:
        return float_divmod(x, y)[1]
    if code == EQUAL:
        return 1.0 if x == y else 0.0
    if code == NOT_EQUAL:
        return 1.0 if x != y else 0.0
    if code == GREATER:
        return 1.0 if x > y else 0.0
    if code == GREATER_EQUAL:
        return 1.0 if x >= y else 0.0
    if code == LESS:
        return 1.0 if x < y else 0.0
    if code == LESS_EQUAL:
        return 1.0 if x <= y else 0.0
    if code == LOGICAL_AND:
        return 1.0 if (x != 0 and y != 0) else 0.0
    return 1.0 if (x != 0 or y != 0) else 0.0


# -- unary: flat loops ---------------------------------------------------------------------------
@njit(inline="always", **_INLINE)
def _unary_chunk(x, out, lo, hi, code):
    for i in range(lo, hi):
        out[i] = unary_value(x[i], code)


@njit(**JIT)
def unary_serial(x, out, code):
    _unary_chunk(x, out, 0, out.shape[0], code)


@njit(parallel=True, **JIT)
def unary_parallel(x, out, code):
    n = out.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        _unary_chunk(x, out, c * _CHUNK, min(n, (c + 1) * _CHUNK), code)


def _unary(x, out, code):
    """``out = f(x)`` element-wise (``x`` has ``out``'s shape)."""
    if out.size == 0:
        return
    if _is_int(out.dtype):
        unary_int(np.ascontiguousarray(x).reshape(-1), out.reshape(-1), code)
        return
    run = unary_parallel if out.size >= PARALLEL_MIN_ELEMENTS else unary_serial
    run(np.ascontiguousarray(x).reshape(-1), out.reshape(-1), code)


# -- integer results: computed in ints -----------------------------------------------------------
@njit(inline="always", **_INLINE)
def unary_int_value(v, code):
    """``unary_value`` for the codes that keep an int operand's dtype; every branch is int."""
    v = np.int64(v)
    if code == NEGATIVE:
        return -v
    if code == ABS:
        return -v if v < 0 else v
    if code == ONES:
        return v - v + 1
    return v - v  # ZEROS


@njit(inline="always", **_INLINE)
def int_power(x, y):
    """``x ** y`` for ints, ``y >= 0`` (the launcher checks): squaring, wrapping like NumPy."""
    base, e = np.int64(x), np.int64(y)
    result = base - base + 1
    while e > 0:
        if e & 1:
            result *= base
        base *= base
        e >>= 1
    return result


@njit(parallel=True, **JIT)
def unary_int(x, out, code):
    n = out.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        for i in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            out[i] = unary_int_value(x[i], code)


@njit(inline="always", **_INLINE)
def binary_int_value(x, y, code):
    """``binary_value`` for the codes that keep int operands' dtype (``power floor_divide
    mod``), in int64: floor semantics, 0 for a zero divisor and wrapping like NumPy."""
    x, y = np.int64(x), np.int64(y)
    if code == POWER:
        return int_power(x, y)
    if y == 0:
        return x - x
    if y == -1:  # INT_MIN // -1 overflows the hardware division; NumPy wraps to INT_MIN
        return -x if code == FLOOR_DIVIDE else x - x
    if code == FLOOR_DIVIDE:
        return x // y
    return x % y


def binary_into(out, x, y, code):
    """``binary_value`` or ``binary_int_value``, chosen by ``out``'s dtype when compiled."""


@overload(binary_into)
def _binary_into(out, x, y, code):
    if isinstance(out.dtype, types.Integer):
        return lambda out, x, y, code: binary_int_value(x, y, code)
    return lambda out, x, y, code: binary_value(x, y, code)


def _is_int(dtype: np.dtype) -> bool:
    return dtype.kind in "iu"


# -- broadcasting: strided rows (layout and row offsets in ``broadcast.py``) ------------------
@njit(inline="always", **_INLINE)
def _binary_rows(a, b, out, sizes, strides, code, r0, r1):
    rank = sizes.shape[0]
    inner = sizes[rank - 1]
    sa, sb = strides[0, rank - 1], strides[1, rank - 1]
    offs = np.zeros(2, np.int64)
    for r in range(r0, r1):
        row_offsets(r, sizes, strides, offs)
        ao, bo, oo = offs[0], offs[1], r * inner
        if sa == 1 and sb == 1:
            for j in range(inner):
                out[oo + j] = binary_into(out, a[ao + j], b[bo + j], code)
        elif sb == 0:
            y = b[bo]
            for j in range(inner):
                out[oo + j] = binary_into(out, a[ao + j * sa], y, code)
        else:
            x = a[ao]
            for j in range(inner):
                out[oo + j] = binary_into(out, x if sa == 0 else a[ao + j], b[bo + j], code)


@njit(**JIT)
def binary_serial(a, b, out, sizes, strides, code):
    inner = sizes[sizes.shape[0] - 1]
    _binary_rows(a, b, out, sizes, strides, code, 0, out.shape[0] // inner)


@njit(parallel=True, **JIT)
def binary_parallel(a, b, out, sizes, strides, code):
    inner = sizes[sizes.shape[0] - 1]
    rows = out.shape[0] // inner
    per = max(1, _CHUNK // inner)
    for c in prange((rows + per - 1) // per):
        _binary_rows(a, b, out, sizes, strides, code, c * per, min(rows, (c + 1) * per))


def _binary(a, b, out, code):
    """``out = a op b``, ``a`` and ``b`` broadcast NumPy-style to ``out``."""
    if out.size == 0:
        return
    if code == POWER and _is_int(out.dtype) and b.size and b.min() < 0:
        raise ValueError(f"power: integers to negative integer powers are not allowed (an "
                         f"exponent is {int(b.min())}); cast the base to a float first")
    sizes, strides = layout(out.shape, a.shape, b.shape)
    run = binary_parallel if out.size >= PARALLEL_MIN_ELEMENTS else binary_serial
    run(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1),
        out.reshape(-1), sizes, strides, code)


@njit(inline="always", **_INLINE)
def _where_rows(c, a, b, out, sizes, strides, r0, r1):
    rank = sizes.shape[0]
    inner = sizes[rank - 1]
    sc, sa, sb = strides[0, rank - 1], strides[1, rank - 1], strides[2, rank - 1]
    offs = np.zeros(3, np.int64)
    for r in range(r0, r1):
        row_offsets(r, sizes, strides, offs)
        co, ao, bo, oo = offs[0], offs[1], offs[2], r * inner
        for j in range(inner):
            out[oo + j] = a[ao + j * sa] if c[co + j * sc] != 0 else b[bo + j * sb]


@njit(**JIT)
def where_serial(c, a, b, out, sizes, strides):
    inner = sizes[sizes.shape[0] - 1]
    _where_rows(c, a, b, out, sizes, strides, 0, out.shape[0] // inner)


@njit(parallel=True, **JIT)
def where_parallel(c, a, b, out, sizes, strides):
    inner = sizes[sizes.shape[0] - 1]
    rows = out.shape[0] // inner
    per = max(1, _CHUNK // inner)
    for k in prange((rows + per - 1) // per):
        _where_rows(c, a, b, out, sizes, strides, k * per, min(rows, (k + 1) * per))


def where(c, a, b, out):
    """``out = a if c else b``, the three broadcast NumPy-style to ``out``."""
    if out.size == 0:
        return
    sizes, strides = layout(out.shape, c.shape, a.shape, b.shape)
    run = where_parallel if out.size >= PARALLEL_MIN_ELEMENTS else where_serial
    flat = [np.ascontiguousarray(x).reshape(-1) for x in (c, a, b)]
    run(*flat, out.reshape(-1), sizes, strides)


def _no_scalars(attrs, input_shapes, out_shape):
    return ()


def _unary_launcher(code: int):
    def launch(x, out):
        _unary(x, out, code)
    return launch


def _binary_launcher(code: int):
    def launch(a, b, out):
        _binary(a, b, out, code)
    return launch


for _name, _code in UNARY_CODES.items():
    register_kernel(Kernel(_name, _unary_launcher(_code), _no_scalars))
for _name, _code in BINARY_CODES.items():
    register_kernel(Kernel(_name, _binary_launcher(_code), _no_scalars))
register_kernel(Kernel("where", where, _no_scalars))
