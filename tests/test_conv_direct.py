"""The direct few-channel conv kernel against the NumPy reference, the pass that picks it (and
prepares Winograd filters), and plans that recompute prepared filters after ``set_weights``."""

import numpy as np
import pytest
from op_harness import infer, params_for, reference

import runtime.threads
from compiler import Input, Sequential, TensorSpec, compile, layers
from compiler.applications import lenet5
from compiler.passes.prepare_conv import DIRECT_KERNEL, _winograd_filter, conv_algorithm
from runtime.kernels.conv import _winograd_weights
from runtime.kernels.conv_direct import pack_direct
from runtime.kernels.registry import empty_param, get_kernel


def conv_attrs(filters, k=(3, 3), s=(1, 1), d=(1, 1), padding="valid", groups=1, **extra):
    attrs = {"filters": filters, "kernel_size": k, "strides": s, "padding": padding,
             "dilation": d, "groups": groups, "use_bias": True, "activation": "relu"}
    attrs.update(extra)
    return attrs


def run_direct(inputs, params, attrs, prepared: bool):
    """``conv2d_direct`` with the kernel convention (packed filter given or computed inside)."""
    kernel = get_kernel(DIRECT_KERNEL)
    x = inputs[0]
    out_type = infer("conv2d", [x.shape for x in inputs], attrs,
                     {k: v.shape for k, v in params.items()}, x.dtype)
    out = np.full(out_type.shape, np.nan, dtype=x.dtype)  # catches unwritten cells
    packed = pack_direct(params["kernel"]) if prepared else empty_param(x.dtype)
    bias = params.get("bias", empty_param(x.dtype))
    kernel.fn(*inputs, params["kernel"], bias, packed, out,
              *kernel.scalars(attrs, [x.shape for x in inputs], out.shape))
    return out


@pytest.mark.parametrize("shape, attrs", [
    ((3, 28, 28, 1), conv_attrs(6, k=(5, 5), padding="same")),           # LeNet conv 1
    ((3, 14, 14, 6), conv_attrs(16, k=(5, 5))),                          # LeNet conv 2
    ((1, 23, 19, 3), conv_attrs(7, k=(7, 7), s=(2, 2), padding="same")),  # odd stem
    ((2, 17, 16, 3), conv_attrs(5, k=(3, 3), s=(2, 3), d=(2, 1))),
    ((3, 9, 11, 6), conv_attrs(9, k=(3, 2), s=(1, 2), d=(1, 2), padding="same", groups=3)),
    ((2, 8, 9, 4), conv_attrs(6, k=(1, 1), s=(2, 2), groups=2, activation="linear")),
    ((5, 7, 6, 2), conv_attrs(3, k=(3, 3), padding="same", activation="tanh", use_bias=False)),
    ((40, 9, 11, 4), conv_attrs(8, padding="same", groups=2, activation="leaky_relu",
                                alpha=0.3)),                             # parallel over images
    ((1, 40, 40, 2), conv_attrs(33, padding="same")),                    # 1 image: filter blocks
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_matches_reference(shape, attrs, dtype, monkeypatch):
    monkeypatch.setattr(runtime.threads, "_DYNAMIC", False)  # threads even on a loaded machine
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    params = params_for("conv2d", [x], attrs, rng)
    want = reference("conv2d", [x], params, attrs)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    threads = runtime.threads.get_num_threads()
    try:
        for count, prepared in ((1, False), (threads, False), (threads, True)):
            runtime.threads.set_num_threads(count)
            got = run_direct([x], params, attrs, prepared)
            assert got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    finally:
        runtime.threads.set_num_threads(threads)


def test_direct_residual_and_nan_like_reference():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 12, 13, 3)).astype(np.float32)
    x[0, 2, 3, 1] = np.nan
    x[2, 5, 5, 0] = np.inf
    attrs = conv_attrs(6, k=(5, 5), padding="same", residual=True, activation="linear")
    params = params_for("conv2d", [x], attrs, rng)
    residual = rng.standard_normal((4, 12, 13, 6)).astype(np.float32)
    want = reference("conv2d", [x, residual], params, attrs)
    got = run_direct([x, residual], params, attrs, prepared=True)
    assert np.isnan(want).any() and np.isinf(want).any()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, equal_nan=True)


def test_direct_softmax_takes_whole_pixels():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 7, 8, 1)).astype(np.float32)
    attrs = conv_attrs(4, k=(5, 5), padding="same", activation="softmax")
    params = params_for("conv2d", [x], attrs, rng)
    np.testing.assert_allclose(run_direct([x], params, attrs, prepared=False),
                               reference("conv2d", [x], params, attrs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel_shape, strides, groups, expected", [
    ((5, 5, 1, 6), (1, 1), 1, "direct"),     # LeNet
    ((5, 5, 6, 16), (1, 1), 1, "direct"),    # LeNet conv 2 (see prepare_conv: Dask workers)
    ((3, 3, 8, 16), (1, 1), 1, "direct"),    # 72 taps
    ((7, 7, 3, 64), (2, 2), 1, "gemm"),      # ResNet stem, 147 taps
    ((3, 3, 3, 32), (2, 2), 1, "gemm"),      # 27 taps: im2col measured faster
    ((3, 3, 1, 8), (1, 1), 1, "direct"),
    ((3, 3, 64, 64), (1, 1), 1, "winograd"),
    ((3, 3, 64, 64), (2, 2), 1, "gemm"),
    ((1, 1, 64, 128), (1, 1), 1, "gemm"),
])
def test_cost_model(kernel_shape, strides, groups, expected):
    assert conv_algorithm(kernel_shape, strides, (1, 1), groups, "relu") == expected


def test_prepared_winograd_filter_equals_the_runtime_transform():
    rng = np.random.default_rng(6)
    k = rng.standard_normal((3, 3, 16, 24)).astype(np.float32)
    u = _winograd_filter({"value": k}, {})
    np.testing.assert_allclose(u, _winograd_weights(k), rtol=1e-6, atol=1e-6)
    k[1, 1, 3, 4] = np.inf  # marked, so the runtime takes the exact path after one check
    assert np.isnan(_winograd_filter({"value": k}, {})[0, 0, 0])


def _kernels(plan):
    return [s.kernel for s in plan._steps if not s.alias]


def _prepared(plan):
    return {d["key"]: d for _, d in plan.graph.nodes(data=True) if d.get("prepared")}


def test_lenet_plan_runs_direct_convs_and_follows_set_weights():
    rng = np.random.default_rng(7)
    net = lenet5()
    x = rng.standard_normal((3, 28, 28, 1)).astype(np.float32)
    net(x)
    plan = compile(net, TensorSpec((None, 28, 28, 1)))
    assert _kernels(plan).count(DIRECT_KERNEL) == 2
    assert sum(k.endswith("+direct_conv_filter") for k in _prepared(plan)) == 2
    np.testing.assert_allclose(plan(x), net(x), rtol=1e-4, atol=1e-5)
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.2 for w in net.get_weights()]
    net.set_weights(weights)  # the packed filters follow their sources
    np.testing.assert_allclose(plan(x), net(x), rtol=1e-4, atol=1e-4)


def test_winograd_plan_uses_the_prepared_filter_and_follows_set_weights():
    rng = np.random.default_rng(8)
    net = Sequential([Input((12, 12, 16)), layers.Conv2D(16, 3, padding="same",
                                                         activation="relu")])
    x = rng.standard_normal((4, 12, 12, 16)).astype(np.float32)
    net(x)
    plan = compile(net, TensorSpec((None, 12, 12, 16)))
    assert _kernels(plan) == ["conv2d"]
    assert [k.rsplit("+", 1)[1] for k in _prepared(plan)] == ["winograd_filter"]
    np.testing.assert_allclose(plan(x), net(x), rtol=1e-4, atol=1e-4)
    kernel, bias = net.layers[0].get_weights()
    net.layers[0].set_weights([np.zeros_like(kernel), bias])
    np.testing.assert_allclose(plan(x), np.maximum(np.broadcast_to(bias, (4, 12, 12, 16)), 0),
                               rtol=1e-6)
    kernel[0, 0, 0, 0] = np.nan  # non-finite filter: the exact path, NaN only where it reaches
    net.layers[0].set_weights([kernel, bias])
    got = plan(x)
    want = net(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, equal_nan=True)
    assert np.isnan(got).any() and not np.isnan(got).all()
