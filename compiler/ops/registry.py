"""The op registry: every op is defined once, as one ``OpDef``.

An op bundles its shape rule, the shapes of the parameters it owns (Keras' ``build``), its NumPy
reference (the living definition of what it computes) and the name of its runtime kernel.
``compiler/`` never imports the kernels themselves, so shapes can be inferred without numba.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CompilerError, ShapeError
from ..symbolic import Dim, DimLike, definitely_equal, format_dim, format_shape
from ..types import TensorType

Attrs = Mapping[str, Any]
#: ``shape_rule(inputs, params, attrs, unify) -> output type``
ShapeRule = Callable[[Sequence[TensorType], Mapping[str, TensorType], Attrs, "Unifier"], TensorType]
#: ``param_spec(inputs, attrs) -> {name: shape}``; dims may be ``None`` while unknown.
ParamSpec = Callable[[Sequence[TensorType], Attrs], dict]
#: ``reference(inputs, params, attrs) -> ndarray``
Reference = Callable[[Sequence[np.ndarray], Mapping[str, np.ndarray], Attrs], np.ndarray]


class Unifier:
    """What shape rules use to demand that two dims agree.

    Equal dims pass; a symbol meeting a known size is bound to it; a provable conflict raises
    ``ShapeError`` quoting both sizes; anything undecidable becomes a run-time check.
    """

    def __init__(self) -> None:
        self.substitutions: dict[str, DimLike] = {}
        self.runtime_checks: list[tuple[DimLike, DimLike, str]] = []

    def resolve(self, dim: DimLike | None) -> DimLike | None:
        if not self.substitutions or not isinstance(dim, Dim):
            return dim
        while isinstance(dim, Dim) and dim.free_symbols & self.substitutions.keys():
            dim = dim.substitute(self.substitutions)
        return dim

    def dims(self, a: DimLike | None, b: DimLike | None, what: str) -> DimLike | None:
        """Unify two sizes; returns the more precise one. ``what`` names them in errors."""
        if a is b or (type(a) is int and a == b):
            return a
        a, b = self.resolve(a), self.resolve(b)
        if a is None:
            return b
        if b is None:
            return a
        verdict = definitely_equal(a, b)
        if verdict is True:
            return a
        if verdict is False:
            raise ShapeError(f"{what}: expected {format_dim(a)}, received {format_dim(b)}")
        # Undecided: bind a bare symbol, preferring to keep the more informative side.
        for sym, other in ((a, b), (b, a)):
            if isinstance(sym, Dim) and sym.is_symbol and sym.name not in _free(other):
                self.substitutions[sym.name] = other
                return other
        self.runtime_checks.append((a, b, what))
        return a

    def shapes(self, expected: Sequence[DimLike | None] | None,
               received: Sequence[DimLike | None] | None, what: str) -> tuple | None:
        if expected is None:
            return None if received is None else tuple(self.resolve(d) for d in received)
        if received is None:
            return tuple(self.resolve(d) for d in expected)
        if len(expected) != len(received):
            raise ShapeError(f"{what}: expected rank {len(expected)} "
                             f"{format_shape(tuple(expected))}, received rank {len(received)} "
                             f"{format_shape(tuple(received))}")
        return tuple(self.dims(e, r, f"{what} axis {i}")
                     for i, (e, r) in enumerate(zip(expected, received)))


def _free(dim: DimLike) -> frozenset:
    return getattr(dim, "free_symbols", frozenset())


# -- traits: what fusion (and other passes) may assume about an op, instead of its name --------
#: output element i depends on input element i only (same shape in and out)
ELEMENTWISE = "elementwise"
#: inputs broadcast NumPy-style (``compiler.broadcast``)
BROADCAST = "broadcast"
#: each output element is one input element, or a constant (reshape, padding, concatenation)
INJECTIVE = "injective"
#: output elements combine several input elements (pooling, normalisation, softmax)
REDUCTION = "reduction"
#: the kernel runs an epilogue on its output, which element-wise consumers can fold into
OUTPUT_FUSABLE = "output_fusable"
#: epilogue stages an output-fusable op's kernel applies (attrs ``activation``/``alpha``, and a
#: residual read element for element, attr ``residual``) ...
FUSES_ACTIVATION = "fuses_activation"
FUSES_RESIDUAL = "fuses_residual"
#: ... and the element-wise ops that are such a stage: a unary activation (its ``activation``
#: attr, else the op's name, e.g. a ``relu`` op) or a same-shape sum of two values
AS_ACTIVATION = "as_activation"
AS_RESIDUAL = "as_residual"
TRAITS = frozenset({ELEMENTWISE, BROADCAST, INJECTIVE, REDUCTION, OUTPUT_FUSABLE,
                    FUSES_ACTIVATION, FUSES_RESIDUAL, AS_ACTIVATION, AS_RESIDUAL})


@dataclass(frozen=True)
class OpDef:
    """One op, in one place."""

    name: str
    shape_rule: ShapeRule
    reference: Reference
    kernel: str
    param_spec: ParamSpec | None = None
    num_inputs: int | None = 1  # None: variadic, at least ``min_inputs``
    min_inputs: int = 1
    doc: str = ""
    #: rank the op expects when nothing is known (lets summary() show ``(N, 256)`` pre-build)
    natural_input_rank: int | None = None
    elementwise: bool = False
    #: inputs broadcast NumPy-style (``compiler.broadcast``); equal shapes are the fast case
    broadcast: bool = False
    extras: dict = field(default_factory=dict)
    #: fusion traits (see ``TRAITS``); ``elementwise``/``broadcast`` and the extras
    #: ``fuses_activation``/``fuses_residual`` are added to them
    traits: frozenset = frozenset()

    def __post_init__(self) -> None:
        implied = {ELEMENTWISE: self.elementwise, BROADCAST: self.broadcast,
                   FUSES_ACTIVATION: self.extras.get("fuses_activation", False),
                   FUSES_RESIDUAL: self.extras.get("fuses_residual", False)}
        traits = frozenset(self.traits) | {t for t, on in implied.items() if on}
        if traits & {FUSES_ACTIVATION, FUSES_RESIDUAL}:
            traits |= {OUTPUT_FUSABLE}
        unknown = traits - TRAITS
        if unknown:
            raise ValueError(f"op {self.name!r}: unknown traits {sorted(unknown)}; "
                             f"known: {sorted(TRAITS)}")
        object.__setattr__(self, "traits", traits)

    def arity(self, attrs: Attrs) -> tuple[int, int | None]:
        """``(fewest, most)`` data inputs a node of this op reads (``None``: no upper bound).

        An op that ``fuses_residual`` reads one more input once ``fuse`` folded an add into it
        (``attrs["residual"]``); a layer never passes that input itself.
        """
        if self.num_inputs is None:
            return self.min_inputs, None
        extra = 1 if FUSES_RESIDUAL in self.traits and attrs.get("residual") else 0
        return self.num_inputs + extra, self.num_inputs + extra

    def param_shapes(self, inputs: Sequence[TensorType], attrs: Attrs) -> dict:
        return dict(self.param_spec(inputs, attrs)) if self.param_spec else {}


_REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in _REGISTRY:
        raise ValueError(f"op {op.name!r} is registered twice")
    _REGISTRY[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}; registered: {sorted(_REGISTRY)}") from None


def registered_ops() -> dict[str, OpDef]:
    return dict(_REGISTRY)


def require_rank(t: TensorType, minimum: int, what: str, exact: bool = False) -> None:
    """Raise ``ShapeError`` when a known rank is too small (or not exact)."""
    if t.shape is None:
        return
    bad = len(t.shape) != minimum if exact else len(t.shape) < minimum
    if bad:
        need = f"rank {minimum}" if exact else f"rank >= {minimum}"
        raise ShapeError(f"{what} expects {need}, received rank {len(t.shape)} "
                         f"{format_shape(t.shape)}")


def check_arity(where: str | Callable[[], str], arity: tuple[int, int | None],
                received: int) -> None:
    """Raise ``CompilerError`` when ``where`` (a layer) is called on the wrong number of inputs.

    ``where`` may be a callable, evaluated only on error (reading a layer's name fixes it).

    Ops' internal slots (a fused residual) are not part of a layer's arity, so ``Conv2D(8, 3)(a,
    b)`` is refused instead of reading out of bounds later.
    """
    fewest, most = arity
    if fewest <= received and (most is None or received <= most):
        return
    if most is None:
        expected = f"at least {fewest} input{'s' if fewest > 1 else ''}"
    elif fewest == most:
        expected = f"{fewest} input(s)" if fewest == 1 else f"exactly {fewest} inputs"
    else:
        expected = f"{fewest} to {most} inputs"
    where = where() if callable(where) else where
    raise CompilerError(f"{where} takes {expected}, received {received}")
