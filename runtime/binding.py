"""Binding symbolic dims to the sizes of the actual inputs, checking everything first."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from compiler.errors import ShapeError
from compiler.symbolic import Dim, format_shape


class InputSignature:
    """The input types a plan was compiled for; ``bind`` maps symbol names to sizes."""

    def __init__(self, types: Sequence, names: Sequence[str], consumers: Sequence[str],
                 checks: Sequence = ()):
        self.types, self.names, self.consumers = list(types), list(names), list(consumers)
        self.checks = list(checks)

    def describe(self, i: int) -> str:
        where = f" (read by layer '{self.consumers[i]}')" if self.consumers[i] else ""
        return f"input '{self.names[i]}'{where}"

    def bind(self, arrays: Sequence[np.ndarray]) -> dict[str, int]:
        if len(arrays) != len(self.types):
            raise ShapeError(f"plan takes {len(self.types)} input(s), received {len(arrays)}")
        bindings: dict[str, int] = {}
        deferred = []
        for i, (t, a) in enumerate(zip(self.types, arrays)):
            if a.ndim != len(t.shape):
                raise ShapeError(f"{self.describe(i)}: expected rank {len(t.shape)} "
                                 f"{format_shape(t.shape)}, received rank {a.ndim} shape "
                                 f"{a.shape}")
            for axis, (d, actual) in enumerate(zip(t.shape, a.shape)):
                if isinstance(d, int):
                    if d != actual:
                        raise ShapeError(f"{self.describe(i)}: axis {axis} expected size {d}, "
                                         f"received {actual} (shape {a.shape}, compiled for "
                                         f"{format_shape(t.shape)})")
                elif d.is_symbol:
                    prev = bindings.setdefault(d.name, actual)
                    if prev != actual:
                        raise ShapeError(f"{self.describe(i)}: axis {axis} is {d.name}, bound to "
                                         f"{prev} by an earlier input, received {actual}")
                else:
                    deferred.append((i, axis, d, actual))
        for i, axis, d, actual in deferred:
            if d.evaluate(bindings) != actual:
                raise ShapeError(f"{self.describe(i)}: axis {axis} must equal {d} = "
                                 f"{d.evaluate(bindings)}, received {actual}")
        for a, b, what in self.checks:
            va, vb = _value(a, bindings), _value(b, bindings)
            if va != vb:
                raise ShapeError(f"{what}: expected {a} = {va}, received {b} = {vb}")
        return bindings


def _value(d, bindings) -> int:
    return d.evaluate(bindings) if isinstance(d, Dim) else int(d)


def concrete_shape(shape: tuple, bindings: dict[str, int], what: str) -> tuple:
    """Evaluate a symbolic shape; a negative size means the input was too small."""
    out = tuple(d if isinstance(d, int) else d.evaluate(bindings) for d in shape)
    if any(d < 0 for d in out):
        raise ShapeError(f"{what}: output shape {format_shape(shape)} evaluates to {out} for "
                         f"inputs with {bindings}; the input is too small for this layer")
    return out
