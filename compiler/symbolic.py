"""Symbolic dimensions: sizes such as the batch ``N`` that stay unknown until run time.

A dimension is a plain ``int`` when known, or a ``Dim``: an integer polynomial over symbols,
floor-division atoms and min/max atoms (enough for ``H - 2``, ``(H + 1) // 2``, ``H * W * 16``,
and ``min(T, 5)``: the length of a slice clamped to its axis). Expressions are kept
in a canonical form, so structural equality means "definitely equal". A hand-written module
rather than sympy: shape propagation of a 10,000-layer model must stay well under a second.
"""

from __future__ import annotations

from collections.abc import Mapping

Monomial = tuple  # sorted tuple of atom keys (a multiset), () for the constant term


class Dim:
    """An integer expression over named symbols, in canonical polynomial form."""

    __slots__ = ("_terms", "_atoms", "_hash")

    def __init__(self, terms: Mapping[Monomial, int], atoms: Mapping[str, _Atom]):
        self._terms = {m: c for m, c in terms.items() if c != 0}
        self._atoms = dict(atoms)
        self._hash = hash(frozenset(self._terms.items()))

    # -- construction -----------------------------------------------------------------------
    @staticmethod
    def symbol(name: str) -> Dim:
        """A fresh free symbol (``Dim.symbol("N")``)."""
        if not name or not isinstance(name, str):
            raise ValueError(f"a symbolic dimension needs a non-empty name, received {name!r}")
        atom = _Symbol(name)
        return Dim({(atom.key,): 1}, {atom.key: atom})

    # -- queries ----------------------------------------------------------------------------
    @property
    def free_symbols(self) -> frozenset[str]:
        names: set[str] = set()
        for atom in self._atoms.values():
            names |= atom.free_symbols
        return frozenset(names)

    @property
    def is_symbol(self) -> bool:
        """True for a bare symbol such as ``N`` (as opposed to ``N + 1`` or ``H // 2``)."""
        if len(self._terms) != 1:
            return False
        (mono, coeff), = self._terms.items()
        return coeff == 1 and len(mono) == 1 and isinstance(self._atoms[mono[0]], _Symbol)

    @property
    def name(self) -> str:
        return str(self)

    def evaluate(self, bindings: Mapping[str, int]) -> int:
        """The integer value once every free symbol is bound."""
        total = 0
        for mono, coeff in self._terms.items():
            value = coeff
            for key in mono:
                value *= self._atoms[key].evaluate(bindings)
            total += value
        return total

    def substitute(self, mapping: Mapping[str, DimLike]) -> DimLike:
        """Replace symbols by dims; returns an ``int`` when the result is constant."""
        if not (self.free_symbols & mapping.keys()):
            return self
        result: DimLike = 0
        for mono, coeff in self._terms.items():
            term: DimLike = coeff
            for key in mono:
                term = mul(term, self._atoms[key].substitute(mapping))
            result = add(result, term)
        return result

    # -- arithmetic -------------------------------------------------------------------------
    def __add__(self, other: DimLike) -> DimLike:
        return add(self, other)

    __radd__ = __add__

    def __sub__(self, other: DimLike) -> DimLike:
        return add(self, mul(other, -1))

    def __rsub__(self, other: DimLike) -> DimLike:
        return add(other, mul(self, -1))

    def __mul__(self, other: DimLike) -> DimLike:
        return mul(self, other)

    __rmul__ = __mul__

    def __floordiv__(self, other: int) -> DimLike:
        return floordiv(self, other)

    def __neg__(self) -> DimLike:
        return mul(self, -1)

    # -- identity ---------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dim) and self._terms == other._terms

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Dim({str(self)!r})"

    def __str__(self) -> str:
        def term_key(item):
            mono, _ = item
            return (-len(mono), [self._atoms[k].sort_key for k in mono])

        parts: list[str] = []
        for mono, coeff in sorted(self._terms.items(), key=term_key):
            factors = [self._atoms[k].render(len(self._terms) > 1 or len(mono) > 1) for k in mono]
            if not factors:
                body, mag = str(abs(coeff)), None
            else:
                body = "*".join(factors)
                mag = abs(coeff)
                if mag != 1:
                    body = f"{mag}*{body}"
            sign = "-" if coeff < 0 else "+"
            parts.append((sign, body))
        out = ""
        for i, (sign, body) in enumerate(parts):
            if i == 0:
                out = ("-" if sign == "-" else "") + body
            else:
                out += sign + body
        return out

    def __bool__(self) -> bool:  # a symbolic size is never "definitely zero"
        raise TypeError(f"the truth value of symbolic dimension {self} is unknown")

    def __index__(self) -> int:
        raise TypeError(f"symbolic dimension {self} has no integer value until it is bound")


DimLike = int | Dim


class _Symbol:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    @property
    def key(self) -> str:
        return self.name

    @property
    def sort_key(self) -> tuple:
        return (0, self.name)

    @property
    def free_symbols(self) -> frozenset[str]:
        return frozenset((self.name,))

    def evaluate(self, bindings: Mapping[str, int]) -> int:
        try:
            return int(bindings[self.name])
        except KeyError:
            raise KeyError(f"symbolic dimension {self.name} is not bound") from None

    def substitute(self, mapping: Mapping[str, DimLike]) -> DimLike:
        if self.name in mapping:
            return mapping[self.name]
        return Dim.symbol(self.name)

    def render(self, _: bool) -> str:
        return self.name


class _FloorDiv:
    """``numerator // divisor`` where the numerator is not a multiple of the divisor."""

    __slots__ = ("numerator", "divisor", "key")

    def __init__(self, numerator: Dim, divisor: int):
        self.numerator, self.divisor = numerator, divisor
        text = str(numerator)
        self.key = f"{text}//{divisor}" if numerator.is_symbol else f"({text})//{divisor}"

    @property
    def sort_key(self) -> tuple:
        return (1, self.key)

    @property
    def free_symbols(self) -> frozenset[str]:
        return self.numerator.free_symbols

    def evaluate(self, bindings: Mapping[str, int]) -> int:
        return self.numerator.evaluate(bindings) // self.divisor

    def substitute(self, mapping: Mapping[str, DimLike]) -> DimLike:
        return floordiv(self.numerator.substitute(mapping), self.divisor)

    def render(self, _: bool) -> str:
        return self.key


class _Extreme:
    """``min(a, b)`` or ``max(a, b)`` that depends on the symbols' values (a clamped slice)."""

    __slots__ = ("kind", "args", "key")

    def __init__(self, kind: str, a: DimLike, b: DimLike):
        self.kind = kind
        self.args = tuple(sorted((a, b), key=str))  # min(a, b) == min(b, a)
        self.key = f"{kind}({self.args[0]}, {self.args[1]})"

    @property
    def sort_key(self) -> tuple:
        return (2, self.key)

    @property
    def free_symbols(self) -> frozenset[str]:
        names: set[str] = set()
        for a in self.args:
            if isinstance(a, Dim):
                names |= a.free_symbols
        return frozenset(names)

    def evaluate(self, bindings: Mapping[str, int]) -> int:
        values = [a.evaluate(bindings) if isinstance(a, Dim) else a for a in self.args]
        return min(values) if self.kind == "min" else max(values)

    def substitute(self, mapping: Mapping[str, DimLike]) -> DimLike:
        a, b = (x.substitute(mapping) if isinstance(x, Dim) else x for x in self.args)
        return minimum(a, b) if self.kind == "min" else maximum(a, b)

    def render(self, _: bool) -> str:
        return self.key


_Atom = _Symbol | _FloorDiv | _Extreme


def _as_terms(value: DimLike) -> tuple[dict, dict]:
    if isinstance(value, Dim):
        return value._terms, value._atoms
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return ({(): int(value)} if value else {}), {}
    raise TypeError(f"a dimension must be an int or a Dim, received {value!r}")


def _normalize(terms: dict, atoms: dict) -> DimLike:
    terms = {m: c for m, c in terms.items() if c != 0}
    if not terms:
        return 0
    if set(terms) == {()}:
        return terms[()]
    used = {k for m in terms for k in m}
    return Dim(terms, {k: atoms[k] for k in used})


def add(a: DimLike, b: DimLike) -> DimLike:
    """``a + b`` for ints and Dims."""
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    ta, aa = _as_terms(a)
    tb, ab = _as_terms(b)
    terms = dict(ta)
    for m, c in tb.items():
        terms[m] = terms.get(m, 0) + c
    return _normalize(terms, {**aa, **ab})


def mul(a: DimLike, b: DimLike) -> DimLike:
    """``a * b`` for ints and Dims."""
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    ta, aa = _as_terms(a)
    tb, ab = _as_terms(b)
    terms: dict = {}
    for ma, ca in ta.items():
        for mb, cb in tb.items():
            m = tuple(sorted(ma + mb))
            terms[m] = terms.get(m, 0) + ca * cb
    return _normalize(terms, {**aa, **ab})


def floordiv(a: DimLike, divisor: int) -> DimLike:
    """``a // divisor`` (``divisor`` a positive int); exact when every coefficient divides."""
    if not isinstance(divisor, int) or divisor <= 0:
        raise ValueError(f"can only divide a dimension by a positive int, received {divisor!r}")
    if isinstance(a, int):
        return a // divisor
    if divisor == 1:
        return a
    terms, atoms = _as_terms(a)
    if all(c % divisor == 0 for c in terms.values()):
        return _normalize({m: c // divisor for m, c in terms.items()}, atoms)
    # Pull out the constant part that divides exactly, keeping a canonical numerator in [0, d).
    const = terms.get((), 0)
    shift = const - const % divisor
    rest = dict(terms)
    rest[()] = const - shift
    numerator = _normalize(rest, atoms)
    if isinstance(numerator, int):
        return numerator // divisor + shift // divisor
    atom = _FloorDiv(numerator, divisor)
    return add(Dim({(atom.key,): 1}, {atom.key: atom}), shift // divisor)


def ceildiv(a: DimLike, divisor: int) -> DimLike:
    """``ceil(a / divisor)``."""
    return floordiv(add(a, divisor - 1), divisor)


def _extreme(kind: str, a: DimLike, b: DimLike) -> DimLike:
    diff = add(a, mul(b, -1))
    if isinstance(diff, int):  # provable (both ints, or a and b differ by a constant)
        return (a if diff <= 0 else b) if kind == "min" else (a if diff >= 0 else b)
    atom = _Extreme(kind, a, b)
    return Dim({(atom.key,): 1}, {atom.key: atom})


def minimum(a: DimLike, b: DimLike) -> DimLike:
    """``min(a, b)`` for ints and Dims (an atom when it depends on the symbols)."""
    return _extreme("min", a, b)


def maximum(a: DimLike, b: DimLike) -> DimLike:
    """``max(a, b)`` for ints and Dims (an atom when it depends on the symbols)."""
    return _extreme("max", a, b)


def is_concrete(dim: object) -> bool:
    return isinstance(dim, int) and not isinstance(dim, bool)


def definitely_equal(a: DimLike | None, b: DimLike | None) -> bool | None:
    """True / False when provable, None when it depends on the symbols' values."""
    if a is None or b is None:
        return None
    diff = add(a, mul(b, -1))
    if isinstance(diff, int):
        return diff == 0
    return None


def format_dim(dim: DimLike | None) -> str:
    if dim is None:
        return "?"
    return str(dim)


def format_shape(shape: tuple | None) -> str:
    """``(N, 256)``; ``?`` marks a size not inferred yet; ``(...)`` an unknown rank."""
    if shape is None:
        return "(...)"
    inner = ", ".join(format_dim(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"
