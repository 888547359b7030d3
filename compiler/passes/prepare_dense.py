"""Choosing the small-product kernel for tiny Dense layers, and preparing its weight.

A BLAS call has a fixed cost of a few microseconds, more than a whole 20→256 layer at batch 2.
Every size of a dense node but the batch is known here, so the choice is made once: a layer whose
kernel is small (``SMALL_MAX_WEIGHTS``) runs the runtime's ``dense_small`` kernel (plain jitted
loops, which hands large batches back to BLAS at run time). For a narrow layer (fewer than
``NARROW_UNITS`` outputs, where BLAS is inefficient) it computes dot products on the *transposed*
kernel; a wider layer runs row updates on the kernel as it is, and only while a call is tiny
(BLAS takes over at ~1k multiply-adds), so it gets no transposed copy. That copy is a derived
weight (``weights.Derived``, kind ``"transpose_kernel"``), so a plan computes it once per weights
version, never per call.

The node keeps its op (``dense``: same shape rule, same reference); only its ``kernel`` node
attribute, read by ``schedule``, and one extra ``packed`` param change. Running it twice changes
nothing.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from ..ir import add_node, data_operands, param_operands, topo_nodes
from ..types import TensorType
from ..weights import Derived, register_derivation

SMALL_KERNEL = "dense_small"
#: Largest ``in * units`` handled by the small kernel (256 KiB of float32: stays in L2).
SMALL_MAX_WEIGHTS = 1 << 16
#: Layers with fewer outputs get the transposed kernel (``NARROW_UNITS`` in
#: ``runtime/kernels/small_dense.py``: the same number, seen from the kernel's side).
NARROW_UNITS = 16
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _transpose_kernel(sources: dict, attrs: dict) -> np.ndarray:
    """``(in, units)`` kernel -> its transpose, contiguous and flattened."""
    return np.ascontiguousarray(np.asarray(sources["value"]).T).reshape(-1)


register_derivation("transpose_kernel", _transpose_kernel)


def _small(g: nx.DiGraph, node: int, params: dict) -> bool:
    data = g.nodes[node]
    if data["op"] != "dense" or "kernel" not in params or data.get("kernel") is not None:
        return False
    if len(data_operands(g, node)) != 1 or data["attrs"].get("masked") \
            or data["attrs"].get("residual"):
        return False
    shape = g.nodes[params["kernel"]]["type"].shape
    if len(shape) != 2 or not all(isinstance(d, int) for d in shape):
        return False
    return data["type"].dtype in _DTYPES and shape[0] * shape[1] <= SMALL_MAX_WEIGHTS


def prepare_dense(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Mark small dense nodes for ``dense_small`` and give them their prepared weight (one
    prepared node per kernel param, shared by every dense node that reads that kernel: tying)."""
    packed_of: dict[int, int] = {}
    for node in topo_nodes(g):
        params = param_operands(g, node)
        if not _small(g, node, params):
            continue
        data = g.nodes[node]
        data["kernel"] = SMALL_KERNEL
        depth, units = g.nodes[params["kernel"]]["type"].shape
        if units >= NARROW_UNITS:
            continue  # row updates read the kernel as it is
        if params["kernel"] in packed_of:
            packed = packed_of[params["kernel"]]
            g.add_edge(packed, node, positions=(len(data_operands(g, node)) + len(params),))
            continue
        pdata = g.nodes[params["kernel"]]
        spec = Derived("transpose_kernel", (("value", pdata.get("derived") or pdata["key"]),))
        value = pdata.get("value")
        packed = add_node(g, "param", origin=pdata.get("origin"), param="packed",
                          key=f"{pdata['key']}+packed",
                          type=TensorType((depth * units,), pdata["type"].dtype),
                          value=None if value is None else _transpose_kernel({"value": value}, {}),
                          derived=spec, prepared=True)
        packed_of[params["kernel"]] = packed
        g.add_edge(packed, node, positions=(len(data_operands(g, node)) + len(params),))
    return g
