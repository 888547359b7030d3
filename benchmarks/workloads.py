"""The registry of workloads: ids, what they run, and the targets from the performance spec.

To add a dense workload, describe its model with ``modelspec`` configs and register an
``InferenceWorkload``; a conv workload names a model in ``ours_graph.MODELS`` and registers a
``GraphWorkload``; a scale-out (dask) workload registers a ``ScaleOutWorkload``; or register
any ``run(ctx) -> list[Row]`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .build_time import SIZES, run_w6
from .cold_start import run_t
from .context import RunContext
from .graph_inference import GraphWorkload, run_graph_inference
from .graph_inference import describe as describe_graph
from .inference import InferenceWorkload, describe, run_inference
from .modelspec import DenseConfig, mlp
from .records import Row, Target
from .scale_out import ScaleOutWorkload, run_scale_out
from .scale_out import describe as describe_scale_out
from .sequence import EncoderWorkload, run_encoder
from .sequence import describe as describe_encoder
from .startup import run_w5


@dataclass(frozen=True)
class Workload:
    id: str
    title: str
    steps: Callable[[RunContext], int]
    run: Callable[[RunContext], list[Row]]
    #: what ``--profile`` builds (W, C, S and R workloads); None: not profilable
    spec: Any = None


def _faster(bound: float, peer: str) -> Target:
    return Target("time_ratio", "<=", bound, f"<= {bound:g}x {peer}")


SEED_IN, SEED_LAYERS = mlp(20, [256], 10)

_INFERENCE = [
    InferenceWorkload(
        "W1", "seed MLP, latency per call", SEED_IN, SEED_LAYERS, batch=2,
        targets={"onnxruntime": _faster(0.25, "ONNX Runtime"),
                 "torch": _faster(0.10, "PyTorch eager")}),
    InferenceWorkload(
        "W2", "seed MLP, batch 256", SEED_IN, SEED_LAYERS, batch=256,
        targets={"onnxruntime": _faster(0.8, "ONNX Runtime")}),
    InferenceWorkload(
        "W3", "wide MLP, throughput", *mlp(784, [1024, 1024], 10), batch=4096,
        targets={"onnxruntime": Target("gflops_ratio", ">=", 1.0, ">= 1.0x ORT GFLOP/s")},
        sgemm_baseline=Target("gflops_ratio", ">=", 0.95, ">= 0.95x NumPy sgemm GFLOP/s"),
        rss_peers=("torch",)),
    InferenceWorkload(
        "W4", "50 x Dense(64, relu)", 64, tuple([DenseConfig(64, "relu")] * 50), batch=32,
        targets={"onnxruntime": _faster(0.3, "ONNX Runtime")}),
]

WORKLOADS: dict[str, Workload] = {
    wl.id: Workload(wl.id, f"{wl.title}: {describe(wl.configs, wl.input_dim)}, batch {wl.batch}",
                    lambda ctx, wl=wl: wl.steps(), lambda ctx, wl=wl: run_inference(ctx, wl), wl)
    for wl in _INFERENCE
}
WORKLOADS["W5"] = Workload(
    "W5", f"time to first result, seed example ({describe(SEED_LAYERS, SEED_IN)}, batch 2) in a "
    "fresh process", lambda ctx: 3, lambda ctx: run_w5(ctx, SEED_IN, SEED_LAYERS, 2))
WORKLOADS["W6"] = Workload(
    "W6", f"net.build((None, 32)) of {' and '.join(f'{n:,}' for n in SIZES)}-layer MLPs "
    "(width 32)", lambda ctx: len(SIZES), run_w6)

_CONV = [
    GraphWorkload(
        "C1", "LeNet-5", "lenet5", "conv5 relu, avg-pool, conv5 relu, avg-pool, dense 120-84-10",
        (28, 28, 1), batch=64,
        targets={"onnxruntime": _faster(1.0, "ONNX Runtime")}),
    GraphWorkload(
        "C2", "single 3x3 conv", "conv3x3_relu", "64->64 channels, padding same, + bias + relu",
        (56, 56, 64), batch=8,
        targets={"onnxruntime": _faster(1.25, "ONNX Runtime"), "torch": _faster(1.0, "PyTorch")}),
    GraphWorkload(
        "C3", "ResNet-18", "resnet18_imagenet",
        "7x7/2 stem + max-pool, 8 basic blocks with BatchNorm, 1000 classes", (224, 224, 3),
        batch=1,
        targets={"onnxruntime": _faster(1.25, "ONNX Runtime"), "torch": _faster(1.0, "PyTorch")}),
]
for _wl in _CONV:
    WORKLOADS[_wl.id] = Workload(_wl.id, describe_graph(_wl), lambda ctx, wl=_wl: wl.steps(),
                                 lambda ctx, wl=_wl: run_graph_inference(ctx, wl), _wl)

_SCALE_OUT = [
    ScaleOutWorkload("D1", "seed MLP over a cluster", "seed_mlp", (20,), rows=2_000_000,
                     chunk_rows=100_000),
    ScaleOutWorkload("D2", "LeNet-5 over a cluster", "lenet5", (28, 28, 1), rows=50_000,
                     chunk_rows=2_500),
]
for _wl in _SCALE_OUT:
    WORKLOADS[_wl.id] = Workload(_wl.id, describe_scale_out(_wl), lambda ctx, wl=_wl: wl.steps(),
                                 lambda ctx, wl=_wl: run_scale_out(ctx, wl))

from .sequence_inference import SequenceWorkload, run_sequence_inference  # noqa: E402
from .sequence_inference import describe as describe_sequence  # noqa: E402

_RECURRENT = [
    SequenceWorkload("S1", "LSTM", 256, steps=100, features=128, batch=32,
                     targets={"torch": _faster(1.0, "PyTorch"),
                              "onnxruntime": _faster(1.0, "ONNX Runtime")}),
    SequenceWorkload("S2", "GRU", 256, steps=100, features=128, batch=32,
                     targets={"torch": _faster(1.0, "PyTorch"),
                              "onnxruntime": _faster(1.0, "ONNX Runtime")}),
]
for _wl in _RECURRENT:
    WORKLOADS[_wl.id] = Workload(_wl.id, describe_sequence(_wl),
                                 lambda ctx, wl=_wl: wl.steps_count(),
                                 lambda ctx, wl=_wl: run_sequence_inference(ctx, wl), _wl)
_SEQUENCE = [
    EncoderWorkload("S3", "Transformer encoder block", 256, 4, 1024, length=128, batch=8,
                    targets={"onnxruntime": _faster(1.25, "ONNX Runtime"),
                             "torch": _faster(1.0, "PyTorch")}),
    EncoderWorkload("S4", "Transformer encoder block, long sequence", 256, 4, 1024, length=512,
                    batch=1, targets={"torch": _faster(1.0, "PyTorch")}),
]
for _wl in _SEQUENCE:
    WORKLOADS[_wl.id] = Workload(_wl.id, describe_encoder(_wl), lambda ctx, wl=_wl: wl.steps(),
                                 lambda ctx, wl=_wl: run_encoder(ctx, wl), _wl)
for _id, _title in (("T1", "ResNet-18 224², batch 1, fresh process, cold cache: first result"),
                    ("T2", "ResNet-18 224², batch 1, fresh process, warm cache: first result"),
                    ("T3", "ResNet-18 224², batch 1, cold cache: time to compiled speed")):
    WORKLOADS[_id] = Workload(_id, _title, lambda ctx: 1, lambda ctx, wid=_id: run_t(ctx, wid))
# R1-R4: torchvision nets exported to ONNX, imported by compiler.onnx (benchmarks/onnx_import.py)
from .onnx_import import ONNX_WORKLOADS, run_onnx_inference, run_r4  # noqa: E402

for _wl in ONNX_WORKLOADS:
    WORKLOADS[_wl.id] = Workload(_wl.id, f"{_wl.title}, {_wl.case}",
                                 lambda ctx, wl=_wl: wl.steps(),
                                 lambda ctx, wl=_wl: run_onnx_inference(ctx, wl), _wl)
WORKLOADS["R4"] = Workload("R4", "import + compile of ResNet-50 from ONNX (warm numba cache) vs "
                           "ORT session creation, fresh processes", lambda ctx: 3, run_r4)
