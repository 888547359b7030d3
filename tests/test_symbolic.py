"""Symbolic dims: canonical forms, provable (in)equality, evaluation."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler.symbolic import Dim, ceildiv, definitely_equal, floordiv, format_shape

N, H, W = Dim.symbol("N"), Dim.symbol("H"), Dim.symbol("W")


def test_arithmetic_folds_to_ints_when_constant():
    assert N - N == 0 and isinstance(N - N, int)
    assert (H + 2) - 2 == H
    assert (2 * H) // 2 == H
    assert floordiv(6 * H + 4, 2) == 3 * H + 2


def test_canonical_form_makes_structural_equality_definite():
    assert H * W * 16 == 16 * (W * H)
    assert definitely_equal(H - 2, H - 2) is True
    assert definitely_equal(H - 2, H - 3) is False
    assert definitely_equal(H, W) is None
    assert definitely_equal(H, None) is None


def test_rendering():
    assert str(H - 2) == "H-2"
    assert str(ceildiv(H, 2)) == "(H+1)//2"
    assert format_shape((N, H - 2, None, 16)) == "(N, H-2, ?, 16)"
    assert format_shape((N,)) == "(N,)" and format_shape(None) == "(...)"


def test_symbols_refuse_to_act_as_ints():
    with pytest.raises(TypeError, match="unknown"):
        bool(N)
    with pytest.raises(TypeError, match="no integer value"):
        range(N)
    with pytest.raises(ValueError, match="positive int"):
        floordiv(N, 0)


def test_substitute_and_evaluate():
    e = (H - 3) // 2 + 1
    assert e.substitute({"H": 9}) == 4
    assert (H * W).substitute({"H": 3}) == 3 * W
    with pytest.raises(KeyError, match="not bound"):
        e.evaluate({})


@given(h=st.integers(0, 500), w=st.integers(0, 500), k=st.integers(1, 7), s=st.integers(1, 4),
       c=st.integers(-10, 10))
def test_expressions_evaluate_like_python_ints(h, w, k, s, c):
    exprs = [
        (lambda a, b: (a - k) // s + 1),
        (lambda a, b: -(-a // s)),
        (lambda a, b: a * b * k + c),
        (lambda a, b: (a + c) // s * (b - k)),
    ]
    for f in exprs:
        symbolic = f(H, W)
        value = symbolic.evaluate({"H": h, "W": w}) if isinstance(symbolic, Dim) else symbolic
        assert value == f(h, w)
    assert ceildiv(H, s).evaluate({"H": h}) == -(-h // s)


def test_min_and_max_of_dims_simplify_when_provable_and_evaluate_when_bound():
    from compiler.symbolic import maximum, minimum

    t, u = Dim.symbol("T"), Dim.symbol("U")
    assert minimum(3, 5) == 3 and maximum(3, 5) == 5
    assert minimum(t, t + 2) == t and maximum(t - 1, t) == t  # the difference is a constant
    clamped = maximum(minimum(t, 5) - 2, 0)  # length of x[2:5] on an axis of size T
    assert [clamped.evaluate({"T": n}) for n in (1, 3, 9)] == [0, 1, 3]
    assert minimum(t, u) == minimum(u, t)
    assert minimum(t, u).free_symbols == {"T", "U"}
    assert minimum(t, u).substitute({"T": 4, "U": 7}) == 4
    assert str(minimum(t, 5)) == "min(5, T)"
