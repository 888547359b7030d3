"""Vectorizable float32 ``tanh`` and ``sigmoid`` for the recurrent gates.

numba calls libm's scalar ``tanhf``/``expf`` per element, so a loop over a gate row cannot use
SIMD; these are plain arithmetic (clamp, two polynomials, one division), which LLVM turns into
AVX2 ``vfmadd``/``vdivps`` over 8 lanes. ``tanh`` is the 13/6-degree rational minimax
approximation Eigen and tract use (inputs clamped to +-7.9053, where float32 ``tanh`` is
already +-1): a few float32 ulp from the exact value (measured max error vs float64 ``tanh``:
see ``tests/test_fastmath.py``). ``sigmoid(x) = 0.5 + 0.5 tanh(x / 2)``, so its error is
absolute (~1e-7), not relative: tiny probabilities come out as ~1e-7, not e.g. 1e-20. NaN
passes through both (the clamps are written so a NaN fails both comparisons).
"""

import numpy as np
from numba import njit

from .flags import JIT

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}

_CLAMP = np.float32(7.90531110763549805)
_A1, _A3, _A5 = (np.float32(c) for c in (4.89352455891786e-03, 6.37261928875436e-04,
                                         1.48572235717979e-05))
_A7, _A9, _A11, _A13 = (np.float32(c) for c in (5.12229709037114e-08, -8.60467152213735e-11,
                                                2.00018790482477e-13, -2.76076847742355e-16))
_B0, _B2, _B4, _B6 = (np.float32(c) for c in (4.89352518554385e-03, 2.26843463243900e-03,
                                              1.18534705686654e-04, 1.19825839466702e-06))
_HALF = np.float32(0.5)


@njit(inline="always", **_INLINE)
def tanh32(v):
    """float32 ``tanh`` by a rational approximation (branch-free, so loops vectorize)."""
    x = _CLAMP if v > _CLAMP else v
    x = -_CLAMP if x < -_CLAMP else x
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return x * p / q


@njit(inline="always", **_INLINE)
def sigmoid32(v):
    """float32 logistic ``1 / (1 + exp(-v))`` as ``0.5 + 0.5 tanh(v / 2)``."""
    return _HALF + _HALF * tanh32(_HALF * v)


@njit(**JIT)
def tanh_array(x, out):
    """``out[:] = tanh32(x)`` over 1-D arrays: the tests' and the asm check's entry point."""
    for j in range(x.shape[0]):
        out[j] = tanh32(x[j])


@njit(**JIT)
def sigmoid_array(x, out):
    """``out[:] = sigmoid32(x)`` over 1-D arrays."""
    for j in range(x.shape[0]):
        out[j] = sigmoid32(x[j])
