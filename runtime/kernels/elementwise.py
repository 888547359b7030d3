"""Elementwise kernels: activations as standalone ops, and the alias kernels (no data moves)."""

import numpy as np
from numba import njit

from compiler.ops.activations import LEAKY_RELU_DEFAULT_SLOPE

from .activations import CODES, activate_row, activation_kernel, activation_kernel_parallel
from .flags import JIT
from .registry import Kernel, register_kernel


def _activation_scalars(attrs, input_shapes, out_shape):
    return CODES[attrs["activation"]], float(attrs.get("alpha", LEAKY_RELU_DEFAULT_SLOPE))


def _no_scalars(attrs, input_shapes, out_shape):
    return ()


def _alias(x: np.ndarray, out: np.ndarray) -> None:
    """Copy through. Plans never call it: the ``schedule`` pass marks these ops as aliases
    (a reshaped view of the input), so it only serves direct kernel calls."""
    np.copyto(out, x.reshape(out.shape))


register_kernel(Kernel("activation", activation_kernel, _activation_scalars,
                       parallel_fn=activation_kernel_parallel))
register_kernel(Kernel("identity", _alias, _no_scalars))
register_kernel(Kernel("reshape", _alias, _no_scalars))


@njit(**JIT)
def activation_chain_kernel(x, out, codes, alphas):
    """``out = f_k(...f_1(x))`` in one pass over the rows."""
    if out.size == 0:
        return
    cols = out.shape[-1] if out.ndim else 1
    src = x.reshape((out.size // cols, cols))
    dst = out.reshape((out.size // cols, cols))
    for i in range(dst.shape[0]):
        row = dst[i]
        row[:] = src[i]
        for c in range(codes.shape[0]):
            activate_row(row, codes[c], alphas[c])


def _chain_scalars(attrs, input_shapes, out_shape):
    chain = attrs["chain"]
    return (np.array([CODES[name] for name, _ in chain], np.int64),
            np.array([alpha for _, alpha in chain], np.float64))


register_kernel(Kernel("activation_chain", activation_chain_kernel, _chain_scalars))
