"""torchvision networks exported by ``torch.onnx.export`` (random weights, dynamic batch and,
where the net allows, dynamic sides), imported and compared with ONNX Runtime on the same file
at two batch sizes. Files are generated once and cached under pytest's cache directory."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
ort = pytest.importorskip("onnxruntime")

from compiler import compile  # noqa: E402
from compiler import onnx as conx  # noqa: E402

#: name -> (side, dynamic sides?); nets with adaptive pooling to a fixed size need their
#: native resolution
NETS = {
    "resnet18": (64, True), "mobilenet_v2": (64, True), "squeezenet1_1": (64, True),
    "resnet50": (64, True), "mobilenet_v3_small": (64, True), "densenet121": (64, True),
    "googlenet": (64, True), "shufflenet_v2_x1_0": (64, False), "efficientnet_b0": (64, True),
}
#: nets run step by step (the same kernels) instead of through the generated whole-plan
#: function: numba compiling that one function costs ~70-105 s of CPU for them (measured with
#: a cold cache: efficientnet_b0 146 vs 40 s, shufflenet_v2_x1_0 102 vs 32 s), too much for CI
STEPS = {"efficientnet_b0", "shufflenet_v2_x1_0"}
#: nets whose adaptive pooling (to 7x7 / 6x6) exports only at their native 224x224: dynamic
#: batch, checked at batch 1 only (the heaviest nets here; kept to one run)
NATIVE_224 = {"vgg11": (224, False), "alexnet": (224, False)}


def export(request, name: str) -> str:
    side, dynamic_hw = NETS[name] if name in NETS else NATIVE_224[name]
    folder = request.config.cache.mkdir("onnx-torchvision")
    path = folder / f"{name}-{side}-{torch.__version__}.onnx"
    if not path.exists():
        torch.manual_seed(0)
        kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
        net = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
        axes = {"input": {0: "batch"}, "output": {0: "batch"}}
        if dynamic_hw:
            axes["input"].update({2: "height", 3: "width"})
        tmp = path.with_suffix(".tmp")
        with torch.no_grad():
            torch.onnx.export(net, torch.randn(1, 3, side, side), str(tmp), dynamo=False,
                              opset_version=17, input_names=["input"], output_names=["output"],
                              dynamic_axes=axes)
        tmp.rename(path)
    return str(path)


@pytest.mark.parametrize("name", list(NETS))
def test_torchvision_net_matches_onnxruntime(request, name):
    path = export(request, name)
    side, dynamic_hw = NETS[name]
    model = conx.load(path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    # the declared signature: batch (and sides) symbolic
    plan = compile(model, executor="steps" if name in STEPS else "codegen")
    for batch in (1, 2):
        x = np.random.default_rng(batch).standard_normal((batch, 3, side, side)).astype(
            np.float32)
        expected = session.run(None, {"input": x})[0]
        got = plan(x)
        assert got.shape == expected.shape
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3 * scale)
    if dynamic_hw:  # the same plan, another resolution
        x = np.random.default_rng(3).standard_normal((1, 3, side + 32, side + 16)).astype(
            np.float32)
        expected = session.run(None, {"input": x})[0]
        np.testing.assert_allclose(plan(x), expected, rtol=0,
                                   atol=1e-3 * float(np.abs(expected).max()))


@pytest.mark.parametrize("name", list(NATIVE_224))
def test_native_224_net_matches_onnxruntime(request, name):
    path = export(request, name)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    expected = session.run(None, {"input": x})[0]
    got = compile(conx.load(path))(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3 * float(np.abs(expected).max()))
