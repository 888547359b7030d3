"""The IR: a ``networkx.DiGraph`` with one node per op, plus small helpers over it.

Node attributes: ``op`` (registered op name, or ``"input"`` / ``"param"``), ``attrs`` (dict),
``type`` (``TensorType`` of the node's value), ``origin`` (an ``Origin``: the name and class of the
layer that produced it, for error messages; ``None`` for inputs). Nothing in a graph points back
at a frontend object. Param nodes also carry ``key`` (the weight's qualified name,
``"dense_1/kernel"``), ``param`` (its role for the kernel, ``"kernel"``), ``init`` (a
``weights.ParamInit``) or ``derived`` (a ``weights.Derived``), and, once initialized, ``value``;
``prepared`` marks a derived copy in a kernel's layout, read beside the op's declared params.
An op node may carry ``kernel``: the runtime kernel a pass chose for it (default: its op's).
An edge ``u -> v`` carries ``positions``: the operand slots of ``v`` that read ``u`` (a tuple,
since one value may feed several slots). ``graph.graph`` holds ``inputs`` and ``outputs`` (node
lists), ``name`` and ``weights`` (the ``WeightStore`` the keys refer to, when lowered from a model).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx

from .dtypes import VALUE_DTYPES, computes_in_model_dtype, input_conversions, model_dtype
from .errors import DTypeError, ShapeError
from .symbolic import format_shape

SOURCE_OPS = ("input", "param")


@dataclass(frozen=True)
class Origin:
    """Where a node comes from: the layer's name and class name (plain data, for messages)."""

    name: str
    kind: str


def new_graph(name: str = "model") -> nx.DiGraph:
    g = nx.DiGraph(name=name, inputs=[], outputs=[], next_id=0)
    return g


def add_node(g: nx.DiGraph, op: str, operands: Iterable[int] = (), *, attrs: dict | None = None,
             origin: Origin | None = None, type=None, **extra) -> int:
    """Append a node reading ``operands`` (in order); returns its id."""
    node = g.graph["next_id"]
    g.graph["next_id"] = node + 1
    g.add_node(node, op=op, attrs=dict(attrs or {}), origin=origin, type=type,
               **extra)
    slots: dict[int, tuple] = {}  # a new node has no edges yet: group its slots per source
    for pos, src in enumerate(operands):
        slots[src] = slots.get(src, ()) + (pos,)
    for src, positions in slots.items():
        g.add_edge(src, node, positions=positions)
    return node


def operands(g: nx.DiGraph, node: int) -> list[int]:
    """The nodes ``node`` reads, in operand order."""
    slots: dict[int, int] = {}
    # networkx's own predecessor dict ({source: edge data}): the views cost more than the walk
    for src, data in g._pred[node].items():
        for pos in data["positions"]:
            slots[pos] = src
    return [slots[i] for i in range(len(slots))]


def split_operands(g: nx.DiGraph, node: int) -> tuple[list[int], dict[str, int]]:
    """``(data_operands, param_operands)`` from one walk of the node's in-edges (passes that
    visit every node need both; each alone walks them again)."""
    nodes = g._node  # networkx's node-attribute dict, without the view's per-lookup checks
    data, params = [], {}
    for n in operands(g, node):
        if nodes[n]["op"] == "param":
            params[nodes[n]["param"]] = n
        else:
            data.append(n)
    return data, params


def data_operands(g: nx.DiGraph, node: int) -> list[int]:
    return [n for n in operands(g, node) if g.nodes[n]["op"] != "param"]


def param_operands(g: nx.DiGraph, node: int) -> dict[str, int]:
    return {g.nodes[n]["param"]: n for n in operands(g, node) if g.nodes[n]["op"] == "param"}


def replace_uses(g: nx.DiGraph, old: int, new: int) -> None:
    """Make every reader of ``old`` (and the graph outputs) read ``new`` instead."""
    for _, dst, data in list(g.out_edges(old, data=True)):
        if g.has_edge(new, dst):
            g.edges[new, dst]["positions"] += data["positions"]
        else:
            g.add_edge(new, dst, positions=data["positions"])
        g.remove_edge(old, dst)
    g.graph["outputs"] = [new if n == old else n for n in g.graph["outputs"]]


def users(g: nx.DiGraph, node: int) -> list[int]:
    return list(g.successors(node))


def topo_nodes(g: nx.DiGraph) -> list[int]:
    """Nodes in topological order: sources (inputs, params) first, then ops by id.

    An op node is only ever created after the ops it reads (an invariant ``verify`` checks;
    passes that rewrite may add new *param* nodes freely), so sorting is a topological sort:
    near-linear and deterministic, which matters for 10,000-layer models.
    """
    nodes = g._node
    ordered = sorted(nodes)
    return ([n for n in ordered if nodes[n]["op"] in SOURCE_OPS]
            + [n for n in ordered if nodes[n]["op"] not in SOURCE_OPS])


def layer_name(g: nx.DiGraph, node: int) -> str:
    origin = g.nodes[node].get("origin")
    return origin.name if origin is not None else f"%{node}"


def layer_kind(g: nx.DiGraph, node: int) -> str:
    """The producing layer's class name, else the op name."""
    origin = g.nodes[node].get("origin")
    return origin.kind if origin is not None else g.nodes[node]["op"]


def format_node(g: nx.DiGraph, node: int) -> str:
    """One line: ``%3 = dense[units=256](%0, %1, %2) : (N, 256) float32  # dense``."""
    data = g.nodes[node]
    attrs = ", ".join(f"{k}={v}" for k, v in data["attrs"].items())
    op = data["op"] + (f"[{attrs}]" if attrs else "")
    if data["op"] == "param":
        op += f" {data.get('key', data['param'])}"
    # slot by slot, a missing one as ``%?``: verify formats nodes whose slots are broken
    slots = {pos: src for src, d in g._pred[node].items() for pos in d["positions"]}
    args = ", ".join(f"%{slots[i]}" if i in slots else "%?"
                     for i in range(max(slots, default=-1) + 1))
    t = data.get("type")
    ty = f" : {format_shape(t.shape)} {t.dtype}" if t is not None else ""
    where = f"  # {layer_name(g, node)}" if data.get("origin") is not None else ""
    return f"%{node} = {op}({args}){ty}{where}"


def dump(g: nx.DiGraph) -> str:
    """The whole graph, one node per line, then its outputs."""
    lines = [format_node(g, n) for n in topo_nodes(g)]
    lines.append("return " + ", ".join(f"%{n}" for n in g.graph["outputs"]))
    return "\n".join(lines)


def verify(g: nx.DiGraph) -> None:
    """Invariants every pass must keep; raises ``AssertionError`` naming the node.

    Structure (operands created before their readers, operand slots, arity per ``OpDef.arity``),
    types (every value has a dtype; ops that run an epilogue or are one read and write one
    dtype), parameters (an op with a ``param_spec`` reads exactly the params it declares for its
    attrs, e.g. no ``bias`` when ``use_bias=False``), and no dangling nodes: every op and param is
    read by an op or returned. Only graph inputs may go unread (a model may ignore an input that
    is part of its signature).
    """
    from .ops.registry import AS_ACTIVATION, OUTPUT_FUSABLE, Unifier, registered_ops

    ops = registered_ops()
    outputs = set(g.graph["outputs"])
    for src, dst in g.edges:  # with sources having no operands, this proves the graph acyclic
        assert src < dst or g.nodes[src]["op"] in SOURCE_OPS, \
            f"{format_node(g, dst)}: reads %{src}, created after it"
    for node, data in g.nodes(data=True):
        op = data.get("op")
        t = data.get("type")
        assert t is not None and t.dtype is not None, f"{format_node(g, node)}: no dtype"
        if op != "input":
            assert g.out_degree(node) > 0 or node in outputs, \
                f"{format_node(g, node)}: dangling (read by no op and not returned)"
        if op in SOURCE_OPS:
            assert g.in_degree(node) == 0, f"{format_node(g, node)}: a source node has operands"
            continue
        assert op in ops, f"{format_node(g, node)}: unknown op {op!r}"
        opdef = ops[op]
        slots = sorted(p for _, _, d in g.in_edges(node, data=True) for p in d["positions"])
        assert slots == list(range(len(slots))), f"{format_node(g, node)}: operand slots {slots}"
        fewest, most = opdef.arity(data["attrs"])
        data_in, all_params = split_operands(g, node)
        params = all_params
        assert fewest <= len(data_in) and (most is None or len(data_in) <= most), \
            f"{format_node(g, node)}: {len(data_in)} data operands, op {op} takes {fewest}..{most}"
        if opdef.param_spec is not None:
            declared = opdef.param_shapes([g.nodes[n]["type"] for n in data_in], data["attrs"])
            params = {r: n for r, n in params.items() if not g.nodes[n].get("prepared")}
            assert set(params) == set(declared), \
                (f"{format_node(g, node)}: reads params {sorted(params)}, op {op} declares "
                 f"{sorted(declared)} for attrs {data['attrs']}")
        _verify_dtypes(g, node, opdef, data_in, all_params, Unifier)
        if opdef.traits & {OUTPUT_FUSABLE, AS_ACTIVATION}:
            # data operands of another dtype are converted on read (compiler.dtypes)
            converted = input_conversions(g, node, data_in)
            for n in (*(n for n, c in zip(data_in, converted) if c is None), *params.values()):
                assert g.nodes[n]["type"].dtype == t.dtype, \
                    (f"{format_node(g, node)}: operand %{n} is {g.nodes[n]['type'].dtype}, "
                     f"op {op} computes in {t.dtype}")
    for n in g.graph["inputs"]:
        assert g.nodes[n]["op"] == "input", f"graph input %{n} is not an input node"
    for n in outputs:
        assert n in g, f"graph output %{n} is not in the graph"


def _verify_dtypes(g: nx.DiGraph, node: int, opdef, data_in, params: dict, unifier) -> None:
    """Every value has a supported dtype, and the op's dtype rule agrees with the node's."""
    data = g.nodes[node]
    t = data["type"]
    assert t.dtype in VALUE_DTYPES, \
        f"{format_node(g, node)}: dtype {t.dtype} is not one of {[str(d) for d in VALUE_DTYPES]}"
    if computes_in_model_dtype(data["op"], opdef):
        want = model_dtype(g)
    else:
        try:
            want = opdef.shape_rule([g.nodes[n]["type"] for n in data_in],
                                    {k: g.nodes[p]["type"] for k, p in params.items()},
                                    data["attrs"], unifier()).dtype
        except DTypeError as e:  # e.g. take with float indices
            raise AssertionError(f"{format_node(g, node)}: op {data['op']} does not accept "
                                 f"operand dtypes "
                                 f"{[str(g.nodes[n]['type'].dtype) for n in data_in]}: {e}"
                                 ) from None
        except ShapeError:  # shapes are propagate_shapes' business, not this check's
            return
    operand_dtypes = [str(g.nodes[n]["type"].dtype) for n in data_in]
    assert t.dtype == want, (f"{format_node(g, node)}: op {data['op']} on operand dtypes "
                             f"{operand_dtypes} gives {want}, the node says {t.dtype}")


# -- pictures ------------------------------------------------------------------------------------
_DOT_STYLE = {  # sources look different from ops, so weights stand out from the data flow
    "input": 'shape=oval, style=filled, fillcolor="#dbeafe"',
    "param": 'shape=cylinder, style=filled, fillcolor="#fef3c7", fontsize=10',
    "output": 'shape=oval, style=filled, fillcolor="#dcfce7"',
    "op": 'shape=box, style="rounded,filled", fillcolor="#f3f4f6"',
}


def _dot_quote(text: str) -> str:
    """A DOT string literal; lines are separated by ``\\n`` (centered lines)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_attrs(attrs: dict, width: int = 36) -> list[str]:
    """``key=value`` pairs, wrapped into lines of about ``width`` characters."""
    lines: list[str] = []
    for k, v in attrs.items():
        item = f"{k}={v}"
        if lines and len(lines[-1]) + len(item) + 2 <= width:
            lines[-1] += ", " + item
        else:
            lines.append(item)
    return lines


def _dot_label(g: nx.DiGraph, node: int) -> str:
    data = g.nodes[node]
    op, t = data["op"], data.get("type")
    if op == "input":
        lines = [f"%{node} input '{data['attrs'].get('name', node)}'"]
    elif op == "param":
        lines = [f"%{node} {data['key']}"]
    else:
        lines = [f"%{node} {op}"]
        if data.get("origin") is not None:
            lines.append(f"'{layer_name(g, node)}'")
        lines += _dot_attrs(data["attrs"])
    if op in SOURCE_OPS and t is not None:
        lines.append(f"{format_shape(t.shape)} {t.dtype}")
    return "\n".join(lines)


def _edge_label(t, model_dtype) -> str:
    """A value's symbolic shape, and its dtype where that is not the model's."""
    if t is None:
        return "?"
    return format_shape(t.shape) + ("" if t.dtype == model_dtype else f" {t.dtype}")


def to_dot(g: nx.DiGraph, path: str | None = None) -> str:
    """The IR as Graphviz DOT text: the picture of a model after any pass (Keras ``plot_model``).

    Ops are boxes labelled with their op, layer name and attributes; inputs are ovals; parameters
    are cylinders; every edge carries the symbolic shape of the value it moves (``(N, H-2, W-2,
    16)``, followed by its dtype where that is not the model's: ``(N, 5) bool``), so the inferred
    sizes can be read off the picture.

    Args:
        g: an IR graph (``lower``'s output, or any pass's; ``plan.graph`` is the final one).
        path: when given, also render to this file with the ``graphviz`` Python package, the
            format taken from the suffix (``.png``, ``.svg``, ``.pdf``); ``.dot``/``.gv`` just
            writes the text.
    Returns:
        The DOT text.
    """
    lines = [f"digraph {_dot_quote(str(g.graph.get('name', 'model')))} {{",
             '  rankdir=TB; node [fontname="Helvetica", fontsize=11]; '
             'edge [fontname="Helvetica", fontsize=9];']
    for node in topo_nodes(g):
        op = g.nodes[node]["op"]
        style = _DOT_STYLE[op if op in SOURCE_OPS else "op"]
        lines.append(f"  n{node} [label={_dot_quote(_dot_label(g, node))}, {style}];")
    from .dtypes import model_dtype

    base = model_dtype(g)
    for src, dst, data in sorted(g.edges(data=True), key=lambda e: (e[1], e[0])):
        shape = _edge_label(g.nodes[src].get("type"), base)
        many = g.nodes[src]["op"] != "param" and len(data_operands(g, dst)) > 1
        for pos in data["positions"]:
            label = f"#{pos} {shape}" if many else shape  # operand slot, where order matters
            lines.append(f"  n{src} -> n{dst} [label={_dot_quote(label)}];")
    for i, node in enumerate(g.graph["outputs"]):
        shape = _edge_label(g.nodes[node].get("type"), base)
        lines.append(f"  out{i} [label={_dot_quote(f'output {i}')}, {_DOT_STYLE['output']}];")
        lines.append(f"  n{node} -> out{i} [label={_dot_quote(shape)}];")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        _render_dot(text, str(path))
    return text


def _render_dot(text: str, path: str) -> None:
    import os

    stem, suffix = os.path.splitext(path)
    fmt = suffix.lstrip(".").lower()
    if fmt in ("dot", "gv"):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return
    try:
        import graphviz
    except ImportError:
        raise ImportError(
            f"to_dot(path={path!r}) renders with the 'graphviz' Python package (and Graphviz's "
            f"'dot' program), which is not installed: pip install graphviz; or call to_dot() "
            f"without a path for the DOT text, or give a .dot path") from None
    if not fmt:
        raise ValueError(f"to_dot: give the picture's format as a suffix (x.png, x.svg), "
                         f"received path={path!r}")
    graphviz.Source(text).render(outfile=path, format=fmt, cleanup=True)
