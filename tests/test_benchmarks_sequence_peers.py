"""S3/S4's peers reproduce ours on a shrunk encoder block (weight conversion, ONNX export)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.sequence import EncoderWorkload, _randomize, _weights, encoder_block
from benchmarks.workloads import WORKLOADS
from compiler import TensorSpec, compile, set_random_seed


def test_sequence_workloads_are_registered_with_their_targets() -> None:
    assert "T=128" in WORKLOADS["S3"].title and "batch 8" in WORKLOADS["S3"].title
    assert "T=512" in WORKLOADS["S4"].title and "FFN 1024" in WORKLOADS["S4"].title


@pytest.mark.parametrize("peer", ["torch", "onnxruntime"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_peers_match_ours(peer: str, activation: str) -> None:
    pytest.importorskip("torch")
    if peer == "onnxruntime":
        pytest.importorskip("onnxruntime")
    from benchmarks.peers import transformer_peer

    wl = EncoderWorkload("S0", "tiny", 32, 4, 64, length=9, batch=2, activation=activation)
    set_random_seed(0)
    model = encoder_block(wl.d_model, wl.num_heads, wl.ffn_dim, activation)
    _randomize(model, 0)
    plan = compile(model, TensorSpec((None, None, wl.d_model)))
    x = np.random.default_rng(1).standard_normal((2, 9, 32)).astype(np.float32)
    weights = _weights(model, wl, 1e-5)
    run = (transformer_peer.build_torch(weights) if peer == "torch"
           else transformer_peer.build_onnxruntime(weights, x))
    np.testing.assert_allclose(run(x), plan(x), rtol=1e-4, atol=1e-4)
    longer = np.random.default_rng(2).standard_normal((1, 23, 32)).astype(np.float32)
    np.testing.assert_allclose(run(longer), plan(longer), rtol=1e-4, atol=1e-4)  # dynamic T
