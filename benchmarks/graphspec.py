"""A framework-neutral description of a conv net: a DAG of ops with concrete weights.

``modelspec`` covers dense chains; conv workloads (LeNet-5, ResNet-18) branch and merge, so they
are described as a list of ops in topological order, each reading earlier *values* (value 0 is
the graph input, op ``i`` produces value ``i + 1``). The op vocabulary and every tensor in it use
ours' conventions: NHWC activations, Keras weight layouts (conv kernel ``(kh, kw, in/groups,
out)``, dense kernel ``(in, out)``). "same" padding is already resolved into explicit
``((top, bottom), (left, right))`` pads, because TF-style "same" puts the odd cell at the end
and peers that only pad symmetrically (``torch.nn.Conv2d``) must add it themselves.

Peers consume a ``GraphSpec`` and return a ``PeerRun``; NCHW peers get their input transposed
(and their output transposed back) by ``PeerRun``, outside anything that is timed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

#: op name -> weight names it may carry (all float32).
OP_WEIGHTS: dict[str, tuple[str, ...]] = {
    "conv2d": ("kernel", "bias"),
    "dense": ("kernel", "bias"),
    "batch_norm": ("gamma", "beta", "moving_mean", "moving_variance"),
    "activation": (),
    "add": (),
    "max_pool2d": (),
    "avg_pool2d": (),
    "zero_padding2d": (),
    "global_avg_pool2d": (),
    "flatten": (),
    "identity": (),
}
#: Activations every graph peer implements (softmax only on rank-2 values, over the last axis).
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")

Pads = tuple[tuple[int, int], tuple[int, int]]
Layout = Literal["NHWC", "NCHW"]


@dataclass(frozen=True)
class OpSpec:
    """One op: ``op`` reads ``inputs`` (value ids); shapes exclude the batch axis (NHWC).

    ``attrs`` by op: conv2d ``strides, dilation, groups, pads, activation``; pools
    ``pool_size, strides, pads``; zero_padding2d ``pads``; batch_norm ``epsilon``; activation
    and dense ``activation``; global_avg_pool2d ``keepdims``.
    """

    op: str
    inputs: tuple[int, ...]
    attrs: dict[str, Any]
    weights: dict[str, np.ndarray]
    in_shapes: tuple[tuple[int, ...], ...]
    out_shape: tuple[int, ...]
    name: str = ""

    def __post_init__(self) -> None:
        if self.op not in OP_WEIGHTS:
            raise ValueError(f"graph spec {self.name!r}: unsupported op {self.op!r}; supported: "
                             f"{sorted(OP_WEIGHTS)}")
        extra = set(self.weights) - set(OP_WEIGHTS[self.op])
        if extra:
            raise ValueError(f"graph spec {self.name!r} ({self.op}): unexpected weights "
                             f"{sorted(extra)}")
        act = self.attrs.get("activation", "linear")
        if act not in ACTIVATIONS:
            raise ValueError(f"graph spec {self.name!r} ({self.op}): activation {act!r} is not "
                             f"one of {ACTIVATIONS}")

    def flops_per_sample(self) -> int:
        """2 * MACs of conv2d/dense (the GEMM convention); other ops count as free."""
        if self.op == "conv2d":
            kh, kw, cin_per_group, _ = self.weights["kernel"].shape
            return 2 * math.prod(self.out_shape) * kh * kw * cin_per_group
        if self.op == "dense":
            return 2 * math.prod(self.out_shape) * self.weights["kernel"].shape[0]
        return 0


@dataclass(frozen=True)
class GraphSpec:
    """A whole model: ``input_shape`` (NHWC, no batch), ops in order, the output value id."""

    input_shape: tuple[int, ...]
    ops: tuple[OpSpec, ...]
    output: int
    name: str = "model"

    def __post_init__(self) -> None:
        for i, op in enumerate(self.ops):
            if any(not 0 <= v <= i for v in op.inputs):
                raise ValueError(f"graph spec op {i} ({op.name}) reads values {op.inputs}; only "
                                 f"0..{i} exist before it")
        if not 0 <= self.output <= len(self.ops):
            raise ValueError(f"graph spec output {self.output} is not a value id")

    def value_shape(self, value: int) -> tuple[int, ...]:
        """Shape (no batch) of ``value``: the input's or the producing op's."""
        return self.input_shape if value == 0 else self.ops[value - 1].out_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.value_shape(self.output)

    def flops(self, batch: int) -> int:
        return batch * sum(op.flops_per_sample() for op in self.ops)

    def count(self, op: str) -> int:
        return sum(o.op == op for o in self.ops)


def to_nchw(x: np.ndarray) -> np.ndarray:
    """A contiguous NCHW copy of a rank-4 NHWC array (other ranks pass through)."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def to_nhwc(y: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(y.transpose(0, 2, 3, 1)) if y.ndim == 4 else y


@dataclass(frozen=True)
class PeerRun:
    """A built peer: ``run`` takes and returns arrays in ``layout`` (for rank-4 values).

    ``prepare`` and ``to_ours`` do the layout change once, outside the timed region, so the
    timed call is exactly what a user of that framework would run.
    """

    run: Callable[[np.ndarray], np.ndarray]
    layout: Layout = "NHWC"
    notes: dict[str, Any] = field(default_factory=dict)

    def prepare(self, x_nhwc: np.ndarray) -> np.ndarray:
        return to_nchw(x_nhwc) if self.layout == "NCHW" else x_nhwc

    def to_ours(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        return to_nhwc(y) if self.layout == "NCHW" else y


def same_pads(size: tuple[int, int], k: tuple[int, int], strides: tuple[int, int],
              dilation: tuple[int, int]) -> Pads:
    """TF ``SAME`` pads per spatial axis: total from ``ceil(size/stride)``, odd cell after."""
    pads = []
    for n, kk, s, d in zip(size, k, strides, dilation):
        out = -(-n // s)
        total = max((out - 1) * s + (kk - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads[0], pads[1]


def symmetric(pads: Pads) -> tuple[int, int] | None:
    """``(ph, pw)`` when top == bottom and left == right, else ``None``."""
    (t, b), (left, r) = pads
    return (t, left) if t == b and left == r else None
