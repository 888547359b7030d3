"""PyTorch eager with ``torch.nn`` modules: what most users would write instead of deferc."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..modelspec import DenseLayer, LayerSpec, ModelSpec

NAME = "torch"
#: Threads the peers may use; the benchmark machine has 2 cores.
NUM_THREADS = 2


def unavailable_reason() -> str | None:
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return f"torch not importable ({exc})"
    return None


def version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def _activation_module(name: str):
    from torch import nn

    modules = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
               "softmax": lambda: nn.Softmax(dim=-1)}
    if name == "linear":
        return None
    if name not in modules:
        raise ValueError(f"torch peer: unsupported activation {name!r}")
    return modules[name]()


def _dense(layer: DenseLayer) -> list:
    import torch
    from torch import nn

    fan_in, units = layer.kernel.shape
    linear = nn.Linear(fan_in, units)
    with torch.no_grad():
        # torch stores (out, in); copy so the module owns contiguous memory like a trained model.
        linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.kernel.T)))
        linear.bias.copy_(torch.from_numpy(layer.bias))
    act = _activation_module(layer.activation)
    return [linear] if act is None else [linear, act]


_BUILDERS: dict[type, Callable[[LayerSpec], list]] = {DenseLayer: _dense}


def build_module(spec: ModelSpec):
    """The model as an ``nn.Sequential`` in eval mode."""
    from torch import nn

    modules = [m for layer in spec.layers for m in _BUILDERS[type(layer)](layer)]
    return nn.Sequential(*modules).eval()


def build(spec: ModelSpec) -> Callable[[np.ndarray], np.ndarray]:
    """NumPy in, NumPy out (zero-copy both ways), under ``inference_mode`` like serving code."""
    import torch

    torch.set_num_threads(NUM_THREADS)
    module = build_module(spec)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return run
