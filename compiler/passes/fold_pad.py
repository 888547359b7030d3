"""Folding an explicit pad op into the convolution or max pooling that reads it.

ONNX (and PyTorch) convolutions pad symmetrically (``pads=[1, 1, 1, 1]`` on a stride-2 conv),
which TF's ``same`` cannot express, so the importer emits a pad op in front of a ``valid``
window. That costs a full copy of the activation per layer and hides the conv's input from
fusion. A window op with explicit padding (``padding=((top, bottom), (left, right))``) reads
the unpadded input and treats out-of-image cells as zero (conv) or as absent (max pooling), so
the pair becomes one node:

* ``zero_padding2d`` or ``pad`` with constant 0 over H/W only → ``conv2d`` / ``depthwise_conv2d``;
* ``pad`` with constant ``-inf`` over H/W only → ``max_pool2d`` (absent cells never win a max).

Only when the pad's one reader is that window op (as its image operand), the window's own
padding is ``valid`` or explicit (the cells add up), and the pad is not a graph output: then the
folded graph computes exactly what the pair did. Average pooling is never folded (it divides by
the number of real cells; a zero pad counts in the importer's divisor).
"""

from __future__ import annotations

import math

import networkx as nx

from ..ir import data_operands, operands, replace_uses, topo_nodes, users
from ..ops.conv import explicit_pads
from ..ops.pooling import zero_padding_amounts

_ZERO_WINDOWS = ("conv2d", "depthwise_conv2d")
_NEG_INF_WINDOWS = ("max_pool2d",)


def _spatial_pads(node: dict) -> tuple[tuple | None, float | None]:
    """``(((top, bottom), (left, right)), fill)`` of a pad op over H/W only, else ``(None, _)``."""
    attrs = node["attrs"]
    if node["op"] == "zero_padding2d":
        return zero_padding_amounts(attrs), 0.0
    if node["op"] != "pad" or attrs.get("mode", "constant") != "constant":
        return None, None
    widths = tuple(tuple(int(v) for v in w) for w in attrs["pad_width"])
    if len(widths) != 4 or widths[0] != (0, 0) or widths[3] != (0, 0):
        return None, None
    value = float(attrs.get("constant_values", 0.0))
    return (widths[1], widths[2]), value


def _window_pads(attrs: dict, layer: str) -> tuple | None:
    """The window's own padding as explicit cells, or ``None`` for ``same`` (not foldable:
    its cells depend on the input size)."""
    padding = attrs.get("padding", "valid")
    if padding == "valid":
        return (0, 0), (0, 0)
    return explicit_pads(padding, layer)


def _foldable(g: nx.DiGraph, pad: int, fill: float) -> int | None:
    """The window node that can absorb ``pad``, or ``None``."""
    readers = users(g, pad)
    if len(readers) != 1 or pad in g.graph["outputs"]:
        return None
    (window,) = readers
    op = g.nodes[window]["op"]
    if not ((fill == 0.0 and op in _ZERO_WINDOWS)
            or (fill == -math.inf and op in _NEG_INF_WINDOWS)):
        return None
    # the image operand only (a conv's residual is operand 1) and read once
    if operands(g, window).count(pad) != 1 or data_operands(g, window)[0] != pad:
        return None
    return window


def fold_pad(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Fold pad → conv/max-pool pairs in place; running it twice changes nothing."""
    for pad in topo_nodes(g):
        if pad not in g or g.nodes[pad]["op"] not in ("zero_padding2d", "pad"):
            continue
        cells, fill = _spatial_pads(g.nodes[pad])
        if cells is None:
            continue
        window = _foldable(g, pad, fill)
        if window is None:
            continue
        attrs = g.nodes[window]["attrs"]
        own = _window_pads(attrs, g.nodes[window]["op"])
        if own is None:
            continue
        merged = tuple((a[0] + b[0], a[1] + b[1]) for a, b in zip(own, cells))
        (src,) = data_operands(g, pad)
        g.nodes[window]["attrs"] = {**attrs, "padding": merged}
        replace_uses(g, pad, src)
        g.remove_node(pad)
    return g
