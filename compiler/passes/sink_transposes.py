"""Sinking transposes: push ``transpose`` nodes through layout-agnostic ops until pairs cancel.

A model imported from an NCHW framework reaches us as our NHWC ops, each wrapped in transposes
(NCHW -> NHWC before it, back after). Between two such ops sit element-wise ops, merges,
concatenations, reductions... which do not care about the layout: pushing the "back to NCHW"
transpose below them brings it next to the next op's "to NHWC" transpose, and the two cancel.
Once done, a CNN keeps transposes only at its input and output. The rules follow tf2onnx's
transpose optimizer (``tf2onnx/optimizer/transpose_optimizer.py``):

- ``T2(T1(x))`` -> one transpose of the composed permutation, or ``x`` when that is the identity;
- a transpose of a constant or of a weight is folded into it (a weight through a ``Derived``
  ``relayout``, so ``set_weights`` is still seen);
- ``op(T(x), T(y), c)`` -> ``T(op(x, y, c'))`` for an op that does not care about the layout:
  element-wise ops (broadcasting ones with the other operands constants, weights or scalars,
  re-laid out once), ``concatenate``/``softmax``/``log_softmax``/``sum``/``mean``/``max``/``min``
  with their axis remapped, ``pad`` and ``slice`` with their per-axis attrs permuted.

An op is only rewritten when that does not add transposes (the transposes it reads and that
nothing else reads go away, one comes out below it), so the pass never adds transposes, and it
runs to a fixed point: running it twice changes nothing. It runs before ``fold_batch_norm`` and
``fuse``, so epilogues still fuse once the transposes are gone. Node ids are renumbered in
topological order afterwards (``ir.verify`` demands readers after their operands).
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np

from ..broadcast import expand_rank
from ..ir import Origin, add_node, data_operands, operands, replace_uses, topo_nodes, users
from ..ops import get_op
from ..ops.merge import normalize_axis
from ..ops.primitives import reduction_axes
from ..ops.registry import ELEMENTWISE
from ..types import TensorType
from ..weights import Derived, register_derivation

TRANSPOSE = "transpose"
#: ops whose single ``axis`` attr names an axis of their input (and output)
AXIS_OPS = ("concatenate", "softmax", "log_softmax")
REDUCE_OPS = ("sum", "mean", "max", "min")
#: ops with one entry per axis in an attr
PER_AXIS_OPS = {"pad": ("pad_width",), "slice": ("start", "shape")}
MAX_SWEEPS = 1000


def _relayout(sources: dict, attrs: dict) -> np.ndarray:
    """A weight broadcast against a transposed value: expanded to full rank, then permuted."""
    value = np.asarray(sources["value"])
    return np.ascontiguousarray(np.transpose(value.reshape(attrs["shape"]), attrs["axes"]))


register_derivation("relayout", _relayout)


def transpose_perm(g: nx.DiGraph, node: int) -> tuple[int, ...]:
    """The permutation a ``transpose`` node applies (its ``axes``, default reversed)."""
    rank = len(g.nodes[node]["type"].shape)
    axes = g.nodes[node]["attrs"].get("axes")
    if axes is None:
        return tuple(range(rank))[::-1]
    return tuple(normalize_axis(a, rank, "transpose") for a in axes)


def count_transposes(g: nx.DiGraph) -> int:
    return sum(1 for _, op in g.nodes(data="op") if op == TRANSPOSE)


def _inverse(perm: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def _identity(perm: Sequence[int]) -> bool:
    return tuple(perm) == tuple(range(len(perm)))


def _dangling(g: nx.DiGraph, node: int) -> bool:
    return g.out_degree(node) == 0 and node not in g.graph["outputs"]


def _remove_if_dangling(g: nx.DiGraph, node: int) -> None:
    """Remove ``node`` and then whatever only it read (params, constants) once unread."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n in g and _dangling(g, n) and g.nodes[n]["op"] != "input":
            srcs = list(g.predecessors(n))
            g.remove_node(n)
            stack.extend(srcs)


def _set_operand(g: nx.DiGraph, node: int, pos: int, new: int) -> None:
    """Make operand slot ``pos`` of ``node`` read ``new``."""
    old = operands(g, node)[pos]
    edge = g.edges[old, node]
    edge["positions"] = tuple(p for p in edge["positions"] if p != pos)
    if not edge["positions"]:
        g.remove_edge(old, node)
    if g.has_edge(new, node):
        g.edges[new, node]["positions"] += (pos,)
    else:
        g.add_edge(new, node, positions=(pos,))


# -- transposes of transposes, constants and weights ----------------------------------------------
def _simplify(g: nx.DiGraph, t: int) -> bool:
    (src,) = data_operands(g, t)
    op = g.nodes[src]["op"]
    perm = transpose_perm(g, t)
    if _identity(perm):
        replace_uses(g, t, src)
        g.remove_node(t)
        return True
    if op == TRANSPOSE:
        inner = transpose_perm(g, src)
        composed = tuple(inner[j] for j in perm)
        (x,) = data_operands(g, src)
        if _identity(composed):
            replace_uses(g, t, x)
            g.remove_node(t)
        else:
            _set_operand(g, t, 0, x)
            g.nodes[t]["attrs"] = {**g.nodes[t]["attrs"], "axes": composed}
        _remove_if_dangling(g, src)
        return True
    if op in ("constant", "variable"):
        folded = _relaid_operand(g, src, g.nodes[src]["type"].shape, perm, origin_of=t)
        replace_uses(g, t, folded)
        g.remove_node(t)
        _remove_if_dangling(g, src)
        return True
    return False


def _relaid_operand(g: nx.DiGraph, src: int, full_shape: tuple, perm: Sequence[int],
                    origin_of: int) -> int:
    """A new constant/variable node holding ``src``'s value reshaped to ``full_shape`` and
    permuted by ``perm`` (``np.transpose(value.reshape(full_shape), perm)``)."""
    data = g.nodes[src]
    dtype = data["type"].dtype
    out_shape = tuple(full_shape[a] for a in perm)
    origin = data.get("origin") or g.nodes[origin_of].get("origin")
    if data["op"] == "constant":
        value = np.transpose(np.asarray(data["attrs"]["value"]).reshape(full_shape), perm)
        attrs = {**data["attrs"], "value": np.ascontiguousarray(value)}
        return add_node(g, "constant", attrs=attrs, origin=origin,
                        type=TensorType(out_shape, dtype))
    (param,) = operands(g, src)
    pdata = g.nodes[param]
    source = pdata.get("derived") or pdata["key"]
    spec = Derived("relayout", (("value", source),),
                   (("axes", tuple(perm)), ("shape", tuple(full_shape))))
    value = _relayout({"value": pdata["value"]}, dict(spec.attrs)) \
        if pdata.get("value") is not None else None
    extra = {k: pdata[k] for k in ("weight",) if k in pdata}
    new_param = add_node(g, "param", origin=pdata.get("origin"), param=pdata["param"],
                         key=f"{pdata['key']}+relayout{''.join(map(str, perm))}",
                         type=TensorType(out_shape, pdata["type"].dtype), value=value,
                         derived=spec, **extra)
    return add_node(g, "variable", [new_param], attrs={**data["attrs"], "shape": out_shape},
                    origin=origin, type=TensorType(out_shape, dtype))


# -- sinking a transpose below the op that reads it ----------------------------------------------
def _layout_agnostic(g: nx.DiGraph, node: int) -> bool:
    data = g.nodes[node]
    op = data["op"]
    if op in AXIS_OPS or op in REDUCE_OPS or op in PER_AXIS_OPS:
        return True
    opdef = get_op(op)
    if ELEMENTWISE not in opdef.traits or opdef.param_spec is not None:
        return False  # batch_norm: per-channel weights over the last axis
    chain = data["attrs"].get("chain", ((data["attrs"].get("activation"), None),))
    return all(name != "softmax" for name, _ in chain)  # softmax activation: the last axis


def _plan(g: nx.DiGraph, node: int, perm: tuple) -> dict | None:
    """How ``node`` would read its operands untransposed, if it can (else ``None``).

    Each data operand is a transpose by ``perm`` (read its input instead), a scalar (kept), a
    constant or weight (re-laid out), or a value that already has a transpose by the inverse
    permutation among its readers (read that one: ``y == T(T^-1(y))``, nothing is added).
    """
    data = g.nodes[node]
    if data["op"] in ("input", "param", TRANSPOSE) or data["type"].shape is None \
            or not _layout_agnostic(g, node):
        return None
    ins = data_operands(g, node)
    if len(ins) != len(operands(g, node)):
        return None  # reads params directly
    rank = len(perm)
    inverse = _inverse(perm)
    keeps_rank = data["op"] in AXIS_OPS + REDUCE_OPS + tuple(PER_AXIS_OPS)
    sources: list = []
    for n in ins:
        nd = g.nodes[n]
        shape = nd["type"].shape
        if nd["op"] == TRANSPOSE and transpose_perm(g, n) == perm:
            sources.append(("untranspose", n))
            continue
        if shape is None or len(shape) > rank or (keeps_rank and len(shape) != rank):
            return None
        if not shape:
            sources.append(("keep", n))
        elif nd["op"] in ("constant", "variable"):
            sources.append(("relayout", n))
        else:
            twin = next((u for u in users(g, n) if g.nodes[u]["op"] == TRANSPOSE
                         and len(shape) == rank and transpose_perm(g, u) == inverse), None)
            if twin is None:
                return None  # a computed value: reading it would need a new transpose
            sources.append(("twin", twin))
    if not any(kind == "untranspose" for kind, _ in sources):
        return None
    attrs, out_perm, new_shape = _remapped(g, node, perm)
    if attrs is None:
        return None
    return {"node": node, "perm": perm, "sources": sources, "attrs": attrs,
            "out_perm": out_perm, "shape": new_shape}


def _adds_transpose(g: nx.DiGraph, plan: dict) -> bool:
    """Whether the transpose below the rewritten node stays: not when it is the identity, nor
    when every reader of the node is a transpose (the two then compose into one)."""
    out_perm, node = plan["out_perm"], plan["node"]
    if out_perm is None or _identity(out_perm):
        return False
    readers = users(g, node)
    return node in g.graph["outputs"] or not readers or any(
        g.nodes[u]["op"] != TRANSPOSE for u in readers)


def _apply(g: nx.DiGraph, plan: dict) -> None:
    node, perm = plan["node"], plan["perm"]
    data = g.nodes[node]
    rank = len(perm)
    after_batch = data["attrs"].get("expand_after_batch", False)
    inverse = _inverse(perm)
    origin = None
    for pos, (kind, n) in enumerate(plan["sources"]):
        if kind == "untranspose":
            origin = origin or g.nodes[n].get("origin")
            (x,) = data_operands(g, n)
            _set_operand(g, node, pos, x)
        elif kind == "twin":
            _set_operand(g, node, pos, n)
        elif kind == "relayout":
            src = operands(g, node)[pos]
            full = expand_rank(g.nodes[src]["type"].shape, rank, after_batch=after_batch)
            _set_operand(g, node, pos, _relaid_operand(g, src, full, inverse, origin_of=node))
            _remove_if_dangling(g, src)
    old_type = data["type"]
    data["attrs"] = plan["attrs"]
    data["type"] = old_type.with_shape(plan["shape"])
    out_perm = plan["out_perm"]
    if out_perm is not None and not _identity(out_perm):
        t = add_node(g, TRANSPOSE, attrs={"axes": tuple(out_perm)},
                     origin=origin or Origin(f"{TRANSPOSE}_{node}", "Transpose"), type=old_type)
        replace_uses(g, node, t)
        g.add_edge(node, t, positions=(0,))
    for kind, n in plan["sources"]:
        if kind == "untranspose" and n in g:
            _remove_if_dangling(g, n)


def _sink(g: nx.DiGraph, t: int) -> bool:
    """Push transpose ``t`` into all its readers at once, when none of them needs more
    transposes than the rewrite removes."""
    readers = users(g, t)
    if not readers:
        return False
    perm = transpose_perm(g, t)
    plans = [_plan(g, u, perm) for u in readers]
    if any(p is None for p in plans):
        return False
    group = set(readers)
    untransposed = {n for p in plans for kind, n in p["sources"] if kind == "untranspose"}
    if any(kind == "twin" and n in untransposed for p in plans for kind, n in p["sources"]):
        return False  # a self-inverse permutation read both ways: leave it
    removed = {n for p in plans for kind, n in p["sources"] if kind == "untranspose"
               and n not in g.graph["outputs"] and set(users(g, n)) <= group}
    added = sum(_adds_transpose(g, p) for p in plans)
    if len(removed) < added or (not removed and added == 0 and t in g.graph["outputs"]):
        return False
    for p in plans:
        _apply(g, p)
    return True


def _remapped(g: nx.DiGraph, node: int, perm: tuple) -> tuple:
    """``(attrs, out_perm, shape)`` of ``node`` once it reads the untransposed values.

    ``out_perm`` is the transpose its output then needs (``None``: a rank-0 result); ``attrs``
    is ``None`` when the node cannot be rewritten.
    """
    data = g.nodes[node]
    op, attrs = data["op"], dict(data["attrs"])
    rank = len(perm)
    out_shape = data["type"].shape
    inverse = _inverse(perm)
    if op in REDUCE_OPS:
        axes = reduction_axes(attrs.get("axis"), rank, op)
        new_axes = tuple(sorted(perm[a] for a in axes))
        attrs["axis"] = None if attrs.get("axis") is None else new_axes
        if attrs.get("keepdims", False):
            return attrs, perm, tuple(out_shape[inverse[i]] for i in range(rank))
        remaining = [perm[j] for j in range(rank) if j not in axes]
        if not remaining:
            return attrs, None, out_shape
        order = sorted(remaining)
        out_perm = tuple(order.index(r) for r in remaining)
        # out[k] = new[out_perm[k]]  ->  new[out_perm[k]] = out_shape[k]
        new_shape = [None] * len(remaining)
        for k, r in enumerate(out_perm):
            new_shape[r] = out_shape[k]
        return attrs, out_perm, tuple(new_shape)
    if op in AXIS_OPS:
        default = -1
        attrs["axis"] = perm[normalize_axis(attrs.get("axis", default), rank, op)]
    elif op in PER_AXIS_OPS:
        for name in PER_AXIS_OPS[op]:
            values = list(attrs[name])
            if len(values) != rank:
                return None, None, None
            attrs[name] = [values[inverse[i]] for i in range(rank)]
    if attrs.get("expand_after_batch"):
        attrs["expand_after_batch"] = False  # every operand is full-rank (or a scalar) now
    return attrs, perm, tuple(out_shape[inverse[i]] for i in range(rank))


# -- the pass -------------------------------------------------------------------------------------
def renumber(g: nx.DiGraph) -> nx.DiGraph:
    """The same graph with node ids in a topological order (the old order where it allows)."""
    order = list(nx.lexicographical_topological_sort(g, key=lambda n: n))
    mapping = {old: new for new, old in enumerate(order)}
    h = nx.relabel_nodes(g, mapping, copy=True)
    h.graph.update(g.graph)
    h.graph["inputs"] = [mapping[n] for n in g.graph["inputs"]]
    h.graph["outputs"] = [mapping[n] for n in g.graph["outputs"]]
    h.graph["next_id"] = len(order)
    return h


def sink_transposes(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Push transposes down and cancel them; never adds one; a second run changes nothing."""
    if not count_transposes(g):
        return g
    changed_any = False
    for _ in range(MAX_SWEEPS):
        changed = False
        for node in topo_nodes(g):
            if node not in g:
                continue
            if g.nodes[node]["op"] == TRANSPOSE:
                changed |= _simplify(g, node) or _sink(g, node)
        if not changed:
            break
        changed_any = True
        g = renumber(g)
    return g if not changed_any else renumber(g)
