"""Lowering a long chain of custom layers is linear: each trace infers the types of the nodes
added since the previous trace only (counted structurally, never timed)."""

import importlib

import numpy as np

from compiler import Sequential, TensorSpec, layers, ops
from compiler.lowering import lower

# the module (``compiler.passes.propagate_shapes`` names the function re-exported there)
propagation = importlib.import_module("compiler.passes.propagate_shapes")


class Scale(layers.Layer):
    def build(self, input_shape):
        self.s = self.add_weight(name="s", shape=[input_shape[-1]], initializer="ones")

    def call(self, x):
        return ops.tanh(x * self.s) + x


def test_a_chain_of_custom_layers_propagates_each_node_about_once(monkeypatch):
    depth = 300
    net = Sequential([Scale() for _ in range(depth)])
    net.build((None, 3))
    seen = []
    real = propagation.propagate_shapes

    def counting(g, ctx):
        seen.append(g.number_of_nodes())
        return real(g, ctx)

    monkeypatch.setattr(propagation, "propagate_shapes", counting)
    graph = lower(net, [TensorSpec((None, 3)).to_type(net.dtype, 0)])
    assert len(seen) == depth - 1  # the first layer reads the typed input: no propagation
    # quadratic (the whole prefix each time) would be ~depth / 2 times the graph
    assert sum(seen) <= 3 * graph.number_of_nodes()
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    want = x
    for _ in range(depth):
        want = np.tanh(want) + want
    np.testing.assert_allclose(net(x), want, rtol=1e-4, atol=1e-4)
