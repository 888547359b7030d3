"""Layers that combine several tensors (Keras 3 names): ``Add()([a, b])``, ``Subtract``,
``Multiply``, ``Maximum``, ``Minimum``, ``Average``, ``Concatenate``.

The element-wise ones broadcast NumPy-style. How many inputs each takes is its op's arity
(``OpDef.arity``: at least 1, as in Keras 3; ``Subtract`` exactly 2), checked at the call.
"""

from __future__ import annotations

from typing import Any

from ..errors import CompilerError
from .layers import Layer


class _Merge(Layer):
    """Called on a list of tensors (Keras style) or on several arguments."""


class _ElementwiseMerge(_Merge):
    """Broadcasts; an input of lower rank is expanded right after its batch axis (Keras 3)."""

    def op_attrs(self) -> dict:
        return {"expand_after_batch": True}


class Add(_ElementwiseMerge):
    op = "add"


class Subtract(_ElementwiseMerge):
    """``a - b``: exactly two inputs."""

    op = "subtract"


class Multiply(_ElementwiseMerge):
    op = "multiply"


class Maximum(_ElementwiseMerge):
    op = "maximum"


class Minimum(_ElementwiseMerge):
    op = "minimum"


class Average(_ElementwiseMerge):
    op = "average"


class Concatenate(_Merge):
    op = "concatenate"

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise CompilerError(f"Concatenate: axis must be a non-batch axis (an int other than "
                                f"0), received {axis!r}")
        self.axis = axis

    def op_attrs(self) -> dict:
        return {"axis": self.axis}

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}
