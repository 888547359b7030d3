"""A small U-Net-style decoder built in PyTorch (ConvTranspose, bilinear and nearest Resize,
a skip connection, InstanceNorm) exported to ONNX and compared with ONNX Runtime on the same file
at two batch sizes (dynamic batch). The file is generated once under pytest's cache dir."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from compiler import compile  # noqa: E402
from compiler import onnx as conx  # noqa: E402


class Decoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.down = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up = torch.nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1)
        self.norm = torch.nn.InstanceNorm2d(6, affine=True)
        self.mix = torch.nn.Conv2d(9, 4, 3, padding=1)

    def forward(self, x):
        h = torch.relu(self.down(x))                                    # 8 x 8
        u = self.norm(self.up(h))                                       # 16 x 16
        y = torch.relu(self.mix(torch.cat([u, x], 1)))                  # skip connection
        y = torch.nn.functional.interpolate(y, scale_factor=2, mode="bilinear",
                                            align_corners=False)        # 32 x 32
        return torch.nn.functional.interpolate(y, size=(40, 36), mode="nearest")


def exported(request) -> str:
    folder = request.config.cache.mkdir("onnx-decoder")
    path = folder / f"decoder-{torch.__version__}.onnx"
    if not path.exists():
        torch.manual_seed(0)
        net = Decoder().eval()
        with torch.no_grad():
            for p in net.norm.parameters():
                p.add_(torch.randn_like(p) * 0.3)
        tmp = path.with_suffix(".tmp")
        with torch.no_grad():
            torch.onnx.export(net, torch.randn(1, 3, 16, 16), str(tmp), dynamo=False,
                              opset_version=17, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        tmp.rename(path)
    return str(path)


def test_decoder_matches_onnxruntime(request):
    path = exported(request)
    model = conx.load(path)
    ops = model.op_histogram()
    assert ops["ConvTranspose"] == 1 and ops["Resize"] == 2, ops
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    plan = compile(model)
    for batch in (1, 2):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 16, 16)).astype(np.float32)
        expected = session.run(None, {"input": x})[0]
        got = plan(x)
        assert got.shape == expected.shape == (batch, 4, 40, 36)
        np.testing.assert_allclose(got, expected, rtol=0,
                                   atol=1e-4 * float(np.abs(expected).max()))
