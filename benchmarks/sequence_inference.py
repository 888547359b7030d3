"""S1/S2: one recurrent layer over a batch of sequences, last state out; deferc vs PyTorch eager
(``nn.LSTM``/``nn.GRU``) and ONNX Runtime (the PyTorch peer exported with ``torch.onnx``).

Same rules as the other inference workloads: every peer gets ours' weights (converted between
layouts), must reproduce our output before it is timed, and contenders are timed in shared
rounds.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from .context import RunContext
from .inference import check_and_time, comparison_rows, skipped_rows
from .ours import DEFERC
from .records import Row, Target

#: Keras gate order -> PyTorch gate order, as indices of Keras' gate blocks
_TORCH_GATES = {"LSTM": (0, 1, 2, 3), "GRU": (1, 0, 2)}


@dataclass(frozen=True)
class SequenceWorkload:
    """``cell(units)`` over ``(batch, steps, features)``, returning the last state."""

    id: str
    cell: str  # "LSTM" or "GRU"
    units: int
    steps: int
    features: int
    batch: int
    peers: tuple[str, ...] = ("torch", "onnxruntime")
    targets: dict[str, Target] = field(default_factory=dict)

    @property
    def case(self) -> str:
        return f"batch {self.batch}, T={self.steps}, {self.features} inputs"

    def steps_count(self) -> int:
        return 2 + len(self.peers)

    def flops(self) -> int:
        gates = 4 if self.cell == "LSTM" else 3
        return 2 * self.batch * self.steps * (self.features + self.units) * gates * self.units


def _build_ours(wl: SequenceWorkload, seed: int):
    from compiler import Input, Sequential, TensorSpec, compile, layers

    net = Sequential([Input((None, wl.features)), getattr(layers, wl.cell)(wl.units)])
    rng = np.random.default_rng(seed)
    net.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32)
                     for w in net.get_weights()])
    return net.get_weights(), compile(net, TensorSpec((None, None, wl.features)), tier="jit")


def _torch_module(wl: SequenceWorkload, weights):
    import torch

    u, order = wl.units, _TORCH_GATES[wl.cell]

    def reorder(w):
        return np.ascontiguousarray(np.concatenate([w[..., k * u:(k + 1) * u] for k in order],
                                                   axis=-1))

    kernel, recurrent, bias = weights
    rnn = getattr(torch.nn, wl.cell)(wl.features, u, batch_first=True)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(reorder(kernel).T.copy()))
        rnn.weight_hh_l0.copy_(torch.from_numpy(reorder(recurrent).T.copy()))
        if bias.ndim == 2:  # GRU reset_after: input and recurrent biases
            rnn.bias_ih_l0.copy_(torch.from_numpy(reorder(bias[0])))
            rnn.bias_hh_l0.copy_(torch.from_numpy(reorder(bias[1])))
        else:
            rnn.bias_ih_l0.copy_(torch.from_numpy(reorder(bias)))
            rnn.bias_hh_l0.zero_()

    class LastState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn

        def forward(self, x):
            out = self.rnn(x)[1]
            h = out[0] if isinstance(out, tuple) else out
            return h[0]

    return LastState().eval()


def _torch_peer(wl, weights, x):
    import torch

    module = _torch_module(wl, weights)
    tx = torch.from_numpy(x)

    def run():
        with torch.inference_mode():
            return module(tx)
    return run, run().numpy()


def _onnx_peer(wl, weights, x):
    import onnxruntime as ort
    import torch

    module = _torch_module(wl, weights)
    buf = io.BytesIO()
    torch.onnx.export(module, (torch.from_numpy(x),), buf, dynamo=False, input_names=["x"],
                      output_names=["h"],
                      dynamic_axes={"x": {0: "batch", 1: "steps"}, "h": {0: "batch"}})
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])

    def run():
        return session.run(None, {"x": x})[0]
    return run, run()


_PEERS = {"torch": _torch_peer, "onnxruntime": _onnx_peer}


def run_sequence_inference(ctx: RunContext, wl: SequenceWorkload) -> list[Row]:
    if ctx.ours.name != DEFERC:
        return skipped_rows(wl, wl.steps_count(), ctx, "sequence workloads need deferc")
    bar = ctx.progress
    bar.describe(f"{wl.id}: build ours ({ctx.ours.name})")
    weights, plan = _build_ours(wl, ctx.seed)
    x = _inputs(wl, ctx.seed)
    expected = np.array(plan(x), copy=True)
    bar.step()
    attempts = {name: partial(_PEERS[name], wl, weights, x) for name in wl.peers}
    timings, statuses = check_and_time(ctx, wl.id, lambda: plan(x), expected, attempts)
    return comparison_rows(wl.id, wl.case, wl.peers, timings, wl.flops(), wl.targets, statuses)


def profiled(wl: SequenceWorkload, seed: int) -> tuple:
    """``(plan, x)``: what ``run_sequence_inference`` times, for ``--profile``."""
    _, plan = _build_ours(wl, seed)
    return plan, _inputs(wl, seed)


def _inputs(wl: SequenceWorkload, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(
        (wl.batch, wl.steps, wl.features)).astype(np.float32)


def describe(wl: SequenceWorkload) -> str:
    return f"{wl.cell}({wl.units}), last state, {wl.case}"
