"""conv2d / depthwise_conv2d: shape rules, kernels vs the NumPy reference, reference vs torch."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_harness import assert_kernel_matches, infer, params_for, reference

from compiler.errors import ShapeError
from compiler.symbolic import Dim
from runtime.kernels.conv import conv_algorithm

N, H, W = Dim.symbol("N"), Dim.symbol("H"), Dim.symbol("W")


def conv_attrs(filters=8, k=3, s=1, padding="valid", d=1, groups=1, **extra):
    attrs = {"filters": filters, "kernel_size": (k, k), "strides": (s, s), "padding": padding,
             "dilation": (d, d), "groups": groups, "use_bias": True, "activation": "linear"}
    attrs.update(extra)
    return attrs


# -- shape rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, attrs, expected", [
    ((2, 10, 12, 3), conv_attrs(), (2, 8, 10, 8)),
    ((2, 10, 12, 3), conv_attrs(padding="same"), (2, 10, 12, 8)),
    ((2, 10, 11, 3), conv_attrs(s=2, padding="same"), (2, 5, 6, 8)),
    ((2, 10, 11, 3), conv_attrs(s=2), (2, 4, 5, 8)),
    ((2, 10, 11, 3), conv_attrs(d=2), (2, 6, 7, 8)),
    ((2, 7, 7, 4), conv_attrs(k=1, s=2), (2, 4, 4, 8)),
    ((2, 7, 7, 4), conv_attrs(groups=2), (2, 5, 5, 8)),
    ((N, 10, 12, 3), conv_attrs(), (N, 8, 10, 8)),
    ((None, None, None, 3), conv_attrs(), (None, None, None, 8)),
    (None, conv_attrs(), (None, None, None, 8)),
])
def test_conv2d_shape_table(shape, attrs, expected):
    assert infer("conv2d", [shape], attrs).shape == expected


@pytest.mark.parametrize("k, s, d, padding", [
    (3, 1, 1, "valid"), (3, 2, 1, "same"), (3, 2, 1, "valid"), (5, 3, 2, "valid"),
    (2, 2, 1, "same"), (1, 1, 1, "same"), (4, 3, 1, "same"),
])
def test_conv2d_symbolic_sizes_evaluate_like_concrete(k, s, d, padding):
    attrs = conv_attrs(k=k, s=s, d=d, padding=padding)
    sym = infer("conv2d", [(N, H, W, 3)], attrs).shape
    assert sym[0] == N and sym[3] == 8
    for h in range(d * (k - 1) + 1, 30):
        concrete = infer("conv2d", [(1, h, h + 3, 3)], attrs).shape
        assert sym[1].evaluate({"H": h}) == concrete[1]
        assert sym[2].evaluate({"W": h + 3}) == concrete[2]


def test_conv2d_symbolic_forms():
    assert str(infer("conv2d", [(N, H, W, 3)], conv_attrs()).shape[1]) == str(H - 2)
    same2 = infer("conv2d", [(N, H, W, 3)], conv_attrs(s=2, padding="same")).shape[1]
    assert same2.evaluate({"H": 7}) == 4 and same2.evaluate({"H": 8}) == 4


def test_conv2d_channel_mismatch_quotes_both_sizes():
    with pytest.raises(ShapeError, match=r"input axis -1 \(channels\): expected 3, received 4"):
        infer("conv2d", [(1, 8, 8, 4)], conv_attrs(), {"kernel": (3, 3, 3, 8), "bias": (8,)})


def test_conv2d_symbolic_channels_bind_to_kernel():
    c = Dim.symbol("C")
    out = infer("conv2d", [(1, 8, 8, c)], conv_attrs(), {"kernel": (3, 3, 3, 8), "bias": (8,)})
    assert out.shape == (1, 6, 6, 8)


@pytest.mark.parametrize("shape, attrs, match", [
    ((1, 2, 8, 3), conv_attrs(), r"axis 1 \(height\) is too small.*size 3.*received 2"),
    ((1, 8, 4, 3), conv_attrs(d=2), r"axis 2 \(width\) is too small.*expected at least 5"),
    ((1, 8, 8, 6), conv_attrs(groups=4), r"multiple of groups=4, received 6"),
    ((1, 8, 8, 4), conv_attrs(filters=6, groups=4), r"filters must be a multiple of groups"),
    ((1, 8, 8), conv_attrs(), r"Conv2D expects rank 4"),
    ((1, 8, 8, 4), conv_attrs(padding="full"), r"padding must be 'valid' or 'same'"),
    ((1, 8, 8, 4), conv_attrs(s=0), r"strides must be a positive int"),
])
def test_conv2d_shape_errors(shape, attrs, match):
    with pytest.raises(ShapeError, match=match):
        infer("conv2d", [shape], attrs)


def test_conv2d_residual_must_match_output():
    attrs = conv_attrs(residual=True)
    assert infer("conv2d", [(N, 10, 10, 3), (N, 8, 8, 8)], attrs).shape == (N, 8, 8, 8)
    with pytest.raises(ShapeError, match=r"residual axis 1: expected 8, received 9"):
        infer("conv2d", [(2, 10, 10, 3), (2, 9, 8, 8)], attrs)


def test_depthwise_shape_rule():
    attrs = {"kernel_size": (3, 3), "strides": (2, 2), "padding": "same", "depth_multiplier": 2}
    assert infer("depthwise_conv2d", [(N, 9, 10, 4)], attrs).shape == (N, 5, 5, 8)
    assert infer("depthwise_conv2d", [(N, H, W, 4)], dict(attrs, padding="valid")
                 ).shape[1].evaluate({"H": 9}) == 4
    with pytest.raises(ShapeError, match=r"input axis -1 \(channels\): expected 3, received 4"):
        infer("depthwise_conv2d", [(1, 8, 8, 4)], attrs, {"kernel": (3, 3, 3, 2)})


# -- kernels vs reference ------------------------------------------------------------------------
ACTIVATIONS = st.sampled_from(["linear", "relu", "relu6", "leaky_relu", "tanh", "sigmoid"])


@st.composite
def conv_cases(draw):
    k = draw(st.sampled_from([1, 2, 3, 5]))
    s = draw(st.sampled_from([1, 2, 3]))
    d = draw(st.sampled_from([1, 1, 2]))
    groups = draw(st.sampled_from([1, 1, 2, 4]))
    cg = draw(st.integers(1, 5)) if draw(st.booleans()) else draw(st.sampled_from([16, 24]))
    og = draw(st.integers(1, 6)) if draw(st.booleans()) else 16
    padding = draw(st.sampled_from(["valid", "same"]))
    span = d * (k - 1) + 1
    h = draw(st.integers(span, span + 9))
    w = draw(st.integers(span, span + 9))
    n = draw(st.integers(1, 3))
    attrs = conv_attrs(filters=og * groups, k=k, s=s, padding=padding, d=d, groups=groups,
                       use_bias=draw(st.booleans()), residual=draw(st.booleans()),
                       activation=draw(ACTIVATIONS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return (n, h, w, cg * groups), attrs, dtype, draw(st.integers(0, 2**31 - 1))


def _conv_inputs(shape, attrs, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    params = params_for("conv2d", [x], attrs, rng)
    inputs = [x]
    if attrs.get("residual"):
        out = infer("conv2d", [shape], dict(attrs, residual=False), None, dtype).shape
        inputs.append(rng.standard_normal(out).astype(dtype))
    return inputs, params


@settings(max_examples=40, deadline=None)
@given(conv_cases())
def test_conv2d_kernel_matches_reference(case):
    shape, attrs, dtype, seed = case
    inputs, params = _conv_inputs(shape, attrs, dtype, seed)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert_kernel_matches("conv2d", inputs, params, attrs, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape, filters, padding", [
    ((4, 16, 16, 16), 16, "same"), ((4, 17, 15, 16), 24, "same"), ((16, 10, 12, 32), 17, "valid"),
    ((256, 1, 1, 16), 16, "same"), ((96, 2, 5, 16), 16, "same"), ((64, 9, 3, 16), 16, "valid"),
])
@pytest.mark.parametrize("residual", [False, True])
def test_conv2d_winograd_path(shape, filters, padding, residual):
    """3x3 stride-1 layers with >= 16 channels and enough tiles take the Winograd path."""
    attrs = conv_attrs(filters=filters, padding=padding, residual=residual, activation="relu")
    inputs, params = _conv_inputs(shape, attrs, np.float32, 7)
    out_shape = infer("conv2d", [shape], dict(attrs, residual=False),
                      {k: v.shape for k, v in params.items()}).shape
    assert conv_algorithm(params["kernel"].shape, out_shape, (1, 1), (1, 1), 1) == "winograd"
    assert_kernel_matches("conv2d", inputs, params, attrs)


@pytest.mark.parametrize("shape, filters", [((1, 14, 14, 32), 96), ((1, 13, 11, 16), 70),
                                             ((3, 8, 8, 16), 33)])
def test_conv2d_winograd_splits_a_small_images_channels(shape, filters, monkeypatch):
    """One block of tiles: threads take panels of output channels (uneven last panel), with
    bias, residual and a NaN tile recomputed exactly inside its panel."""
    import runtime.threads

    monkeypatch.setattr(runtime.threads, "_DYNAMIC", False)
    attrs = conv_attrs(filters=filters, padding="same", residual=True, activation="relu")
    inputs, params = _conv_inputs(shape, attrs, np.float32, 11)
    inputs[0][0, 3, 4, 2] = np.nan
    out_shape = inputs[1].shape
    assert conv_algorithm(params["kernel"].shape, out_shape, (1, 1), (1, 1), 1) == "winograd"
    got = assert_kernel_matches("conv2d", inputs, params, attrs, rtol=1e-4, atol=1e-4)
    assert np.isnan(got).any()


@pytest.mark.parametrize("shape", [(4, 16, 16, 16), (1, 14, 14, 32)])
def test_conv2d_winograd_softmax_is_row_wise(shape, monkeypatch):
    """A softmax conv on the Winograd path normalizes each pixel over all its channels (a small
    image keeps whole rows: no channel panels)."""
    import runtime.threads

    monkeypatch.setattr(runtime.threads, "_DYNAMIC", False)
    attrs = conv_attrs(filters=40, padding="same", activation="softmax")
    inputs, params = _conv_inputs(shape, attrs, np.float32, 13)
    out_shape = shape[:3] + (40,)
    assert conv_algorithm(params["kernel"].shape, out_shape, (1, 1), (1, 1), 1) == "winograd"
    got = assert_kernel_matches("conv2d", inputs, params, attrs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("activation", ["linear", "relu", "relu6", "leaky_relu"])
@pytest.mark.parametrize("k, s, padding", [(3, 1, "same"), (3, 2, "same"), (1, 1, "valid")])
def test_conv2d_nan_and_inf_propagate_like_reference(k, s, padding, activation):
    """Through every epilogue loop (its clamps are selects over unsigned indices)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 10, 9, 16)).astype(np.float32) * 4
    x[0, 2, 3, 5] = np.nan
    x[1, 6, 4, 0] = np.inf
    x[1, 0, 0, 1] = -np.inf
    attrs = conv_attrs(filters=16, k=k, s=s, padding=padding, activation=activation,
                       use_bias=True)
    params = params_for("conv2d", [x], attrs, rng)
    # inputs scaled by 4: outputs reach ~100, and Winograd's float32 rounding ~1e-5 absolute
    got = assert_kernel_matches("conv2d", [x], params, attrs, rtol=1e-4, atol=1e-4)
    assert np.isnan(got).any()
    assert np.isinf(got).any() == (activation != "relu6")  # ReLU6 clamps inf to 6


@pytest.mark.parametrize("shape, k, s, d, padding, groups", [
    ((2, 23, 21, 3), (7, 7), (2, 2), (1, 1), "same", 1),   # ResNet stem: edges and interior
    ((1, 13, 12, 4), (3, 5), (1, 2), (2, 1), "same", 1),   # dilated rows only: row copies
    ((2, 9, 10, 6), (3, 3), (2, 1), (1, 2), "valid", 1),   # dilated columns: tap by tap
    ((1, 11, 9, 6), (5, 5), (1, 1), (1, 1), "same", 2),    # grouped: tap by tap
    ((3, 6, 7, 5), (5, 7), (1, 1), (1, 1), "valid", 1),    # window as wide as the image
])
def test_conv2d_patch_rows_match_reference(shape, k, s, d, padding, groups):
    """im2col copies a filter row's taps in one run where the row is inside the image and
    falls back to tap-by-tap copies elsewhere: both against the reference."""
    rng = np.random.default_rng(sum(shape))
    attrs = {"filters": 8, "kernel_size": k, "strides": s, "padding": padding, "dilation": d,
             "groups": groups, "use_bias": True, "activation": "relu"}
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal(shape).astype(dtype)
        assert_kernel_matches("conv2d", [x], params_for("conv2d", [x], attrs, rng), attrs,
                              rtol=1e-4, atol=1e-4)


def test_conv2d_large_parallel_paths(monkeypatch):
    """Winograd, im2col and 1x1 layers big enough for threads, which they get even when other
    processes (a parallel test run) load the machine."""
    import runtime.threads

    monkeypatch.setattr(runtime.threads, "_DYNAMIC", False)
    rng = np.random.default_rng(5)
    for k, s in ((3, 1), (3, 2), (1, 1), (1, 2), (7, 2)):
        attrs = conv_attrs(filters=64, k=k, s=s, padding="same", activation="relu")
        x = rng.standard_normal((2, 30, 30, 32 if k != 7 else 3)).astype(np.float32)
        assert_kernel_matches("conv2d", [x], params_for("conv2d", [x], attrs, rng), attrs,
                              rtol=1e-4, atol=1e-4)


@st.composite
def depthwise_cases(draw):
    k = draw(st.sampled_from([1, 2, 3, 5]))
    s = draw(st.sampled_from([1, 2]))
    d = draw(st.sampled_from([1, 2]))
    span = d * (k - 1) + 1
    attrs = {"kernel_size": (k, k), "strides": (s, s), "dilation": (d, d),
             "padding": draw(st.sampled_from(["valid", "same"])),
             "depth_multiplier": draw(st.sampled_from([1, 1, 2, 3])),
             "use_bias": draw(st.booleans()), "activation": draw(ACTIVATIONS)}
    shape = (draw(st.integers(1, 3)), draw(st.integers(span, span + 8)),
             draw(st.integers(span, span + 8)), draw(st.integers(1, 40)))
    return shape, attrs, draw(st.sampled_from([np.float32, np.float64])), draw(st.integers(0, 99))


@settings(max_examples=30, deadline=None)
@given(depthwise_cases())
def test_depthwise_kernel_matches_reference(case):
    shape, attrs, dtype, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    assert_kernel_matches("depthwise_conv2d", [x], params_for("depthwise_conv2d", [x], attrs,
                                                                 rng), attrs)


# -- reference vs torch --------------------------------------------------------------------------
def _torch_same_pads(size, k, s, d):
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


@settings(max_examples=25, deadline=None)
@given(conv_cases())
def test_conv2d_reference_matches_torch(case):
    torch = pytest.importorskip("torch")
    shape, attrs, _, seed = case
    attrs = dict(attrs, residual=False, activation="linear")
    inputs, params = _conv_inputs(shape, attrs, np.float64, seed)
    x = inputs[0]
    k, s, d = attrs["kernel_size"][0], attrs["strides"][0], attrs["dilation"][0]
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    if attrs["padding"] == "same":
        (pt, pb), (pl, pr) = (_torch_same_pads(shape[1], k, s, d),
                              _torch_same_pads(shape[2], k, s, d))
        xt = torch.nn.functional.pad(xt, (pl, pr, pt, pb))
    w = torch.from_numpy(params["kernel"]).permute(3, 2, 0, 1)
    b = torch.from_numpy(params["bias"]) if "bias" in params else None
    want = torch.nn.functional.conv2d(xt, w, b, stride=s, dilation=d, groups=attrs["groups"])
    np.testing.assert_allclose(reference("conv2d", inputs, params, attrs),
                               want.permute(0, 2, 3, 1).numpy(), rtol=1e-9, atol=1e-9)


@settings(max_examples=20, deadline=None)
@given(depthwise_cases())
def test_depthwise_reference_matches_torch(case):
    torch = pytest.importorskip("torch")
    shape, attrs, _, seed = case
    attrs = dict(attrs, activation="linear")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    params = params_for("depthwise_conv2d", [x], attrs, rng)
    k, s, d = attrs["kernel_size"][0], attrs["strides"][0], attrs["dilation"][0]
    c, mult = shape[3], attrs["depth_multiplier"]
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    if attrs["padding"] == "same":
        (pt, pb), (pl, pr) = (_torch_same_pads(shape[1], k, s, d),
                              _torch_same_pads(shape[2], k, s, d))
        xt = torch.nn.functional.pad(xt, (pl, pr, pt, pb))
    # (kh, kw, C, M) -> (C*M, 1, kh, kw): output channel c*M + m, like Keras
    w = torch.from_numpy(params["kernel"].reshape(k, k, c * mult)).permute(2, 0, 1)[:, None]
    b = torch.from_numpy(params["bias"]) if "bias" in params else None
    want = torch.nn.functional.conv2d(xt, w, b, stride=s, dilation=d, groups=c)
    np.testing.assert_allclose(reference("depthwise_conv2d", [x], params, attrs),
                               want.permute(0, 2, 3, 1).numpy(), rtol=1e-9, atol=1e-9)


def test_conv2d_nonfinite_weights_and_softmax_rows():
    """inf weights leave the Winograd path; softmax needs whole rows even when panels split."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 16, 16, 16)).astype(np.float32)
    attrs = conv_attrs(filters=16, padding="same")
    params = params_for("conv2d", [x], attrs, rng)
    params["kernel"][1, 1, 3, 2] = np.inf
    assert_kernel_matches("conv2d", [x], params, attrs)
    attrs = conv_attrs(filters=96, k=3, s=2, padding="same", activation="softmax")
    x = rng.standard_normal((4, 40, 40, 8)).astype(np.float32)
    got = assert_kernel_matches("conv2d", [x], params_for("conv2d", [x], attrs, rng), attrs)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)
