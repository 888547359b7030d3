"""verify: hand-broken graphs fail loudly, naming the node; runtime refuses a misspelled param."""

import dataclasses

import numpy as np
import pytest

from compiler import CompilerError, Sequential, TensorSpec, compile, layers
from compiler.driver import build_graph
from compiler.ir import add_node, verify
from compiler.passes import COMPILE_PIPELINE, CompileContext, prepare_dense, run_pipeline
from runtime import Plan

#: without prepare_dense, so the hand-broken graphs below keep the plain ``dense`` kernel and
#: its operand slots (prepare_dense's own graphs are tested in test_small_dense.py)
PIPELINE = [p for p in COMPILE_PIPELINE if p is not prepare_dense]


def compiled_graph(model, spec):
    graph, ctx = build_graph(model, [spec], PIPELINE, seed=0)
    return graph, ctx


def dense_graph(**kwargs):
    graph, _ = compiled_graph(Sequential([layers.Dense(3, **kwargs), layers.Dense(2)]),
                              TensorSpec((None, 4)))
    verify(graph)
    return graph


def node_of(g, op, nth=0):
    return sorted(n for n, d in g.nodes(data=True) if d["op"] == op)[nth]


def test_wrong_arity_names_the_node_and_the_counts():
    g = dense_graph()
    second = node_of(g, "dense", 1)
    g.add_edge(g.graph["inputs"][0], second, positions=(3,))  # a second data operand
    with pytest.raises(AssertionError, match=r"%\d+ = dense.*2 data operands, op dense takes 1"):
        verify(g)


def test_a_missing_operand_slot_is_reported_not_crashed_on():
    g = dense_graph()
    first = node_of(g, "dense")
    g.remove_edge(g.graph["inputs"][0], first)  # slot 0 gone: slots 1, 2 left
    with pytest.raises(AssertionError, match=r"= dense.*\(%\?, %\d+, %\d+\).*operand slots "
                                             r"\[1, 2\]"):
        verify(g)


def test_dangling_op_is_refused():
    g = dense_graph()
    first = node_of(g, "dense")
    add_node(g, "activation", [first], attrs={"activation": "relu"},
             type=g.nodes[first]["type"])
    with pytest.raises(AssertionError, match=r"activation.*dangling \(read by no op"):
        verify(g)


def test_dangling_param_is_refused_but_an_unread_input_is_fine():
    g = dense_graph()
    add_node(g, "param", param="kernel", key="orphan/kernel", type=g.nodes[0]["type"])
    with pytest.raises(AssertionError, match="orphan/kernel.*dangling"):
        verify(g)


def test_misspelled_param_is_refused_by_verify():
    g = dense_graph()
    kernel = next(n for n in g.predecessors(node_of(g, "dense"))
                  if g.nodes[n].get("param") == "kernel")
    g.nodes[kernel]["param"] = "kernal"
    with pytest.raises(AssertionError, match=r"reads params \['bias', 'kernal'\], op dense "
                                             r"declares \['bias', 'kernel'\]"):
        verify(g)


def test_param_of_another_dtype_is_refused():
    g = dense_graph()
    kernel = next(n for n in g.predecessors(node_of(g, "dense"))
                  if g.nodes[n].get("param") == "kernel")
    g.nodes[kernel]["type"] = dataclasses.replace(g.nodes[kernel]["type"],
                                                  dtype=np.dtype(np.float64))
    with pytest.raises(AssertionError, match="is float64, op dense computes in float32"):
        verify(g)


def test_verify_each_catches_the_pass_that_broke_the_graph():
    net = Sequential([layers.Dense(3), layers.Dense(2)])
    g, _ = compiled_graph(net, TensorSpec((None, 4)))

    def leave_a_dangling_node(graph, ctx):
        first = node_of(graph, "dense")
        add_node(graph, "activation", [first], attrs={"activation": "tanh"},
                 type=graph.nodes[first]["type"])
        return graph

    with pytest.raises(AssertionError, match="dangling"):
        run_pipeline(g, [leave_a_dangling_node], CompileContext(verify_each=True))


def test_runtime_refuses_a_param_name_its_kernel_does_not_take():
    graph, ctx = compiled_graph(Sequential([layers.Dense(3, name="head")]), TensorSpec((None, 4)))
    steps = graph.graph["schedule"]
    steps[0] = dataclasses.replace(steps[0], params=tuple(
        ("kernal" if name == "kernel" else name, node) for name, node in steps[0].params))
    with pytest.raises(CompilerError, match=r"layer 'head': kernel 'dense' takes params "
                                            r"\['kernel', 'bias'\] \(optional: \['bias'\]\), "
                                            r"the node reads \['bias', 'kernal'\]; unknown: "
                                            r"\['kernal'\]; missing: \['kernel'\]"):
        Plan(graph, ctx.records)


def test_absent_optional_params_stay_allowed():
    net = Sequential([layers.Dense(3, use_bias=False),
                      layers.LayerNormalization(center=False, scale=False)])
    plan = compile(net, TensorSpec((None, 4)))
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    h = x @ net.layers[0].get_weights()[0]
    mean, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
    np.testing.assert_allclose(plan(x), (h - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5)


def test_the_test_suite_verifies_after_every_pass():
    assert CompileContext().verify_each
