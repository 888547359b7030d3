"""NumPy broadcasting over symbolic shapes: the one place that decides what ``a op b`` is shaped.

Shapes are right-aligned and the shorter one is padded with 1s (NumPy's rank broadcasting); then,
axis by axis: ``1`` vs ``d`` gives ``d``; provably equal dims give that dim; provably different
dims (``3`` vs ``4``) raise ``ShapeError``. Two dims that are not provably equal (``N`` vs ``M``,
``H - 2`` vs ``W``) are handed to the ``Unifier``, which keeps one and makes the equality a
run-time check: we never guess that a symbol is ``1``, so a plan is never silently wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import ShapeError
from .symbolic import DimLike, definitely_equal, format_dim, format_shape

if TYPE_CHECKING:
    from .ops.registry import Unifier

Shape = tuple  # of DimLike | None; a ``None`` shape means the rank is unknown


def broadcast_dims(a: DimLike | None, b: DimLike | None, unify: Unifier | None,
                   what: str) -> DimLike | None:
    """The broadcast of two sizes (``None`` = not inferred yet); ``what`` names them in errors."""
    if unify is not None:
        a, b = unify.resolve(a), unify.resolve(b)
    if a is None or b is None:
        known = b if a is None else a
        # ``?`` (not inferred yet) vs ``d``: ``d``, the only size that cannot be wrong once
        # ``?`` is known (then the rule runs again); ``?`` vs ``1`` stays unknown
        return None if isinstance(known, int) and known == 1 else known
    if isinstance(a, int) and a == 1:
        return b
    if isinstance(b, int) and b == 1:
        return a
    verdict = definitely_equal(a, b)
    if verdict is True:
        return a
    if verdict is False:
        raise ShapeError(f"{what}: expected {format_dim(a)}, received {format_dim(b)}")
    if unify is None:
        raise ShapeError(f"{what}: {format_dim(a)} and {format_dim(b)} are not provably equal")
    return unify.dims(a, b, what)


def expand_rank(shape: Shape, rank: int, after_batch: bool = False) -> Shape:
    """``shape`` padded with 1s to ``rank``: in front (NumPy), or right after axis 0 (Keras
    merge layers, whose inputs all start with the batch axis)."""
    ones = (1,) * (rank - len(shape))
    if after_batch and shape:
        return tuple(shape[:1]) + ones + tuple(shape[1:])
    return ones + tuple(shape)


def broadcast_shapes(shapes: Sequence[Shape | None], unify: Unifier | None = None,
                     what: str = "broadcast", after_batch: bool = False) -> Shape | None:
    """The NumPy broadcast of ``shapes``, with symbolic dims unified through ``unify``.

    Args:
        shapes: one shape per operand; a ``None`` shape (unknown rank) is assumed to broadcast
            (the result is re-derived once every rank is known).
        unify: records run-time checks for dims that are not provably equal; without one, such
            dims raise.
        what: names the operands in errors (e.g. ``"Add"``); the message adds the input index,
            the axis of the broadcast result and both shapes.
        after_batch: lower ranks gain their 1s after axis 0, not in front, so batch axes stay
            aligned (Keras 3's merge layers: ``(N, 4, 3) + (N, 3)`` is ``(N, 4, 3)``).
    Returns:
        The broadcast shape, or ``None`` when no operand's rank is known.
    """
    known = [(i, tuple(s)) for i, s in enumerate(shapes) if s is not None]
    if not known:
        return None
    first, result = known[0]
    for i, shape in known[1:]:
        rank = max(len(result), len(shape))
        left = expand_rank(result, rank, after_batch)
        right = expand_rank(shape, rank, after_batch)
        lhs = f"input {first}" if i == known[1][0] else f"inputs {first}..{i - 1}"
        out = []
        for axis, (a, b) in enumerate(zip(left, right)):
            try:
                out.append(broadcast_dims(a, b, unify, f"{what} input {i} vs {lhs} axis {axis}"))
            except ShapeError as e:
                raise ShapeError(f"{e} (shapes {format_shape(result)} and {format_shape(shape)} "
                                 f"do not broadcast)") from None
        result = tuple(out)
    return result
