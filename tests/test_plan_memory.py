"""plan_memory: liveness, arena sharing, and the 50-layer bound (two largest activations)."""

import numpy as np

from compiler import Input, Model, Sequential, TensorSpec, compile, layers
from compiler.passes.plan_memory import ALIGN_ELEMENTS, Buffer, assign_offsets


def test_chain_of_50_layers_needs_two_activations_of_arena():
    net = Sequential([layers.Dense(64, activation="relu") for _ in range(50)])
    plan = compile(net, TensorSpec((None, 64)), executor="steps")
    layout = plan.layout(np.zeros((32, 64), np.float32))
    largest = 32 * 64
    assert layout.arena_elements <= 2 * largest
    assert layout.naive_elements == 49 * largest  # the last output is returned, not in the arena


def test_lifetimes_overlap_for_a_residual_branch():
    x = Input((8,))
    a = layers.Dense(8)(x)
    b = layers.Dense(8)(a)
    c = layers.Dense(8)(b)
    model = Model(x, layers.Dense(2)(c))
    plan = compile(model, TensorSpec((None, 8)))
    buffers = {b.node: (b.first, b.last) for b in plan.memory.buffers}
    assert len(buffers) == 3 and all(first <= last for first, last in buffers.values())


def test_offsets_never_overlap_while_both_buffers_live():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 20))
        bufs, sizes = [], {}
        for i in range(n):
            first = int(rng.integers(0, 10))
            bufs.append(Buffer(i, 0, first, first + int(rng.integers(0, 5))))
            sizes[i] = int(rng.integers(1, 1000))
        offsets, arena = assign_offsets(bufs, sizes)
        for a in bufs:
            assert offsets[a.node] % ALIGN_ELEMENTS == 0
            assert offsets[a.node] + sizes[a.node] <= arena
            for b in bufs:
                if a.node < b.node and a.first <= b.last and b.first <= a.last:
                    sa, sb = offsets[a.node], offsets[b.node]
                    assert sa + sizes[a.node] <= sb or sb + sizes[b.node] <= sa


def test_outputs_and_inputs_stay_out_of_the_arena():
    net = Sequential([layers.Dense(4), layers.Dense(3)])
    plan = compile(net, TensorSpec((None, 2)))
    arena_nodes = {b.node for b in plan.memory.buffers}
    assert not arena_nodes & set(plan.graph.graph["outputs"])
    assert not arena_nodes & set(plan.graph.graph["inputs"])
