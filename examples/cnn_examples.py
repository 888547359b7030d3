"""LeNet-5 on 28x28, a small VGG on 32x32, ResNet-18 on 32x32 and 224x224: deferred
initialization with the image resolution inferred, each checked against the NumPy reference.

Run: .venv/bin/python examples/cnn_examples.py
"""

import time

import numpy as np

from compiler import TensorSpec, compile, lower
from compiler.applications import lenet5, resnet18, vgg_small
from compiler.passes import BUILD_PIPELINE, CompileContext, run_pipeline
from compiler.reference import run_reference


def check(name: str, model, shape: tuple, batch: int = 2) -> None:
    x = np.random.default_rng(0).normal(size=(batch,) + shape).astype(np.float32)
    start = time.perf_counter()
    plan = compile(model, TensorSpec((None,) + shape))
    y = plan(x)
    first = time.perf_counter() - start
    # the reference runs the unoptimized IR (no BatchNorm folding, no fusion)
    graph = lower(model, [TensorSpec((None,) + shape).to_type(model.dtype)])
    reference = run_reference(run_pipeline(graph, BUILD_PIPELINE, CompileContext()), x)
    err = float(np.max(np.abs(y - reference)))
    times = []
    for _ in range(5):
        t = time.perf_counter()
        plan(x)
        times.append(time.perf_counter() - t)
    print(f"{name:<28} in {str(shape):<14} out {y.shape}  params {model.count_params():>10,}  "
          f"max|ours-ref| {err:.1e}  first call {first:5.2f} s  then {np.median(times)*1e3:7.2f} ms"
          f"  ({plan.executor})")


def main() -> None:
    lenet = lenet5()
    lenet.summary()
    check("LeNet-5", lenet, (28, 28, 1), batch=64)
    check("VGG-small", vgg_small(), (32, 32, 3), batch=8)
    cifar = resnet18(stem="cifar")          # one model, any resolution
    check("ResNet-18 (cifar stem)", cifar, (32, 32, 3), batch=1)
    imagenet = resnet18(stem="imagenet", num_classes=1000)
    check("ResNet-18 (imagenet stem)", imagenet, (224, 224, 3), batch=1)
    check("ResNet-18 (imagenet stem)", imagenet, (32, 32, 3), batch=1)


if __name__ == "__main__":
    main()
