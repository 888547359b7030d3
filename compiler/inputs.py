"""Turning whatever the caller passed into an array a kernel may read, or a clear error."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import CompilerError, DTypeError


def as_input_array(value: Any, dtype: np.dtype, name: str) -> np.ndarray:
    """A C-contiguous array of the model dtype; casts ints/bools/other floats like Keras does.

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
    # not ascontiguousarray: it turns a 0-d input into shape (1,)
    return np.asarray(arr, dtype=dtype, order="C")
