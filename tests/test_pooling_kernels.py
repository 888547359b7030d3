"""Pooling and zero-padding kernels (serial and threaded) against NumPy references.

One compiled body serves max, average and global pooling (a typed ``is_max`` flag), so each
kernel is checked here directly, on sizes small enough to stay serial and large enough to
take the threaded path.
"""

import numpy as np
import pytest

from runtime.kernels import pooling
from runtime.kernels.flags import PARALLEL_MIN_ELEMENTS


def _reference_pool(x, k, s, pt, pl, out_hw, is_max):
    n, h, w, c = x.shape
    out = np.empty((n, *out_hw, c), x.dtype)
    for oy in range(out_hw[0]):
        for ox in range(out_hw[1]):
            y0, x0 = oy * s - pt, ox * s - pl
            window = x[:, max(y0, 0):min(y0 + k, h), max(x0, 0):min(x0 + k, w)]
            window = window.reshape(n, -1, c)
            if is_max:
                out[:, oy, ox] = window.max(axis=1)
            else:
                out[:, oy, ox] = window.astype(np.float64).mean(axis=1)
    return out


@pytest.mark.parametrize("shape", [(1, 9, 7, 3), (2, 34, 34, 64)])
@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("threaded", [False, True])
def test_window_pooling_matches_numpy(shape, is_max, threaded):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    x[0, 1, 1, 0] = np.nan  # max pooling propagates NaN like np.max
    k, s, pt, pl = 3, 2, 1, 1
    out_hw = ((shape[1] + 2 * pt - k) // s + 1, (shape[2] + 2 * pl - k) // s + 1)
    out = np.empty((shape[0], *out_hw, shape[3]), np.float32)
    name = ("max" if is_max else "avg") + "_pool2d" + ("_parallel" if threaded else "")
    getattr(pooling, name)(x, out, k, k, s, s, pt, pl)
    expected = _reference_pool(x, k, s, pt, pl, out_hw, is_max)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("threaded", [False, True])
def test_global_pooling_matches_numpy(batch, is_max, threaded):
    x = np.random.default_rng(1).standard_normal((batch, 64, 64, 8)).astype(np.float32) + 3
    assert not threaded or batch == 1 or x.size >= PARALLEL_MIN_ELEMENTS
    out = np.empty((batch, 8), np.float32)
    name = "global_" + ("max" if is_max else "avg") + "_pool2d" + ("_parallel" if threaded else "")
    getattr(pooling, name)(x, out)
    expected = x.max(axis=(1, 2)) if is_max else x.astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 5, 4, 3), (2, 40, 40, 16)])
@pytest.mark.parametrize("threaded", [False, True])
def test_zero_padding_matches_numpy(shape, threaded):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    top, left = 2, 1
    out = np.full((shape[0], shape[1] + 3, shape[2] + 4, shape[3]), np.nan, np.float32)
    fn = pooling.zero_padding2d_parallel if threaded else pooling.zero_padding2d
    fn(x, out, top, left)
    expected = np.pad(x, ((0, 0), (top, 1), (left, 3), (0, 0)))
    np.testing.assert_array_equal(out, expected)
