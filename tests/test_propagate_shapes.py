"""propagate_shapes: Before -> pass -> Expected, symbolic dims, conflicts, idempotence."""

import pytest

from compiler import Input, Model, Sequential, ShapeError, TensorSpec, layers, lower
from compiler.ir import topo_nodes
from compiler.passes import CompileContext, propagate_shapes
from compiler.symbolic import Dim, format_shape
from compiler.types import TensorType


def shapes_after(model, *specs):
    g = lower(model, [s.to_type(model.dtype, i) for i, s in enumerate(specs)])
    propagate_shapes(g, CompileContext())
    return g, [format_shape(g.nodes[n]["type"].shape) for n in topo_nodes(g)
               if g.nodes[n]["op"] not in ("input", "param")]


def test_mlp_fills_every_size_and_keeps_batch_symbolic():
    net = Sequential([layers.Dense(256, activation="relu"), layers.Dense(10)])
    g, outs = shapes_after(net, TensorSpec((None, 20)))
    assert outs == ["(N, 256)", "(N, 10)"]
    kernels = [format_shape(d["type"].shape) for _, d in g.nodes(data=True) if d["op"] == "param"]
    assert kernels == ["(20, 256)", "(256,)", "(256, 10)", "(10,)"]
    assert not net.built  # the pass never touches the model


def test_before_the_pass_parameters_are_partial():
    net = Sequential([layers.Dense(256), layers.Dense(10)])
    g = lower(net, [TensorSpec((None, 20)).to_type(net.dtype)])
    kernels = [format_shape(d["type"].shape) for _, d in g.nodes(data=True) if d["op"] == "param"]
    assert kernels == ["(?, 256)", "(256,)", "(?, 10)", "(10,)"]


def test_named_and_concrete_batch_and_higher_rank():
    net = Sequential([layers.Dense(7), layers.Flatten(), layers.Dense(3)])
    _, outs = shapes_after(net, TensorSpec(("B", 5, 4)))
    assert outs == ["(B, 5, 7)", "(B, 35)", "(B, 3)"]
    _, outs = shapes_after(net, TensorSpec((None, None, 4)))
    assert outs[0] == "(N, L, 7)" and outs[1] == "(N, 7*L)"


def test_reshape_infers_minus_one():
    net = Sequential([layers.Reshape((-1, 4)), layers.Dense(2)])
    _, outs = shapes_after(net, TensorSpec((None, 12)))
    assert outs == ["(N, 3, 4)", "(N, 3, 2)"]
    with pytest.raises(ShapeError, match=r"cannot reshape \(N, 10\)"):
        shapes_after(Sequential([layers.Reshape((-1, 4))]), TensorSpec((None, 10)))


def test_symbol_meeting_a_known_width_is_bound():
    net = Sequential([layers.Dense(4)])
    net.build((None, 6))
    g, outs = shapes_after(net, TensorSpec((None, None)))
    (inp,) = g.graph["inputs"]
    assert format_shape(g.nodes[inp]["type"].shape) == "(N, 6)"


def test_conflict_names_layer_axis_and_both_sizes():
    net = Sequential([layers.Dense(4)])
    net.build((None, 6))
    with pytest.raises(ShapeError, match=r"layer 'dense' \(Dense\).*kernel axis 0: expected 6, "
                                         r"received 5"):
        shapes_after(net, TensorSpec((None, 5)))


def test_rank_error_is_precise():
    with pytest.raises(ShapeError, match=r"Dense expects rank >= 2, received rank 1 \(N,\)"):
        shapes_after(Sequential([layers.Dense(4)]), TensorSpec((None,)))


def test_unknown_rank_degrades_gracefully():
    net = Sequential([layers.Dense(4), layers.Activation("tanh")])
    g = lower(net, [TensorType(None)])
    propagate_shapes(g, CompileContext())
    outs = [g.nodes[n]["type"].shape for n in topo_nodes(g) if g.nodes[n]["op"] == "dense"]
    assert outs == [None]


def test_multi_input_batches_unify_through_a_shared_layer():
    shared = layers.Dense(3)
    a, b = Input((5,)), Input((5,))
    model = Model([a, b], [shared(a), shared(b)])
    g, outs = shapes_after(model, TensorSpec((None, 5)), TensorSpec((None, 5)))
    assert outs == ["(N, 3)", "(N1, 3)"]


def test_running_the_pass_twice_changes_nothing():
    net = Sequential([layers.Dense(8), layers.ReLU(), layers.Dense(2)])
    g, first = shapes_after(net, TensorSpec((None, 3)))
    before = {n: d["type"] for n, d in g.nodes(data=True)}
    propagate_shapes(g, CompileContext())
    assert before == {n: d["type"] for n, d in g.nodes(data=True)}


def test_symbolic_dim_objects_survive():
    net = Sequential([layers.Dense(8)])
    g, _ = shapes_after(net, TensorSpec((None, 3)))
    (out,) = g.graph["outputs"]
    assert g.nodes[out]["type"].shape[0] == Dim.symbol("N")


def test_reshape_layer_minus_one_over_a_symbolic_element_count_is_checked_at_run_time():
    """``(N, L, 3)`` into ``(N, -1, 2)``: ``3*L`` elements are even only for even ``L``, which
    only the run time knows; the error names the layer and both counts."""
    import numpy as np

    from compiler import compile

    x = Input((None, 3), name="x")
    plan = compile(Model(x, layers.Reshape((-1, 2), name="rs")(x)))
    v = np.arange(12, dtype=np.float32).reshape(1, 4, 3)
    np.testing.assert_array_equal(plan(v), v.reshape(1, 6, 2))
    with pytest.raises(ShapeError, match=r"layer 'rs' \(Reshape\): Reshape to \(N, -1, 2\): "
                                         r"element count .*= 8, received 3\*L = 9"):
        plan(np.zeros((1, 3, 3), np.float32))
