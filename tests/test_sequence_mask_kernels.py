"""The jitted mask ops and 1-D global poolings (``runtime/kernels/sequence_masks.py``) against
their NumPy references, masked and not, with NaNs, empty rows and int ids."""

from __future__ import annotations

import numpy as np
import pytest

from compiler import Input, Model, compile, layers
from compiler.ops import get_op
from compiler.reference import run_reference
from runtime.kernels.registry import get_kernel

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("op,attrs", [("sequence_mask", {"mask_value": 0.0}),
                                      ("sequence_mask", {"mask_value": 1.5,
                                                         "reduce_last": True}),
                                      ("masking", {"mask_value": 0.0})])
def test_mask_kernels_match_the_reference(op, attrs):
    x = RNG.normal(size=(3, 5, 4)).astype(np.float32)
    x[0, 1] = attrs["mask_value"]
    x[2, 4, 0] = attrs["mask_value"]
    x[1, 2, 3] = np.nan  # NaN != value: kept
    expected = get_op(op).reference([x], {}, attrs)
    out = np.full(expected.shape, 7, expected.dtype)
    kernel = get_kernel(op)
    kernel.fn(x, out, *kernel.scalars(attrs, [x.shape], out.shape))
    np.testing.assert_array_equal(out, expected)


def test_sequence_mask_of_int_ids():
    ids = np.array([[3, 0, 1], [0, 0, 0]], np.int64)
    out = np.empty_like(ids)
    kernel = get_kernel("sequence_mask")
    kernel.fn(ids, out, *kernel.scalars({"mask_value": 0.0}, [ids.shape], out.shape))
    np.testing.assert_array_equal(out, ids != 0)


@pytest.mark.parametrize("steps", [1, 7])
def test_masked_and_plain_global_pools_in_a_plan_match_the_reference(steps):
    x = Input((None, 4))
    masked = layers.Masking(0.0)(x)
    model = Model(x, [layers.GlobalAveragePooling1D()(masked),
                      layers.GlobalMaxPooling1D(keepdims=True)(masked),
                      layers.GlobalAveragePooling1D(keepdims=True)(x)])
    a = RNG.normal(size=(4, steps, 4)).astype(np.float32)
    a[0, steps // 2:] = 0.0
    a[1] = 0.0          # every step masked: 0/0 = NaN, as Keras
    a[2, 0, 1] = np.nan  # NaN propagates through both pools
    plan = compile(model)
    for ours, ref in zip(plan(a), run_reference(plan.graph, a)):
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)
    assert np.isnan(plan(a)[0][1]).all()
