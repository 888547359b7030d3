"""The conv benchmark peers (C1-C3) compute exactly what deferc computes, on small sizes.

The benchmark only times a peer after checking it, but a peer builder that silently drifts
(e.g. flatten order, asymmetric "same" padding, BatchNorm epsilon) would make the whole
comparison fail at benchmark time; these tests catch that in CI. Peers whose library is not
installed are skipped.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks import ours_graph
from benchmarks.check import OutputMismatch, check_matches
from benchmarks.graphspec import GraphSpec, same_pads
from benchmarks.peers import GRAPH_BUILDERS, PEERS
from benchmarks.workloads import WORKLOADS
from compiler.applications import lenet5, resnet18, vgg_small

SMALL_WIDTHS = (8, 16, 16, 32)

#: name -> (model factory, NHWC input shape, batch): the workloads' models, shrunk.
MODELS = {
    "lenet5": (lenet5, (28, 28, 1), 3),
    "vgg_small": (lambda: vgg_small(widths=(8, 16, 16)), (32, 32, 3), 2),
    "resnet18_cifar": (lambda: resnet18(num_classes=10, stem="cifar", widths=SMALL_WIDTHS),
                       (32, 32, 3), 2),
    "conv3x3_relu": (lambda: ours_graph.conv3x3_relu(size=10, channels=8), (10, 10, 8), 2),
    "resnet18_imagenet": (lambda: resnet18(num_classes=10, stem="imagenet",
                                           widths=SMALL_WIDTHS), (32, 32, 3), 2),
    # even sides (above) make stride-2 "same" convs pad only at the bottom/right; odd sides
    # pad symmetrically, and stride-2 windows then skip the last row/column
    "resnet18_odd": (lambda: resnet18(num_classes=10, stem="imagenet", widths=SMALL_WIDTHS),
                     (27, 21, 3), 1),
}

_BUILT: dict[str, tuple[ours_graph.GraphBuilt, np.ndarray, np.ndarray]] = {}


def built(name: str) -> tuple[ours_graph.GraphBuilt, np.ndarray, np.ndarray]:
    """``(ours, x, our output)``, built once per model for all peers."""
    if name not in _BUILT:
        factory, shape, batch = MODELS[name]
        ours = ours_graph.build_model(factory(), shape, seed=3)
        x = np.random.default_rng(7).standard_normal((batch, *shape)).astype(np.float32)
        _BUILT[name] = ours, x, np.array(ours.run(x), copy=True)
    return _BUILT[name]


def peer_output(peer: str, spec: GraphSpec, x: np.ndarray) -> np.ndarray:
    reason = PEERS[peer].unavailable_reason()
    if reason:
        pytest.skip(reason)
    run = GRAPH_BUILDERS[peer](spec)
    return run.to_ours(run.run(run.prepare(x)))


@pytest.mark.parametrize("peer", list(GRAPH_BUILDERS))
@pytest.mark.parametrize("model", list(MODELS))
def test_peer_matches_deferc(model: str, peer: str) -> None:
    ours, x, expected = built(model)
    check_matches(expected, peer_output(peer, ours.spec, x), f"{model} {peer}")


def test_spec_carries_randomized_biases_and_batchnorm_statistics() -> None:
    """Keras' zero biases / unit statistics would hide a dropped bias or a folding bug."""
    ours, _, _ = built("resnet18_imagenet")
    bns = [op for op in ours.spec.ops if op.op == "batch_norm"]
    assert len(bns) == 20
    for op in bns:
        for name in ("gamma", "beta", "moving_mean", "moving_variance"):
            w = op.weights[name]
            assert not np.allclose(w, w.flat[0]), f"{op.name}.{name} is constant"
    lenet, _, _ = built("lenet5")
    assert all(np.any(op.weights["bias"] != 0) for op in lenet.spec.ops if "bias" in op.weights)


def test_check_notices_a_wrong_batchnorm_statistic() -> None:
    """The comparison is sensitive: one BN mean changed in the peers' copy must fail it."""
    ours, x, expected = built("resnet18_imagenet")
    ops = list(ours.spec.ops)
    i = next(i for i, op in enumerate(ops) if op.op == "batch_norm")
    weights = dict(ops[i].weights, moving_mean=ops[i].weights["moving_mean"] + 0.5)
    ops[i] = dataclasses.replace(ops[i], weights=weights)
    wrong = dataclasses.replace(ours.spec, ops=tuple(ops))
    with pytest.raises(OutputMismatch):
        check_matches(expected, peer_output("numpy", wrong, x), "perturbed numpy")


def test_spec_matches_the_model() -> None:
    ours, _, expected = built("resnet18_imagenet")
    spec = ours.spec
    assert spec.count("conv2d") == 20 and spec.count("add") == 8
    assert spec.output_shape == expected.shape[1:]
    assert spec.flops(2) == 2 * spec.flops(1) > 0


def test_same_pads_put_the_odd_cell_last() -> None:
    assert same_pads((56, 56), (3, 3), (2, 2), (1, 1)) == ((0, 1), (0, 1))
    assert same_pads((7, 8), (3, 3), (1, 1), (1, 1)) == ((1, 1), (1, 1))
    assert same_pads((27, 21), (3, 3), (2, 2), (1, 1)) == ((1, 1), (1, 1))


def test_conv_workloads_are_registered_with_their_targets() -> None:
    for wid in ("C1", "C2", "C3"):
        assert wid in WORKLOADS
    assert "224x224x3" in WORKLOADS["C3"].title and "batch 64" in WORKLOADS["C1"].title
