"""Turning whatever the caller passed into an array a kernel may read, or a clear error."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import CompilerError, DTypeError


def as_input_array(value: Any, dtype: np.dtype, name: str) -> np.ndarray:
    """A C-contiguous array of ``dtype`` (an input's IR dtype); casts ints/bools/other floats to
    a float input like Keras does; an int or bool input takes only values it holds exactly.

    Strings, objects and complex numbers are rejected (a cast would lose or invent data).
    """
    if np.ma.isMaskedArray(value) and np.ma.getmaskarray(value).any():
        raise CompilerError(f"input '{name}' is a masked array with masked elements; fill them "
                            f"first (e.g. x.filled(0)), deferc would otherwise read the hidden "
                            f"values")
    if type(value) is np.ndarray and value.dtype == dtype and value.flags.c_contiguous:
        return value
    if isinstance(value, (str, bytes)):
        raise DTypeError(f"input '{name}' must be numeric, received a {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise CompilerError(f"input '{name}' cannot be read as an array: {e}") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise DTypeError(f"input '{name}' is complex ({arr.dtype}); deferc computes in {dtype} "
                         f"and will not drop the imaginary part")
    if kind not in "fiub":
        raise DTypeError(f"input '{name}' must be numeric, received dtype {arr.dtype}")
    dtype = np.dtype(dtype)
    if dtype.kind in "iub" and arr.dtype != dtype:
        _check_exact(arr, dtype, name)
    # not ascontiguousarray: it turns a 0-d input into shape (1,)
    return np.asarray(arr, dtype=dtype, order="C")


def _check_exact(arr: np.ndarray, dtype: np.dtype, name: str) -> None:
    """An int or bool input takes only values it can hold exactly: no fractions, NaN or
    out-of-range numbers (a silent truncation would index the wrong row)."""
    if arr.size == 0:
        return
    if dtype.kind == "b":
        if arr.dtype.kind != "b" and not np.isin(arr, (0, 1)).all():
            raise DTypeError(f"input '{name}' is bool; received dtype {arr.dtype} with values "
                             f"other than 0 and 1")
        return
    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore"):
        if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            bad = arr.reshape(-1)[~(np.isfinite(arr) & (arr == np.round(arr))).reshape(-1)][0]
            raise DTypeError(f"input '{name}' is {dtype}; received dtype {arr.dtype} with the "
                             f"non-integral value {bad} (round or cast it first)")
        lo, hi = arr.min(), arr.max()
    if lo < info.min or hi > info.max:
        raise DTypeError(f"input '{name}' is {dtype}; received values {lo}..{hi} outside its "
                         f"range {info.min}..{info.max}")
