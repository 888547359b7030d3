"""batch_norm / layer_norm: shape rules, kernels vs the NumPy reference, reference vs torch."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_harness import assert_kernel_matches, infer, params_for, reference

from compiler.errors import ShapeError
from compiler.ops import get_op
from compiler.symbolic import Dim
from compiler.types import TensorType

N = Dim.symbol("N")
NAMES = ["batch_norm", "layer_norm"]
POSITIVE = ("moving_variance",)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, 5), (N, 4, 4, 8), (N, 7), (None, 3)])
def test_norm_keeps_shape(name, shape):
    assert infer(name, [shape], {}).shape == shape


def test_param_specs_follow_keras_flags():
    x = [TensorType((N, 6))]
    assert get_op("batch_norm").param_shapes(x, {}) == {
        "gamma": (6,), "beta": (6,), "moving_mean": (6,), "moving_variance": (6,)}
    assert get_op("batch_norm").param_shapes(x, {"center": False, "scale": False}) == {
        "moving_mean": (6,), "moving_variance": (6,)}
    assert get_op("layer_norm").param_shapes(x, {"scale": False}) == {"beta": (6,)}
    assert get_op("layer_norm").param_shapes([TensorType(None)], {}) == {
        "gamma": (None,), "beta": (None,)}


@pytest.mark.parametrize("name, layer", [("batch_norm", "BatchNormalization"),
                                         ("layer_norm", "LayerNormalization")])
def test_feature_mismatch_is_reported(name, layer):
    params = {k: (5,) for k in get_op(name).param_shapes([TensorType((2, 5))], {})}
    with pytest.raises(ShapeError, match=rf"{layer}: input axis -1 .*expected 5, received 6"):
        infer(name, [(2, 6)], {}, params)
    with pytest.raises(ShapeError, match=rf"{layer} expects rank >= 1, received rank 0"):
        infer(name, [()], {}, params)


@st.composite
def norm_cases(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 6)) for _ in range(rank - 1)) + (draw(st.integers(1, 70)),)
    attrs = {"epsilon": draw(st.sampled_from([1e-3, 1e-5, 0.1])),
             "center": draw(st.booleans()), "scale": draw(st.booleans())}
    return shape, attrs, draw(st.sampled_from([np.float32, np.float64])), draw(st.integers(0, 99))


@settings(max_examples=50, deadline=None)
@given(norm_cases(), st.sampled_from(NAMES))
def test_norm_kernels_match_reference(case, name):
    shape, attrs, dtype, seed = case
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    params = params_for(name, [x], attrs, rng, positive=POSITIVE)
    assert_kernel_matches(name, [x], params, attrs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_norm_large_and_nan(name):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 32, 40)).astype(np.float32)
    x[3, 4, 5] = np.nan
    x[5, 0, 0] = np.inf
    params = params_for(name, [x], {}, rng, positive=POSITIVE)
    got = assert_kernel_matches(name, [x], params, {}, rtol=1e-4, atol=1e-4)
    assert np.isnan(got).any()


@settings(max_examples=30, deadline=None)
@given(norm_cases())
def test_batch_norm_reference_matches_torch(case):
    torch = pytest.importorskip("torch")
    shape, attrs, _, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    params = params_for("batch_norm", [x], attrs, rng, positive=POSITIVE)
    xt = torch.from_numpy(x.reshape(-1, shape[-1]))
    t = {k: torch.from_numpy(v) for k, v in params.items()}
    want = torch.nn.functional.batch_norm(xt, t["moving_mean"], t["moving_variance"],
                                          t.get("gamma"), t.get("beta"), training=False,
                                          eps=attrs["epsilon"])
    np.testing.assert_allclose(reference("batch_norm", [x], params, attrs),
                               want.numpy().reshape(shape), rtol=1e-10, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(norm_cases())
def test_layer_norm_reference_matches_torch(case):
    torch = pytest.importorskip("torch")
    shape, attrs, _, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    params = params_for("layer_norm", [x], attrs, rng)
    t = {k: torch.from_numpy(v) for k, v in params.items()}
    want = torch.nn.functional.layer_norm(torch.from_numpy(x), (shape[-1],), t.get("gamma"),
                                          t.get("beta"), eps=attrs["epsilon"])
    np.testing.assert_allclose(reference("layer_norm", [x], params, attrs), want.numpy(),
                               rtol=1e-9, atol=1e-10)
