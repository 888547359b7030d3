"""PyTorch eager for ``GraphSpec`` conv nets: ``torch.nn`` modules in NCHW, as users write them.

Weights are converted from Keras layout once at build time (conv ``(kh, kw, in, out)`` ->
``(out, in, kh, kw)``, dense ``(in, out)`` -> ``(out, in)``). Padding that ``nn.Conv2d`` cannot
express (TF "same" with stride 2 pads one more cell at the bottom/right) becomes an explicit
``nn.ZeroPad2d``; ``Flatten`` of an image first permutes to NHWC so features come out in our
order. A tiny ``nn.Module`` walks the ops so branching graphs (ResNet) work.
"""

from __future__ import annotations

import numpy as np

from ..graphspec import GraphSpec, OpSpec, Pads, PeerRun, symmetric
from .torch_peer import NUM_THREADS


def _activation(name: str, rank: int):
    from torch import nn

    if name == "linear":
        return None
    if name == "softmax" and rank == 2:
        return nn.Softmax(dim=-1)
    modules = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
    if name not in modules:
        raise ValueError(f"torch graph peer: unsupported activation {name!r} on rank {rank}")
    return modules[name]()


def _param(array: np.ndarray):
    import torch

    return torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(array)).clone(),
                              requires_grad=False)


def _padded(module, pads: Pads, value: float = 0.0) -> list:
    """``[pad, module]`` when ``pads`` are asymmetric, else ``[module]`` (padding set inside)."""
    from torch import nn

    if symmetric(pads) is not None:
        return [module]
    (t, b), (left, r) = pads
    return [nn.ZeroPad2d((left, r, t, b)) if value == 0.0
            else nn.ConstantPad2d((left, r, t, b), value), module]


def _conv2d(op: OpSpec) -> list:
    from torch import nn

    kernel, a = op.weights["kernel"], op.attrs
    kh, kw, cg, filters = kernel.shape
    inner = symmetric(a["pads"]) or (0, 0)
    conv = nn.Conv2d(cg * a["groups"], filters, (kh, kw), stride=a["strides"], padding=inner,
                     dilation=a["dilation"], groups=a["groups"], bias="bias" in op.weights)
    conv.weight = _param(kernel.transpose(3, 2, 0, 1))
    if "bias" in op.weights:
        conv.bias = _param(op.weights["bias"])
    act = _activation(a["activation"], 4)
    return _padded(conv, a["pads"]) + ([act] if act is not None else [])


def _pool(op: OpSpec) -> list:
    from torch import nn

    a = op.attrs
    inner = symmetric(a["pads"]) or (0, 0)
    if op.op == "max_pool2d":
        return _padded(nn.MaxPool2d(a["pool_size"], a["strides"], padding=inner), a["pads"],
                       -float("inf"))
    if symmetric(a["pads"]) is None:
        raise ValueError(f"torch graph peer: {op.name}: asymmetric average-pool padding "
                         f"{a['pads']} is not supported")
    return [nn.AvgPool2d(a["pool_size"], a["strides"], padding=inner, count_include_pad=False)]


def _batch_norm(op: OpSpec) -> list:
    from torch import nn

    c, w = op.in_shapes[0][-1], op.weights
    bn = (nn.BatchNorm2d if len(op.in_shapes[0]) == 3 else nn.BatchNorm1d)(
        c, eps=op.attrs["epsilon"])
    bn.weight = _param(w.get("gamma", np.ones(c, np.float32)))
    bn.bias = _param(w.get("beta", np.zeros(c, np.float32)))
    bn.running_mean.copy_(_param(w["moving_mean"]).data)
    bn.running_var.copy_(_param(w["moving_variance"]).data)
    return [bn]


def _dense(op: OpSpec) -> list:
    from torch import nn

    fan_in, units = op.weights["kernel"].shape
    linear = nn.Linear(fan_in, units, bias="bias" in op.weights)
    linear.weight = _param(op.weights["kernel"].T)
    if "bias" in op.weights:
        linear.bias = _param(op.weights["bias"])
    act = _activation(op.attrs["activation"], 2)
    return [linear] + ([act] if act is not None else [])


def _flatten_nhwc():
    """Flatten in our (NHWC) feature order: an NCHW image is permuted first."""
    import torch
    from torch import nn

    class FlattenNHWC(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.dim() == 4:
                x = x.permute(0, 2, 3, 1)
            return torch.flatten(x, 1)

    return FlattenNHWC()


def _global_avg_pool(op: OpSpec) -> list:
    from torch import nn

    return [nn.AdaptiveAvgPool2d(1)] + ([] if op.attrs["keepdims"] else [nn.Flatten(1)])


def _modules(op: OpSpec) -> list:
    from torch import nn

    if op.op == "conv2d":
        return _conv2d(op)
    if op.op in ("max_pool2d", "avg_pool2d"):
        return _pool(op)
    if op.op == "batch_norm":
        return _batch_norm(op)
    if op.op == "dense":
        return _dense(op)
    if op.op == "activation":
        act = _activation(op.attrs["activation"], len(op.in_shapes[0]) + 1)
        return [act] if act is not None else []
    if op.op == "zero_padding2d":
        (t, b), (left, r) = op.attrs["pads"]
        return [nn.ZeroPad2d((left, r, t, b))]
    if op.op == "global_avg_pool2d":
        return _global_avg_pool(op)
    if op.op == "flatten":
        return [_flatten_nhwc()]
    if op.op in ("identity", "add"):
        return []
    raise ValueError(f"torch graph peer: unsupported op {op.op!r} ({op.name})")


def build_module(spec: GraphSpec):
    """The graph as one ``nn.Module`` in eval mode (NCHW in, NCHW or 2-D out)."""
    import torch
    from torch import nn

    last_use = {v: i for i, op in enumerate(spec.ops) for v in op.inputs}

    class GraphModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.steps = nn.ModuleList(nn.Sequential(*_modules(op)) for op in spec.ops)
            self.is_add = [op.op == "add" for op in spec.ops]
            self.inputs = [op.inputs for op in spec.ops]
            # values nothing later reads are dropped, as in a hand-written forward()
            self.frees = [[v for v in op.inputs if last_use[v] == i and v != spec.output]
                          for i, op in enumerate(spec.ops)]
            self.output = spec.output

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            values: list = [x]
            for step, is_add, inputs, frees in zip(self.steps, self.is_add, self.inputs,
                                                    self.frees):
                if is_add:
                    h = values[inputs[0]]
                    for v in inputs[1:]:
                        h = h + values[v]
                    values.append(h)
                else:
                    values.append(step(values[inputs[0]]))
                for v in frees:
                    values[v] = None
            return values[self.output]

    return GraphModule().eval()


def build(spec: GraphSpec) -> PeerRun:
    """NCHW NumPy in, NumPy out (zero-copy), under ``inference_mode``, 2 threads."""
    import torch

    torch.set_num_threads(NUM_THREADS)
    module = build_module(spec)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return PeerRun(run, "NCHW")
