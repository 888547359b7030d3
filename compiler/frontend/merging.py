"""Layers that combine several tensors: ``Add()([a, b])``, ``Multiply``, ``Concatenate``."""

from __future__ import annotations

from typing import Any

from ..errors import CompilerError
from .layers import Layer


class _Merge(Layer):
    """Called on a list of tensors (Keras style) or on several arguments."""

    min_inputs = 2


class Add(_Merge):
    op = "add"


class Multiply(_Merge):
    op = "multiply"


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
