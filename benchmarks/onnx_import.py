"""R1-R4: torchvision networks exported to ONNX, imported by ``compiler.onnx`` and timed against
ONNX Runtime on the same file (2 threads each).

R1-R3 time inference (ours checked against ORT first, rtol 1e-3 of the output scale); R4 times
``load`` + ``compile`` of ResNet-50 in a fresh process with a warm numba cache against ORT's
session creation. Exported files are cached in ``$DEFERC_BENCH_DIR`` (default
``~/.cache/deferc-bench``), keyed by the torch version.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .context import RunContext
from .inference import check_and_time, comparison_rows
from .records import Row, Target
from .timing import summarize

PEER = "onnxruntime"


@dataclass(frozen=True)
class OnnxWorkload:
    id: str
    title: str
    net: str  # a torchvision.models constructor
    side: int
    batch: int
    target: Target

    @property
    def case(self) -> str:
        return f"batch {self.batch}, {self.side}x{self.side}x3 (NCHW file)"

    def steps(self) -> int:
        return 3


def exported(net: str, side: int) -> Path:
    """The ONNX file of torchvision ``net`` (random weights, dynamic batch), made once."""
    import torch
    import torchvision

    folder = Path(os.environ.get("DEFERC_BENCH_DIR", Path.home() / ".cache" / "deferc-bench"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{net}-{side}-{torch.__version__}.onnx"
    if not path.exists():
        torch.manual_seed(0)
        model = getattr(torchvision.models, net)(weights=None).eval()
        tmp = path.with_suffix(".tmp")
        with torch.no_grad():
            torch.onnx.export(model, torch.randn(1, 3, side, side), str(tmp), dynamo=False,
                              opset_version=17, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        tmp.rename(path)
    return path


def _session(path: Path):
    import onnx

    from .peers.onnx_peer import make_session

    return make_session(onnx.load(str(path)))


def profiled(wl: OnnxWorkload, seed: int) -> tuple:
    """``(plan, x)``: the imported net compiled to jitted code and its input (``--profile``)."""
    from compiler import compile
    from compiler import onnx as conx

    plan = compile(conx.load(exported(wl.net, wl.side)), tier="jit")
    x = np.random.default_rng(seed).standard_normal(
        (wl.batch, 3, wl.side, wl.side)).astype(np.float32)
    return plan, x


def run_onnx_inference(ctx: RunContext, wl: OnnxWorkload) -> list[Row]:
    bar = ctx.progress
    bar.describe(f"{wl.id}: export + import {wl.net}")
    path = exported(wl.net, wl.side)
    plan, x = profiled(wl, ctx.seed)
    expected = np.array(plan(x), copy=True)
    bar.step()

    def attempt():
        session = _session(path)
        return (lambda: session.run(None, {"input": x})), session.run(None, {"input": x})[0]

    timings, statuses = check_and_time(ctx, wl.id, lambda: plan(x), expected, {PEER: attempt})
    return comparison_rows(wl.id, wl.case, (PEER,), timings, None, {PEER: wl.target}, statuses)


_IMPORT_SNIPPET = """
import sys, time
start = time.perf_counter()
from compiler import compile
from compiler import onnx as conx
plan = compile(conx.load(sys.argv[1]), tier="jit")  # ready to run at compiled speed
print(time.perf_counter() - start)
"""
_SESSION_SNIPPET = """
import sys, time
start = time.perf_counter()
import onnx
from benchmarks.peers.onnx_peer import make_session
make_session(onnx.load(sys.argv[1]))
print(time.perf_counter() - start)
"""


def _fresh_process_seconds(snippet: str, path: Path) -> float:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", snippet, str(path)], capture_output=True,
                         text=True, cwd=root, timeout=1800, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run_r4(ctx: RunContext) -> list[Row]:
    """Import + compile of ResNet-50 in a fresh process (numba cache warmed by a first run) vs
    ORT session creation in a fresh process; wall seconds, imports included on both sides."""
    bar = ctx.progress
    bar.describe("R4: export resnet50, warm the cache")
    path = exported("resnet50", 224)
    _fresh_process_seconds(_IMPORT_SNIPPET, path)  # warms the on-disk numba cache
    bar.step()
    repeat = max(1, ctx.subprocess_repeat)
    bar.describe("R4: timing import + compile")
    ours = summarize([_fresh_process_seconds(_IMPORT_SNIPPET, path) for _ in range(repeat)])
    bar.step()
    bar.describe("R4: timing ORT session creation")
    peer = summarize([_fresh_process_seconds(_SESSION_SNIPPET, path) for _ in range(repeat)])
    bar.step()
    target = Target("time_ratio", "<=", 2.0, "<= 2x ORT session creation")
    return [Row("R4", "ResNet-50 224x224 file, fresh process, warm numba cache", peer=PEER,
                ours=ours.median, ours_iqr=ours.iqr, peer_value=peer.median,
                peer_iqr=peer.iqr, target=target, checked=True)]


def _faster(bound: float) -> Target:
    return Target("time_ratio", "<=", bound, f"<= {bound:g}x ONNX Runtime")


ONNX_WORKLOADS = [
    OnnxWorkload("R1", "ResNet-50 from ONNX", "resnet50", 224, 1, _faster(1.25)),
    OnnxWorkload("R2", "MobileNetV2 from ONNX", "mobilenet_v2", 224, 1, _faster(1.25)),
    OnnxWorkload("R3", "SqueezeNet 1.1 from ONNX", "squeezenet1_1", 224, 8, _faster(1.25)),
]
