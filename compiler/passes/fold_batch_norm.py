"""Folding inference BatchNormalization into the Conv2D / Dense before it.

At inference BN is a per-channel affine map, ``y * scale + shift``; applied to ``x @ k + b`` it
equals ``x @ (k * scale) + (b * scale + shift)``. The producer gets new (derived) parameter nodes
and the BN node disappears, saving a full pass over the activation. Derived parameters keep a
``derive`` function so a plan can recompute them when the layers' weights change.
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import numpy as np

from ..ir import add_node, data_operands, param_operands, replace_uses, topo_nodes, users
from ..types import TensorType

FOLDABLE = ("dense", "conv2d", "depthwise_conv2d")


def _bn_affine(bn_layer, attrs: dict) -> Callable[[], tuple]:
    eps = attrs.get("epsilon", 1e-3)

    def affine() -> tuple:
        w = bn_layer._weights
        var = w["moving_variance"].astype(np.float64)
        scale = (w["gamma"].astype(np.float64) if "gamma" in w else 1.0) / np.sqrt(var + eps)
        shift = (w["beta"].astype(np.float64) if "beta" in w else 0.0) - \
            w["moving_mean"].astype(np.float64) * scale
        return scale, shift

    return affine


def _folded(op: str, layer, affine: Callable[[], tuple], dtype) -> tuple[Callable, Callable]:
    """Functions computing the folded kernel and bias from the live weights."""

    def kernel() -> np.ndarray:
        scale, _ = affine()
        k = layer._weights["kernel"].astype(np.float64)
        if op == "depthwise_conv2d":
            scale = np.broadcast_to(scale, k.shape[2] * k.shape[3]).reshape(k.shape[2:])
        return (k * scale).astype(dtype)

    def bias() -> np.ndarray:
        scale, shift = affine()
        b = layer._weights.get("bias")
        b = 0.0 if b is None else b.astype(np.float64)
        return (b * scale + shift).astype(dtype)

    return kernel, bias


def fold_batch_norm(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Rewrite ``producer -> batch_norm`` pairs in place; running it twice changes nothing."""
    for bn in topo_nodes(g):
        if bn not in g or g.nodes[bn]["op"] != "batch_norm":
            continue
        (src,) = data_operands(g, bn)
        data = g.nodes[src]
        if data["op"] not in FOLDABLE or data["attrs"].get("activation", "linear") != "linear" \
                or data["attrs"].get("residual") or users(g, src) != [bn] \
                or src in g.graph["outputs"]:
            continue
        dtype = data["type"].dtype
        kernel_fn, bias_fn = _folded(data["op"], data["layer"],
                                     _bn_affine(g.nodes[bn]["layer"], g.nodes[bn]["attrs"]), dtype)
        old = param_operands(g, src)
        n_data = len(data_operands(g, src))
        new = {}
        for pos, (pname, derive) in enumerate((("kernel", kernel_fn), ("bias", bias_fn))):
            value = derive()
            new[pname] = add_node(g, "param", layer=data["layer"], param=pname,
                                  type=TensorType(value.shape, dtype), value=value,
                                  derive=derive)
            if pname in old:
                g.remove_edge(old[pname], src)
            g.add_edge(new[pname], src, positions=(n_data + pos,))
        for p in old.values():
            if g.degree(p) == 0:
                g.remove_node(p)
        data["attrs"] = {**data["attrs"], "use_bias": True}
        data["type"] = g.nodes[bn]["type"]
        replace_uses(g, bn, src)
        for p in param_operands(g, bn).values():
            g.remove_edge(p, bn)
            if g.degree(p) == 0:
                g.remove_node(p)
        g.remove_node(bn)
    return g
