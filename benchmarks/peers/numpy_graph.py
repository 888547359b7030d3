"""Hand-written NumPy for ``GraphSpec`` conv nets (NHWC, float32): the plain reference peer.

Convolution is im2col (a strided view per kernel tap, stacked) followed by one BLAS GEMM per
group: the straightforward fast-enough NumPy formulation, not a tuned kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..graphspec import GraphSpec, OpSpec, Pads, PeerRun

Step = Callable[[list[np.ndarray]], np.ndarray]


def activate(h: np.ndarray, activation: str) -> np.ndarray:
    if activation == "linear":
        return h
    if activation == "relu":
        return np.maximum(h, np.float32(0))
    if activation == "sigmoid":
        with np.errstate(over="ignore"):
            return np.divide(1.0, 1.0 + np.exp(-h), dtype=np.float32)
    if activation == "tanh":
        return np.tanh(h)
    if activation == "softmax" and h.ndim == 2:
        e = np.exp(h - h.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"numpy graph peer: unsupported activation {activation!r} on rank {h.ndim}")


def pad(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    if pads == ((0, 0), (0, 0)):
        return x
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def taps(xp: np.ndarray, k: tuple[int, int], strides: tuple[int, int],
         dilation: tuple[int, int], out_hw: tuple[int, ...]) -> list[np.ndarray]:
    """``taps[ky * kw + kx][n, oh, ow, c]``: the input under tap (ky, kx) of each window."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, strides, dilation
    return [xp[:, ky * dh:ky * dh + (oh - 1) * sh + 1:sh, kx * dw:kx * dw + (ow - 1) * sw + 1:sw]
            for ky in range(k[0]) for kx in range(k[1])]


def _conv2d(op: OpSpec) -> Step:
    kernel = op.weights["kernel"]
    kh, kw, cg, filters = kernel.shape
    groups, og = op.attrs["groups"], filters // op.attrs["groups"]
    # (kh, kw, cg, filters) -> per group (kh*kw*cg, og), matching the stacked taps' last axes
    w = [np.ascontiguousarray(kernel[..., g * og:(g + 1) * og].reshape(kh * kw * cg, og))
         for g in range(groups)]
    bias, act, out_hw = op.weights.get("bias"), op.attrs["activation"], op.out_shape[:2]
    a = op.attrs

    def run(args: list[np.ndarray]) -> np.ndarray:
        x = pad(args[0], a["pads"])
        n = x.shape[0]
        parts = []
        for g in range(groups):
            xs = [t[..., g * cg:(g + 1) * cg]
                  for t in taps(x, (kh, kw), a["strides"], a["dilation"], out_hw)]
            cols = np.stack(xs, axis=3).reshape(n * out_hw[0] * out_hw[1], kh * kw * cg)
            parts.append(cols @ w[g])
        y = parts[0] if groups == 1 else np.concatenate(parts, axis=1)
        if bias is not None:
            y += bias
        return activate(y.reshape(n, *out_hw, filters), act)

    return run


def _pool(op: OpSpec) -> Step:
    a, out_hw, is_max = op.attrs, op.out_shape[:2], op.op == "max_pool2d"
    h, w = op.in_shapes[0][:2]
    # padded cells never count: max pads with -inf, average divides by the real cells per window
    ones = pad(np.ones((1, h, w, 1), np.float32), a["pads"])
    count = sum(taps(ones, a["pool_size"], a["strides"], (1, 1), out_hw))

    def run(args: list[np.ndarray]) -> np.ndarray:
        xp = pad(args[0], a["pads"], -np.inf if is_max else 0.0)
        views = taps(xp, a["pool_size"], a["strides"], (1, 1), out_hw)
        if is_max:
            return np.max(np.stack(views), axis=0)
        return (sum(views[1:], views[0].copy()) / count).astype(np.float32)

    return run


def _batch_norm(op: OpSpec) -> Step:
    wts = op.weights
    c = op.in_shapes[0][-1]
    scale = (wts.get("gamma", np.ones(c, np.float32))
             / np.sqrt(wts["moving_variance"] + op.attrs["epsilon"])).astype(np.float32)
    shift = (wts.get("beta", np.zeros(c, np.float32)) - wts["moving_mean"] * scale).astype(
        np.float32)
    return lambda args: args[0] * scale + shift


def _dense(op: OpSpec) -> Step:
    kernel, bias, act = op.weights["kernel"], op.weights.get("bias"), op.attrs["activation"]

    def run(args: list[np.ndarray]) -> np.ndarray:
        y = args[0] @ kernel
        if bias is not None:
            y += bias
        return activate(y, act)

    return run


_BUILDERS: dict[str, Callable[[OpSpec], Step]] = {
    "conv2d": _conv2d,
    "max_pool2d": _pool,
    "avg_pool2d": _pool,
    "batch_norm": _batch_norm,
    "dense": _dense,
    "activation": lambda op: lambda args: activate(args[0], op.attrs["activation"]),
    "add": lambda op: lambda args: sum(args[1:], args[0]),
    "zero_padding2d": lambda op: lambda args: pad(args[0], op.attrs["pads"]),
    "global_avg_pool2d": lambda op: lambda args: args[0].mean(
        axis=(1, 2), keepdims=op.attrs["keepdims"], dtype=np.float32),
    "flatten": lambda op: lambda args: args[0].reshape(args[0].shape[0], -1),
    "identity": lambda op: lambda args: args[0],
}


def build(spec: GraphSpec) -> PeerRun:
    """The graph as NumPy closures run in order; values die when nothing later reads them."""
    steps = [(_BUILDERS[op.op](op), op.inputs) for op in spec.ops]
    last_use = {v: i for i, op in enumerate(spec.ops) for v in op.inputs}
    frees = [[v for v in op.inputs if last_use[v] == i and v != spec.output]
             for i, op in enumerate(spec.ops)]
    output = spec.output

    def run(x: np.ndarray) -> np.ndarray:
        values: dict[int, np.ndarray] = {0: x}
        for i, (step, inputs) in enumerate(steps):
            values[i + 1] = step([values[v] for v in inputs])
            for v in frees[i]:
                del values[v]
        return values[output]

    return PeerRun(run, "NHWC")
