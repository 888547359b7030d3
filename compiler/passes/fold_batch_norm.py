"""Folding inference BatchNormalization into the Conv2D / Dense before it.

At inference BN is a per-channel affine map, ``y * scale + shift``; applied to ``x @ k + b`` it
equals ``x @ (k * scale) + (b * scale + shift)``. The producer gets new (derived) parameter nodes
and the BN node disappears, saving a full pass over the activation. A derived parameter is plain
data (``weights.Derived``: the source keys and the epsilon), so a plan recomputes it from the
store when a source weight changes, and the pass reads the sources through ``ctx.weights``, so
weights created earlier in the same run (a first call) fold like committed ones.

Identity ops (Dropout) are gone by now (``remove_identities`` runs first), so a BatchNorm after a
Dropout folds on the first run: running the pass again finds nothing to do.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from ..errors import CompilerError
from ..ir import (
    add_node,
    data_operands,
    layer_name,
    param_operands,
    replace_uses,
    topo_nodes,
    users,
)
from ..ops.normalization import DEFAULT_EPSILON
from ..types import TensorType
from ..weights import Derived, derive, register_derivation

FOLDABLE = ("dense", "conv2d", "depthwise_conv2d")
_BN_ROLES = ("gamma", "beta", "moving_mean", "moving_variance")


def _fold(sources: dict, attrs: dict) -> np.ndarray:
    """The folded kernel or bias (``attrs["part"]``) from the producer's and BN's weights."""
    var = sources["moving_variance"].astype(np.float64)
    gamma, beta = sources.get("gamma"), sources.get("beta")
    scale = (1.0 if gamma is None else gamma.astype(np.float64)) / np.sqrt(var + attrs["epsilon"])
    dtype = np.dtype(attrs["dtype"])
    if attrs["part"] == "kernel":
        k = sources["kernel"]
        if attrs["op"] == "depthwise_conv2d":
            scale = np.broadcast_to(scale, k.shape[2] * k.shape[3]).reshape(k.shape[2:])
        # the per-channel scale is computed in float64; the kernel is scaled in its own dtype
        # (one rounding more than a float64 round trip of the whole kernel, at a third of the
        # CPU: ResNet-18 folds 11M weights per compile)
        return np.multiply(k, scale.astype(dtype), dtype=dtype)
    shift = (0.0 if beta is None else beta.astype(np.float64)) - \
        sources["moving_mean"].astype(np.float64) * scale
    b = sources.get("bias")
    b = 0.0 if b is None else b.astype(np.float64)
    return (b * scale + shift).astype(dtype)


register_derivation("fold_batch_norm", _fold)


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
        old = param_operands(g, src)
        bn_params = param_operands(g, bn)
        # a producer already folded once (conv -> BN -> BN) nests its derivation
        keys = {role: g.nodes[n].get("derived") or g.nodes[n]["key"]
                for role, n in {**old, **bn_params}.items()}
        sources = tuple((role, keys.get(role)) for role in ("kernel", "bias", *_BN_ROLES))
        base = g.nodes[old["kernel"]]["key"].split("+")[0].rsplit("/", 1)[0]
        common = (("dtype", str(np.dtype(dtype))), ("epsilon", g.nodes[bn]["attrs"].get(
            "epsilon", DEFAULT_EPSILON)), ("op", data["op"]))
        n_data = len(data_operands(g, src))
        new = {}
        for pos, part in enumerate(("kernel", "bias")):
            spec = Derived("fold_batch_norm", sources, tuple(sorted(common + (("part", part),))))
            value = derive(spec, _reader(g, {**old, **bn_params}, ctx, bn))
            folded = "+".join([*g.nodes[old["kernel"]]["key"].split("+")[1:], layer_name(g, bn)])
            new[part] = add_node(g, "param", origin=data["origin"], param=part,
                                 key=f"{base}/{part}+{folded}",
                                 type=TensorType(value.shape, dtype), value=value, derived=spec)
            if part in old:
                g.remove_edge(old[part], src)
            g.add_edge(new[part], src, positions=(n_data + pos,))
        for p in old.values():
            if g.degree(p) == 0:
                g.remove_node(p)
        data["attrs"] = {**data["attrs"], "use_bias": True}
        data["type"] = g.nodes[bn]["type"]
        replace_uses(g, bn, src)
        for p in bn_params.values():
            g.remove_edge(p, bn)
            if g.degree(p) == 0:
                g.remove_node(p)
        g.remove_node(bn)
    return g


def _reader(g: nx.DiGraph, params: dict, ctx, bn: int):
    """Read a source weight: this run's weights by key, else the value bound on its node."""
    by_key = {g.nodes[n]["key"]: g.nodes[n].get("value") for n in params.values()}

    def get(key: str) -> np.ndarray:
        value = ctx.weights.get(key)
        if value is None:
            value = by_key.get(key)
        if value is None:
            raise CompilerError(f"layer '{layer_name(g, bn)}': cannot fold into the layer before "
                                f"it, weight '{key}' is not initialized")
        return value

    return get
