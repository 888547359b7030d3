"""PyTorch eager and ONNX Runtime for a Transformer encoder block, on deferc's weights.

The torch peer is ``nn.TransformerEncoderLayer(norm_first=False, batch_first=True)`` in eval
mode (its CPU fast path); the ORT peer is that module exported with ``torch.onnx.export(...,
dynamo=False)``, batch and length dynamic. Weights are converted from Keras' layout once: the
attention kernels ``(d, heads, key_dim)`` become rows of ``in_proj_weight``, the output kernel
``(heads, value_dim, d)`` becomes ``out_proj.weight``, dense kernels are transposed.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .onnx_peer import make_session
from .torch_peer import NUM_THREADS


@dataclass(frozen=True)
class EncoderWeights:
    """An encoder block's weights in Keras layout, in ``Model.get_weights()`` order."""

    d_model: int
    num_heads: int
    ffn_dim: int
    activation: str
    epsilon: float
    attention: tuple  # q kernel, q bias, k kernel, k bias, v kernel, v bias, out kernel, bias
    norm1: tuple      # gamma, beta
    ffn1: tuple       # kernel (d, ffn), bias
    ffn2: tuple
    norm2: tuple


def torch_module(w: EncoderWeights):
    """``nn.TransformerEncoderLayer`` holding ``w`` (eval mode, no dropout)."""
    import torch

    d, heads = w.d_model, w.num_heads
    layer = torch.nn.TransformerEncoderLayer(d, heads, w.ffn_dim, dropout=0.0,
                                             activation=w.activation, layer_norm_eps=w.epsilon,
                                             batch_first=True, norm_first=False)
    wq, bq, wk, bk, wv, bv, wo, bo = w.attention

    def t(a: np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    with torch.no_grad():
        attn = layer.self_attn
        attn.in_proj_weight.copy_(t(np.concatenate([k.reshape(d, -1).T for k in (wq, wk, wv)])))
        attn.in_proj_bias.copy_(t(np.concatenate([b.ravel() for b in (bq, bk, bv)])))
        attn.out_proj.weight.copy_(t(wo.reshape(-1, d).T))
        attn.out_proj.bias.copy_(t(bo))
        for lin, (kernel, bias) in ((layer.linear1, w.ffn1), (layer.linear2, w.ffn2)):
            lin.weight.copy_(t(kernel.T))
            lin.bias.copy_(t(bias))
        for norm, (gamma, beta) in ((layer.norm1, w.norm1), (layer.norm2, w.norm2)):
            norm.weight.copy_(t(gamma))
            norm.bias.copy_(t(beta))
    return layer.eval()


def build_torch(w: EncoderWeights) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    torch.set_num_threads(NUM_THREADS)
    module = torch_module(w)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return run


def _explicit(layer):
    """The same block as plain tensor ops, for export: the TorchScript exporter of torch 2.14
    cannot trace ``nn.MultiheadAttention``'s call to ``scaled_dot_product_attention`` (its
    ``is_causal`` becomes a tensor) nor the fused CPU kernel of eval mode."""
    import torch
    from torch.nn import functional as F

    class Explicit(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            m = self.layer
            attn = m.self_attn
            d, heads = attn.embed_dim, attn.num_heads  # Python ints: constants in the export
            dk = d // heads
            q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
            q, k, v = (a.reshape(x.shape[0], -1, heads, dk).transpose(1, 2) for a in (q, k, v))
            scores = torch.matmul(q, k.transpose(-1, -2)) * (float(dk) ** -0.5)
            ctx = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2)
            ctx = ctx.reshape(x.shape[0], -1, d)
            h = F.layer_norm(x + attn.out_proj(ctx), (d,), m.norm1.weight, m.norm1.bias,
                             m.norm1.eps)
            f = m.linear2(m.activation(m.linear1(h)))
            return F.layer_norm(h + f, (d,), m.norm2.weight, m.norm2.bias, m.norm2.eps)

    return Explicit().eval()


def build_onnxruntime(w: EncoderWeights, example: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The torch peer's block exported to ONNX (TorchScript exporter, opset 17), run by ORT."""
    import onnx
    import torch

    module = _explicit(torch_module(w))
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, (torch.from_numpy(example),), buffer, dynamo=False,
                          input_names=["x"], output_names=["y"], opset_version=17,
                          dynamic_axes={"x": {0: "N", 1: "T"}, "y": {0: "N", 1: "T"}})
    session = make_session(onnx.load_from_string(buffer.getvalue()))

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(["y"], {"x": x})[0]

    return run
