"""Python operators on symbolic tensors (``x + 1``, ``a @ b``, ``x > 0``, ``-x``), as Keras 3
defines them: each one is the ``compiler.ops`` function of the same meaning, so ``x + y`` and
``ops.add(x, y)`` build the same graph.

Python control flow needs a concrete value (``if x > 0:``, ``bool(x)``, ``float(x)``, ``for row
in x``); a symbolic tensor has none until the compiled plan runs, so these raise a
``CompilerError`` pointing at the user's line instead of silently picking one branch.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

from ..errors import CompilerError

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ops():
    from . import ops_api

    return ops_api


def user_frame(tb: Any = None) -> traceback.FrameSummary | None:
    """The innermost stack frame outside deferc (of traceback ``tb``, else of the current
    stack): the user's line that asked for a value or made a shape error."""
    frames = traceback.extract_tb(tb) if tb is not None else traceback.extract_stack()
    for frame in reversed(frames):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE + os.sep):
            return frame
    return None


class ConcretizationError(CompilerError):
    """Python needed the value of a symbolic tensor (control flow on traced values)."""


def concretization_error(tensor: Any, what: str) -> ConcretizationError:
    frame = user_frame()
    where = (f"\n  at {frame.filename}:{frame.lineno}: {frame.line}" if frame is not None
             else "")
    return ConcretizationError(
        f"{what} needs the value of a symbolic tensor {tensor.type}, which is only known when "
        f"the compiled model runs: Python control flow on tensor values cannot be traced into a "
        f"graph.{where}\n  Use ops.where(condition, x, y) (or other ops) instead of `if`, and "
        f"ops.* functions instead of float()/int()/iteration.")


class TensorOperators:
    """Operator overloads shared by symbolic tensors and layer weights."""

    __array_ufunc__ = None  # ``ndarray + tensor`` defers to ``tensor.__radd__``
    __hash__ = object.__hash__  # ``==`` builds an op, identity stays the hash

    def __add__(self, other: Any) -> Any:
        return _ops().add(self, other)

    def __radd__(self, other: Any) -> Any:
        return _ops().add(other, self)

    def __sub__(self, other: Any) -> Any:
        return _ops().subtract(self, other)

    def __rsub__(self, other: Any) -> Any:
        return _ops().subtract(other, self)

    def __mul__(self, other: Any) -> Any:
        return _ops().multiply(self, other)

    def __rmul__(self, other: Any) -> Any:
        return _ops().multiply(other, self)

    def __truediv__(self, other: Any) -> Any:
        return _ops().divide(self, other)

    def __rtruediv__(self, other: Any) -> Any:
        return _ops().divide(other, self)

    def __floordiv__(self, other: Any) -> Any:
        return _ops().floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> Any:
        return _ops().floor_divide(other, self)

    def __mod__(self, other: Any) -> Any:
        return _ops().mod(self, other)

    def __rmod__(self, other: Any) -> Any:
        return _ops().mod(other, self)

    def __pow__(self, other: Any) -> Any:
        return _ops().power(self, other)

    def __rpow__(self, other: Any) -> Any:
        return _ops().power(other, self)

    def __matmul__(self, other: Any) -> Any:
        return _ops().matmul(self, other)

    def __rmatmul__(self, other: Any) -> Any:
        return _ops().matmul(other, self)

    def __neg__(self) -> Any:
        return _ops().negative(self)

    def __pos__(self) -> Any:
        return self

    def __abs__(self) -> Any:
        return _ops().abs(self)

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return _ops().equal(self, other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return _ops().not_equal(self, other)

    def __gt__(self, other: Any) -> Any:
        return _ops().greater(self, other)

    def __ge__(self, other: Any) -> Any:
        return _ops().greater_equal(self, other)

    def __lt__(self, other: Any) -> Any:
        return _ops().less(self, other)

    def __le__(self, other: Any) -> Any:
        return _ops().less_equal(self, other)

    def __and__(self, other: Any) -> Any:
        return _ops().logical_and(self, other)

    def __rand__(self, other: Any) -> Any:
        return _ops().logical_and(other, self)

    def __or__(self, other: Any) -> Any:
        return _ops().logical_or(self, other)

    def __ror__(self, other: Any) -> Any:
        return _ops().logical_or(other, self)

    def __invert__(self) -> Any:
        return _ops().logical_not(self)


class SymbolicValueGuard(TensorOperators):
    """What a symbolic tensor refuses: Python needing its value."""

    def __bool__(self) -> bool:
        raise concretization_error(self, "`if`/`while`/`and`/`or`/bool()")

    def __float__(self) -> float:
        raise concretization_error(self, "float()")

    def __int__(self) -> int:
        raise concretization_error(self, "int()")

    def __index__(self) -> int:
        raise concretization_error(self, "using a tensor as an index")

    def __iter__(self):
        raise concretization_error(self, "iterating over a tensor")

    def __array__(self, *args: Any, **kwargs: Any):
        raise concretization_error(self, "np.asarray()")
