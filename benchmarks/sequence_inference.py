"""S1/S2: one recurrent layer over a batch of sequences, last state out; deferc vs PyTorch eager
(``nn.LSTM``/``nn.GRU``) and ONNX Runtime (the PyTorch peer exported with ``torch.onnx``).

Same rules as the other inference workloads: every peer gets ours' weights (converted between
layouts), must reproduce our output before it is timed, and contenders are timed in shared
rounds.
"""

from __future__ import annotations

import gc
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .context import RunContext
from .inference import OURS, SETTLE_S, checked_peer, comparison_rows
from .ours import DEFERC
from .records import Row, Target
from .timing import measure_rounds

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
    # steady state: time jitted code, not the lower tier answering while kernels compile
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
        ctx.progress.step(wl.steps_count())
        return [Row(wl.id, wl.case, peer=name, target=wl.targets.get(name),
                    status=f"skipped: sequence workloads need deferc (ours = {ctx.ours.name})")
                for name in wl.peers]
    bar = ctx.progress
    bar.describe(f"{wl.id}: build ours ({ctx.ours.name})")
    weights, plan = _build_ours(wl, ctx.seed)
    x = np.random.default_rng(ctx.seed).standard_normal(
        (wl.batch, wl.steps, wl.features)).astype(np.float32)
    expected = np.array(plan(x), copy=True)
    bar.step()
    contenders: dict[str, Callable[[], object]] = {OURS: lambda: plan(x)}
    statuses: dict[str, str] = {}
    for name in wl.peers:
        bar.describe(f"{wl.id}: build + check {name}")
        timed = checked_peer(ctx, wl.id, name, lambda name=name: _PEERS[name](wl, weights, x),
                             expected, statuses)
        if timed is not None:
            contenders[name] = timed
        bar.step()
    bar.describe(f"{wl.id}: timing {len(contenders)} implementations")
    gc.collect()
    timings = measure_rounds(contenders, ctx.repeat, ctx.warmup, ctx.min_rep_s,
                             between=lambda: time.sleep(SETTLE_S))
    bar.step()
    return comparison_rows(wl.id, wl.case, wl.peers, timings, wl.flops(), wl.targets, statuses)


def describe(wl: SequenceWorkload) -> str:
    return f"{wl.cell}({wl.units}), last state, {wl.case}"
