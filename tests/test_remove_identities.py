"""remove_identities, and pass order: a BatchNorm behind a Dropout folds on the first run."""

import numpy as np

from compiler import Sequential, TensorSpec, layers
from compiler.driver import build_graph
from compiler.ir import dump
from compiler.passes import (
    BUILD_PIPELINE,
    COMPILE_PIPELINE,
    CompileContext,
    fold_batch_norm,
    remove_identities,
)
from compiler.reference import run_reference


def ops(g):
    return [d["op"] for _, d in sorted(g.nodes(data=True)) if d["op"] not in ("input", "param")]


def test_identities_disappear_and_outputs_are_unchanged():
    net = Sequential([layers.Dropout(0.1), layers.Dense(4), layers.Dropout(0.5),
                      layers.Dropout(0.5), layers.ReLU()])
    g, _ = build_graph(net, [TensorSpec((None, 3))], BUILD_PIPELINE)
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    before = run_reference(g, x)
    assert ops(g) == ["identity", "dense", "identity", "identity", "activation"]
    remove_identities(g, CompileContext())
    assert ops(g) == ["dense", "activation"]
    np.testing.assert_array_equal(run_reference(g, x), before)
    text = dump(g)
    remove_identities(g, CompileContext())
    assert dump(g) == text


def test_a_graph_of_only_identities_returns_its_input():
    net = Sequential([layers.Dropout(0.5), layers.Dropout(0.2)])
    g, _ = build_graph(net, [TensorSpec((None, 3))], BUILD_PIPELINE)
    remove_identities(g, CompileContext())
    assert ops(g) == [] and g.graph["outputs"] == g.graph["inputs"]


def _snapshot(g):
    return dump(g), {n: dict(d) for n, d in g.nodes(data=True)}


def test_batch_norm_after_dropout_folds_and_rerunning_any_pass_changes_nothing():
    """The long fuzz profile's counterexample: gelu, Dense, Dropout, BatchNormalization."""
    net = Sequential([layers.Activation("gelu"), layers.Dense(3), layers.Dropout(0.3),
                      layers.BatchNormalization()])
    net.build((None, 4))
    bn = net.layers[3]
    rng = np.random.default_rng(1)
    bn.set_weights([rng.uniform(0.5, 1.5, 3), rng.normal(size=3), rng.normal(size=3),
                    rng.uniform(0.5, 1.5, 3)])
    graph, _ = build_graph(net, [TensorSpec((None, 4))], COMPILE_PIPELINE)
    assert ops(graph) == ["activation", "dense"]  # folded on the first run
    before = _snapshot(graph)
    for p in COMPILE_PIPELINE:
        graph = p(graph, CompileContext())
        assert _snapshot(graph)[0] == before[0], f"re-running {p.__name__} changed the graph"
    x = np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32)
    unfolded, _ = build_graph(net, [TensorSpec((None, 4))], BUILD_PIPELINE)
    np.testing.assert_allclose(run_reference(graph, x), run_reference(unfolded, x), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(net(x), run_reference(unfolded, x), rtol=1e-5, atol=1e-6)


def test_fold_batch_norm_twice_changes_nothing():
    net = Sequential([layers.Dense(3), layers.BatchNormalization(), layers.Dense(2),
                      layers.BatchNormalization()])
    net.build((None, 4))
    g, _ = build_graph(net, [TensorSpec((None, 4))], BUILD_PIPELINE)
    fold_batch_norm(g, CompileContext(store=net.weight_store))
    assert ops(g) == ["dense", "dense"]
    text = dump(g)
    fold_batch_norm(g, CompileContext())
    assert dump(g) == text
