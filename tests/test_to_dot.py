"""to_dot: the IR as Graphviz DOT text (structure checked here; no graphviz needed)."""

import re
import sys
import types

import pytest

from compiler import Input, Model, Sequential, TensorSpec, compile, layers, lower
from compiler.ir import to_dot
from compiler.passes import BUILD_PIPELINE, CompileContext, run_pipeline

NODE = re.compile(r'^  (n\d+|out\d+) \[label="((?:[^"\\]|\\.)*)", (.*)\];$')
EDGE = re.compile(r'^  (n\d+|out\d+) -> (n\d+|out\d+) \[label="((?:[^"\\]|\\.)*)"\];$')


def parse(text):
    """``{id: (label, style)}`` and ``[(src, dst, label)]``; fails on any other line."""
    lines = text.splitlines()
    assert lines[0].startswith("digraph ") and lines[0].endswith("{") and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[2:-1]:
        if m := NODE.match(line):
            assert m.group(1) not in nodes
            nodes[m.group(1)] = (m.group(2).replace("\\n", "\n"), m.group(3))
        elif m := EDGE.match(line):
            edges.append((m.group(1), m.group(2), m.group(3)))
        else:
            raise AssertionError(f"not a node or an edge: {line!r}")
    for src, dst, _ in edges:
        assert src in nodes and dst in nodes
    return nodes, edges


def cnn():
    x = Input((None, None, 3))
    h = layers.Conv2D(16, 3, activation="relu", name="conv")(x)
    s = layers.Dense(16, activation="sigmoid")(layers.GlobalAveragePooling2D()(h))
    h = layers.Multiply(name="excite")([h, layers.Reshape((1, 1, 16))(s)])
    return Model(x, layers.Dense(10, name="head")(layers.GlobalMaxPooling2D()(h)))


def test_every_node_and_edge_appears_with_symbolic_shapes():
    model = cnn()
    g = lower(model, [TensorSpec((None, None, None, 3)).to_type(model.dtype)])
    g = run_pipeline(g, BUILD_PIPELINE, CompileContext(seed=0))
    nodes, edges = parse(to_dot(g))
    assert {f"n{n}" for n in g.nodes} | {"out0"} == set(nodes)
    want = sorted((f"n{u}", f"n{v}") for u, v, d in g.edges(data=True) for _ in d["positions"])
    assert sorted((s, d) for s, d, _ in edges if d != "out0") == want
    labels = {(s, d): lab for s, d, lab in edges}
    (conv,) = [n for n, d in g.nodes(data=True) if d["op"] == "conv2d"]
    (pool,) = [n for n, d in g.nodes(data=True) if d["op"] == "global_avg_pool2d"]
    assert labels[(f"n{conv}", f"n{pool}")] == "(N, H-2, W-2, 16)"
    assert "'conv'" in nodes[f"n{conv}"][0] and "filters=16" in nodes[f"n{conv}"][0]
    assert "activation=relu" in nodes[f"n{conv}"][0]
    (mul,) = [n for n, d in g.nodes(data=True) if d["op"] == "multiply"]
    into_mul = sorted(lab for s, d, lab in edges if d == f"n{mul}")
    assert into_mul == ["#0 (N, H-2, W-2, 16)", "#1 (N, 1, 1, 16)"]
    assert labels[(f"n{[n for n in g.graph['outputs']][0]}", "out0")] == "(N, 10)"
    # params are drawn differently from ops and inputs, and name their weight
    params = [f"n{n}" for n, d in g.nodes(data=True) if d["op"] == "param"]
    assert {nodes[p][1] for p in params} == {nodes[params[0]][1]}
    assert all("cylinder" in nodes[p][1] for p in params)
    assert not any("cylinder" in style for n, (_, style) in nodes.items() if n not in params)
    assert any(lab.endswith(" conv/kernel\n(3, 3, 3, 16) float32") for lab, _ in nodes.values())


def test_plan_to_dot_shows_the_final_ir():
    net = Sequential([layers.Dense(8), layers.Dropout(0.5), layers.ReLU(), layers.Dense(2)])
    plan = compile(net, TensorSpec((None, 5)))
    nodes, edges = parse(plan.to_dot())
    ops = [lab.split("\n")[0].split(" ", 1)[1] for lab, _ in nodes.values()
           if lab.startswith("%") and "input" not in lab and "/" not in lab.split("\n")[0]]
    assert sorted(ops) == ["dense", "dense"]  # the dropout and the relu were fused away
    assert any("activation=relu" in lab for lab, _ in nodes.values())
    assert {lab for _, _, lab in edges} >= {"(N, 5)", "(N, 8)", "(N, 2)"}
    assert plan.to_dot() == to_dot(plan.graph)


def test_labels_are_escaped():
    x = Input((3,), name='in"put\\')
    model = Model(x, layers.Dense(2)(x), name='my "model"')
    text = compile(model).to_dot()
    assert text.startswith('digraph "my \\"model\\"" {')
    nodes, _ = parse(text)
    assert any('in\\"put\\\\' in lab for lab, _ in nodes.values())


def test_rendering_needs_graphviz(tmp_path, monkeypatch):
    g = compile(Sequential([layers.Dense(2)]), TensorSpec((None, 3))).graph
    monkeypatch.setitem(sys.modules, "graphviz", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install graphviz"):
        to_dot(g, path=str(tmp_path / "x.png"))
    text = to_dot(g, path=tmp_path / "x.dot")  # the text needs nothing
    assert (tmp_path / "x.dot").read_text() == text


def test_rendering_hands_the_text_to_graphviz(tmp_path, monkeypatch):
    calls = []

    class Source:
        def __init__(self, text):
            self.text = text

        def render(self, **kwargs):
            calls.append((self.text, kwargs))

    monkeypatch.setitem(sys.modules, "graphviz", types.SimpleNamespace(Source=Source))
    g = compile(Sequential([layers.Dense(2)]), TensorSpec((None, 3))).graph
    text = to_dot(g, path=str(tmp_path / "x.svg"))
    assert calls == [(text, {"outfile": str(tmp_path / "x.svg"), "format": "svg",
                             "cleanup": True})]
