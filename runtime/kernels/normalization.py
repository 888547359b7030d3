"""Batch norm (inference) and layer norm over the last axis, row-parallel."""

import math

import numpy as np
from numba import njit, prange

from compiler.ops.normalization import DEFAULT_EPSILON

from .flags import JIT, PARALLEL_MIN_ELEMENTS
from .registry import Kernel, register_kernel

_INLINE = {k: v for k, v in JIT.items() if k != "cache"}


@njit(inline="always", **_INLINE)
def _scale_shift_row(src, dst, scale, shift):
    for j in range(dst.shape[0]):
        dst[j] = src[j] * scale[j] + shift[j]


@njit(parallel=True, **JIT)
def _affine_parallel(x2d, out2d, scale, shift):
    for i in prange(x2d.shape[0]):
        _scale_shift_row(x2d[i], out2d[i], scale, shift)


@njit(**JIT)
def _affine_serial(x2d, out2d, scale, shift):
    for i in range(x2d.shape[0]):
        _scale_shift_row(x2d[i], out2d[i], scale, shift)


def batch_norm(x, gamma, beta, moving_mean, moving_variance, out, epsilon):
    """``out = (x - mean) * gamma / sqrt(var + eps) + beta``, folded into one scale and shift."""
    if out.size == 0:
        return
    c = out.shape[-1]
    inv = 1.0 / np.sqrt(moving_variance.astype(np.float64) + epsilon)
    if gamma.size:
        inv = inv * gamma
    shift = -moving_mean * inv
    if beta.size:
        shift = shift + beta
    scale, shift = inv.astype(out.dtype), shift.astype(out.dtype)
    x2d, out2d = x.reshape(-1, c), out.reshape(-1, c)
    big = out.size >= PARALLEL_MIN_ELEMENTS and x2d.shape[0] > 1
    (_affine_parallel if big else _affine_serial)(x2d, out2d, scale, shift)


def _epsilon_scalars(attrs, input_shapes, out_shape):
    return (float(attrs.get("epsilon", DEFAULT_EPSILON)),)


register_kernel(Kernel("batch_norm", batch_norm, _epsilon_scalars,
                       param_names=("gamma", "beta", "moving_mean", "moving_variance"),
                       optional_params=frozenset({"gamma", "beta"})))


@njit(inline="always", **_INLINE)
def _layer_norm_row(src, dst, gamma, beta, epsilon):
    n = src.shape[0]
    if n == 0:
        return
    mean = 0.0
    for j in range(n):
        mean += src[j]
    mean /= n
    var = 0.0
    for j in range(n):
        d = src[j] - mean
        var += d * d
    inv = 1.0 / math.sqrt(var / n + epsilon)
    has_gamma, has_beta = gamma.shape[0] > 0, beta.shape[0] > 0
    for j in range(n):
        y = (src[j] - mean) * inv
        if has_gamma:
            y *= gamma[j]
        if has_beta:
            y += beta[j]
        dst[j] = y


@njit(parallel=True, **JIT)
def _layer_norm_parallel(x2d, out2d, gamma, beta, epsilon):
    for i in prange(x2d.shape[0]):
        _layer_norm_row(x2d[i], out2d[i], gamma, beta, epsilon)


@njit(**JIT)
def _layer_norm_serial(x2d, out2d, gamma, beta, epsilon):
    for i in range(x2d.shape[0]):
        _layer_norm_row(x2d[i], out2d[i], gamma, beta, epsilon)


def layer_norm(x, gamma, beta, out, epsilon):
    """Per row of the last axis; statistics accumulate in float64 (scalars are doubles)."""
    if out.size == 0:
        return
    c = out.shape[-1]
    x2d, out2d = x.reshape(-1, c), out.reshape(-1, c)
    big = out.size >= PARALLEL_MIN_ELEMENTS and x2d.shape[0] > 1
    (_layer_norm_parallel if big else _layer_norm_serial)(x2d, out2d, gamma, beta,
                                                          float(epsilon))


register_kernel(Kernel("layer_norm", layer_norm, _epsilon_scalars,
                       param_names=("gamma", "beta"), optional_params=frozenset({"gamma", "beta"})))
