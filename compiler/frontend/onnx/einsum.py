"""ONNX Einsum as transposes, reductions and batched matmuls.

Operands are contracted left to right, two at a time. In each pair every index is *batch* (in
both operands and still needed), *contracted* (in both, needed nowhere after), or *free* (in one
operand only); an index in one operand only that is needed nowhere after is summed away first.
The pair becomes ``A (batch, free_a, contracted) @ B (batch, contracted, free_b)``, with several
free or contracted indices merged by ``reshape_dims`` (batch axes copied, at most one merged size
known only at run time). That covers attention (``bhqd,bhkd->bhqk``), batched matmuls and
bilinear layers (``bi,oij,bj->bo``); traces, diagonals (an index twice in one operand) and
ellipses are refused by name with the equation.
"""

from __future__ import annotations

import re
from typing import Any

from ...symbolic import is_concrete, mul
from .converters import _fail, converter
from .graph import Importer, Tensor


def _parse(imp: Importer, equation: str, n_operands: int) -> tuple[list[str], str]:
    eq = equation.replace(" ", "")
    if "..." in eq:
        raise _fail(imp, f"Einsum equation {equation!r}: ellipsis ('...') is not supported")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if not all(re.fullmatch(r"[A-Za-z]*", t) for t in terms + [out]):
        raise _fail(imp, f"Einsum equation {equation!r} is malformed")
    if len(terms) != n_operands:
        raise _fail(imp, f"Einsum equation {equation!r} names {len(terms)} operands, the node "
                         f"has {n_operands}")
    if not arrow:  # implicit output: the indices seen once, sorted
        counts = {c: lhs.count(c) for c in set(lhs.replace(",", ""))}
        out = "".join(sorted(c for c, k in counts.items() if k == 1))
    for t in terms + [out]:
        if len(set(t)) != len(t):
            raise _fail(imp, f"Einsum equation {equation!r}: an index repeated within one "
                             f"operand ({t!r}: a trace or diagonal) is not supported")
    if set(out) - set(lhs):
        raise _fail(imp, f"Einsum equation {equation!r}: output indices {out!r} not in inputs")
    return terms, out


class _Term:
    """A run-time operand and the index letter of each of its axes."""

    def __init__(self, tensor: Tensor, letters: str):
        self.t, self.letters = tensor, letters

    def dim(self, c: str) -> Any:
        return self.t.type.shape[self.letters.index(c)]


def _sum_away(imp: Importer, term: _Term, keep: set) -> _Term:
    gone = [i for i, c in enumerate(term.letters) if c not in keep]
    if not gone:
        return term
    y = imp.emit("sum", [term.t], {"axis": tuple(gone), "keepdims": False})
    return _Term(y, "".join(c for c in term.letters if c in keep))


def _arrange(imp: Importer, term: _Term, order: str) -> Tensor:
    if term.letters == order:
        return term.t
    perm = tuple(term.letters.index(c) for c in order)
    return imp.emit("transpose", [term.t], {"axes": perm})


def _merged(dims: list) -> Any:
    size: Any = 1
    for d in dims:
        size = mul(size, d)
    return size


def _target(imp: Importer, n_batch: int, groups: list, equation: str,
            copy_first: bool) -> tuple:
    """``reshape_dims`` target: batch axes copied (0), each group's size, one ``-1``; the first
    group is copied too when it is one axis already in place."""
    out = [0] * n_batch
    unknown = 0
    for i, size in enumerate(groups):
        if i == 0 and copy_first:
            out.append(0)
        elif is_concrete(size):
            out.append(int(size))
        else:
            out.append(-1)
            unknown += 1
    if unknown > 1:
        raise _fail(imp, f"Einsum equation {equation!r}: merging axes whose sizes are known "
                         f"only at run time ({[str(g) for g in groups]}) is not supported")
    return tuple(out)


def _pair(imp: Importer, a: _Term, b: _Term, needed: set, equation: str) -> _Term:
    a = _sum_away(imp, a, needed | set(b.letters))
    b = _sum_away(imp, b, needed | set(a.letters))
    batch = "".join(c for c in a.letters if c in b.letters and c in needed)
    con = "".join(c for c in a.letters if c in b.letters and c not in needed)
    fa = "".join(c for c in a.letters if c not in b.letters)
    fb = "".join(c for c in b.letters if c not in a.letters)
    ta = _arrange(imp, a, batch + fa + con)
    tb = _arrange(imp, b, batch + con + fb)
    nb = len(batch)
    if len(fa) != 1 or len(con) != 1:
        ta = imp.emit("reshape_dims", [ta], {"shape": _target(imp, nb, [
            _merged([a.dim(c) for c in fa]), _merged([a.dim(c) for c in con])], equation,
            copy_first=len(fa) == 1)})
    if len(fb) != 1 or len(con) != 1:
        tb = imp.emit("reshape_dims", [tb], {"shape": _target(imp, nb, [
            _merged([b.dim(c) for c in con]), _merged([b.dim(c) for c in fb])], equation,
            copy_first=len(con) == 1)})
    y = imp.emit("matmul", [ta, tb])
    if len(fa) != 1 or len(fb) != 1:
        dims = [a.dim(c) for c in fa] + [b.dim(c) for c in fb]
        # a lone free index of A sits where the merged one was: copied (0), whatever its size
        target = [0 if (i == 0 and len(fa) == 1) else int(d) if is_concrete(d) else -1
                  for i, d in enumerate(dims)]
        if target.count(-1) > 1:
            raise _fail(imp, f"Einsum equation {equation!r}: splitting axes whose sizes are "
                             f"known only at run time ({[str(d) for d in dims]}) is not "
                             f"supported")
        y = imp.emit("reshape_dims", [y], {"shape": (0,) * nb + tuple(target)})
    return _Term(y, batch + fa + fb)


@converter("Einsum")
def _einsum(imp: Importer, node: Any, attrs: dict) -> list:
    equation = attrs.get("equation", "")
    equation = equation.decode() if isinstance(equation, bytes) else equation
    names = [n for n in node.input if n]
    terms, out = _parse(imp, equation, len(names))
    operands = []
    for name, letters in zip(names, terms):
        t = imp.tensor(name)
        if t.type.rank != len(letters):
            raise _fail(imp, f"Einsum equation {equation!r}: operand '{name}' has rank "
                             f"{t.type.rank}, the equation gives it {len(letters)} indices")
        operands.append(_Term(t, letters))
    acc = operands[0]
    for i, b in enumerate(operands[1:], start=1):
        later = set(out).union(*(set(t.letters) for t in operands[i + 1:]))
        acc = _pair(imp, acc, b, later, equation)
    acc = _sum_away(imp, acc, set(out))
    return [_arrange(imp, acc, out)]
