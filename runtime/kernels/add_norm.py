"""``add_layer_norm``: each row's sum is written once and normalized while it is in L1,
instead of an ``add`` pass over the whole tensor and a ``layer_norm`` pass reading it back."""


from numba import njit, prange

from .flags import JIT, PARALLEL_MIN_ELEMENTS
from .normalization import _epsilon_scalars, _layer_norm_row
from .registry import Kernel, register_kernel

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}


@njit(inline="always", **_INLINE)
def _row(a, b, dst, gamma, beta, epsilon):
    for j in range(dst.shape[0]):
        dst[j] = a[j] + b[j]  # rounded to the dtype, as a separate add would store it
    _layer_norm_row(dst, dst, gamma, beta, epsilon)  # in place: each loop reads j before writing j


@njit(parallel=True, **JIT)
def _add_layer_norm_parallel(a2d, b2d, out2d, gamma, beta, epsilon):
    for i in prange(out2d.shape[0]):
        _row(a2d[i], b2d[i], out2d[i], gamma, beta, epsilon)


@njit(**JIT)
def _add_layer_norm_serial(a2d, b2d, out2d, gamma, beta, epsilon):
    for i in range(out2d.shape[0]):
        _row(a2d[i], b2d[i], out2d[i], gamma, beta, epsilon)


def add_layer_norm(a, b, gamma, beta, out, epsilon):
    """``layer_norm(a + b)`` per row of the last axis; statistics accumulate in float64."""
    if out.size == 0:
        return
    c = out.shape[-1]
    a2d, b2d, out2d = a.reshape(-1, c), b.reshape(-1, c), out.reshape(-1, c)
    big = out.size >= PARALLEL_MIN_ELEMENTS and out2d.shape[0] > 1
    run = _add_layer_norm_parallel if big else _add_layer_norm_serial
    run(a2d, b2d, out2d, gamma, beta, float(epsilon))


register_kernel(Kernel("add_layer_norm", add_layer_norm, _epsilon_scalars,
                       param_names=("gamma", "beta"),
                       optional_params=frozenset({"gamma", "beta"})))
