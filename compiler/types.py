"""Value types of the IR (``TensorType``) and the user-facing input signature (``TensorSpec``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DTypeError, ShapeError
from .symbolic import Dim, DimLike, format_shape, is_concrete

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_model_dtype(dtype: Any) -> np.dtype:
    """Validate a model compute dtype (float32 or float64)."""
    try:
        dt = np.dtype(dtype if dtype is not None else np.float32)
    except (TypeError, ValueError, SyntaxError):  # numpy parses odd strings ("0:")
        raise DTypeError(f"unknown dtype {dtype!r}; use 'float32' or 'float64'") from None
    if dt not in SUPPORTED_DTYPES:
        raise DTypeError(f"deferc computes in float32 or float64, received dtype {dt}")
    return dt


@dataclass(frozen=True)
class TensorType:
    """The type of one IR value.

    ``shape`` holds ints, symbolic ``Dim``s, or ``None`` for a size not inferred yet; a ``None``
    shape means even the rank is unknown (a model before it has seen any input).
    """

    shape: tuple[DimLike | None, ...] | None
    dtype: np.dtype = np.dtype(np.float32)

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_known(self) -> bool:
        """Every dim inferred (ints or symbols), none left as ``None``."""
        return self.shape is not None and all(d is not None for d in self.shape)

    @property
    def is_concrete(self) -> bool:
        return self.shape is not None and all(is_concrete(d) for d in self.shape)

    def with_shape(self, shape: Sequence[DimLike | None] | None) -> TensorType:
        return TensorType(None if shape is None else tuple(shape), self.dtype)

    def __str__(self) -> str:
        return f"{format_shape(self.shape)} {self.dtype}"


_AXIS_NAMES = {2: ("N", "D"), 3: ("N", "L", "C"), 4: ("N", "H", "W", "C")}


@dataclass(frozen=True)
class TensorSpec:
    """An input signature: ``TensorSpec((None, 20))``.

    ``None`` or a string in ``shape`` marks a symbolic dim (the batch, an image side); equal
    strings across inputs name the same size. ``dtype`` defaults to the model's dtype.
    """

    shape: tuple
    dtype: Any = None
    name: str | None = None

    def __post_init__(self):
        if isinstance(self.shape, (int, np.integer)) or self.shape is None:
            raise TypeError(f"TensorSpec shape must be a tuple, received {self.shape!r}")
        shape = tuple(self.shape)
        for axis, d in enumerate(shape):
            ok = d is None or isinstance(d, str) or (
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0)
            if not ok:
                raise ShapeError(
                    f"TensorSpec axis {axis}: a size must be a non-negative int, None or a name, "
                    f"received {d!r}")
        object.__setattr__(self, "shape", tuple(int(d) if isinstance(d, np.integer) else d
                                                for d in shape))

    @classmethod
    def from_array(cls, array: Any, batch_symbolic: bool = True) -> TensorSpec:
        """The spec of an array with its batch axis left symbolic."""
        shape = tuple(np.shape(array))
        if batch_symbolic and shape:
            shape = (None,) + shape[1:]
        return cls(shape, getattr(array, "dtype", None))

    def to_type(self, model_dtype: np.dtype, index: int = 0) -> TensorType:
        """The IR type: ``None`` axes become fresh symbols (``N``, ``H``, ``W``...); a float
        dtype becomes the model's, int32/int64/bool stay (``compiler.dtypes.value_dtype``)."""
        from .dtypes import value_dtype

        names = _AXIS_NAMES.get(len(self.shape), ())
        dims: list[DimLike] = []
        for axis, d in enumerate(self.shape):
            if d is None:
                base = names[axis] if axis < len(names) else ("N" if axis == 0 else f"d{axis}")
                dims.append(Dim.symbol(base if index == 0 else f"{base}{index}"))
            elif isinstance(d, str):
                dims.append(Dim.symbol(d))
            else:
                dims.append(int(d))
        what = f"TensorSpec {self.name!r}" if self.name else f"input {index}"
        return TensorType(tuple(dims), value_dtype(self.dtype, model_dtype, what))
