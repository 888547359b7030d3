"""1-D sequence kernels over ``(N, T, C)``, run on the 2-D NHWC kernels through ``(N, 1, T, C)``
views: a 1-D convolution or pooling *is* the 2-D one with a window of height 1, so the GEMM
paths, fused epilogues and threading carry over at no cost (views, no copies).

Python-level launchers (numba cannot reshape every array layout the arena hands out); the work
happens in the jitted 2-D kernels they call.
"""

from __future__ import annotations

import numpy as np

from compiler.ops.sequence1d import (
    conv1d_geometry,
    non_negative_pair,
    pool1d_geometry,
    time_pads,
)

from .activations import epilogue_scalars
from .conv import conv2d_nhwc
from .pooling import avg_pool2d_parallel, max_pool2d_parallel, zero_padding2d_parallel
from .registry import Kernel, register_kernel


def _as_image(a: np.ndarray) -> np.ndarray:
    """``(N, T, C)`` as a ``(N, 1, T, C)`` image (a view)."""
    return a.reshape(a.shape[0], 1, a.shape[1], a.shape[2])


def conv1d(x, kernel, bias, out, stride, left, dilation, groups, code, alpha):
    """``out = act(conv1d(x, kernel) + bias)``; ``left`` zeros pad the start (the end's padding
    is implied by the output length)."""
    if out.size == 0:
        return
    empty = np.zeros((0, 0, 0, 0), out.dtype)
    conv2d_nhwc(_as_image(x), kernel.reshape((1,) + kernel.shape), bias, empty, _as_image(out),
                1, stride, 0, left, 1, dilation, groups, code, alpha)


def _conv1d_scalars(attrs, input_shapes, out_shape):
    k, stride, dilation, padding, groups = conv1d_geometry(attrs)
    left, _ = time_pads(input_shapes[0][1], out_shape[1], k, stride, dilation, padding)
    return (stride, left, dilation, groups, *epilogue_scalars(attrs))


register_kernel(Kernel("conv1d", conv1d, _conv1d_scalars, param_names=("kernel", "bias"),
                       optional_params=frozenset({"bias"})))


def _pool_launcher(pool2d):
    def launch(x, out, k, stride, left):
        if out.size:
            pool2d(_as_image(x), _as_image(out), 1, k, 1, stride, 0, left)
    launch.__name__ = launch.__qualname__ = pool2d.__name__.replace("2d_parallel", "1d")
    return launch


def _pool_scalars(layer: str):
    def scalars(attrs, input_shapes, out_shape):
        pool, stride, padding = pool1d_geometry(attrs, layer)
        left, _ = time_pads(input_shapes[0][1], out_shape[1], pool, stride, 1, padding)
        return pool, stride, left
    return scalars


register_kernel(Kernel("max_pool1d", _pool_launcher(max_pool2d_parallel),
                       _pool_scalars("MaxPooling1D")))
register_kernel(Kernel("avg_pool1d", _pool_launcher(avg_pool2d_parallel),
                       _pool_scalars("AveragePooling1D")))


def upsampling1d(x, out, size):
    """Each step repeated ``size`` times: ``out[:, t*size + r] = x[:, t]``."""
    n, t, c = x.shape
    out.reshape(n, t, size, c)[...] = x[:, :, None, :]


def zero_padding1d(x, out, left):
    if out.size:
        n, t, c = x.shape
        # time as the image height, one column wide: the 2-D kernel's rows are our steps
        zero_padding2d_parallel(x.reshape(n, t, 1, c), out.reshape(n, out.shape[1], 1, c),
                                left, 0)


def cropping1d(x, out, left):
    out[...] = x[:, left:left + out.shape[1]]


register_kernel(Kernel("upsampling1d", upsampling1d,
                       lambda attrs, shapes, out: (int(attrs["size"]),)))
register_kernel(Kernel("zero_padding1d", zero_padding1d,
                       lambda attrs, shapes, out: (
                           non_negative_pair(attrs["padding"], "padding", "ZeroPadding1D")[0],)))
register_kernel(Kernel("cropping1d", cropping1d,
                       lambda attrs, shapes, out: (
                           non_negative_pair(attrs["cropping"], "cropping", "Cropping1D")[0],)))
