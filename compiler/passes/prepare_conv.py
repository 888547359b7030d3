"""Choosing each 2-D convolution's algorithm from its filter shape, and preparing its weight.

Everything but the batch and the image size is known here, so the choice is made once per
layer (a small cost model, measured):

* **direct** (runtime kernel ``conv2d_direct``): few input channels per group and a short
  reduction (taps = channels * kh * kw). im2col then spends its time filling the patch matrix,
  and a GEMM with K of a few dozen runs far below its peak: LeNet's 1->6 5x5 conv ran 3-6x
  faster direct, an 8->16 3x3 conv (72 taps) 1.4-2x. A long reduction turns that around once
  the patches are copied a filter row at a time: a 3->64 7x7/2 stem (147 taps) ran 2.1x faster
  with im2col and AVX-512 BLAS kernels (Zen 5, two threads; 1.1x with AVX2 kernels), so RGB
  stems past ``DIRECT_MAX_TAPS`` take im2col. LeNet's 6->16 5x5 conv (150 taps) stays direct:
  1.4x faster with im2col in one process, but LeNet scored in single-threaded Dask workers (D2)
  ran 1.3-1.9x slower per chunk with it (not understood yet). A 3-channel 3x3 conv (27 taps) is
  even and stays with im2col. Its weight is packed ``(filters, taps)``.
* **Winograd-eligible** (3x3, stride 1, dilation 1, ungrouped, >= 16 channels each way): the
  runtime ``conv2d`` kernel still decides per call from the image size, but the transformed
  filter ``U = G g G^T`` it needs is prepared here rather than recomputed on every call.

Prepared weights are derived weights (``weights.Derived``): a plan recomputes them once per
weights version, never per call. Running the pass twice changes nothing.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from ..ir import add_node, data_operands, param_operands, topo_nodes
from ..types import TensorType
from ..weights import Derived, register_derivation

DIRECT_KERNEL = "conv2d_direct"
#: Most input channels per group the direct kernel takes.
DIRECT_MAX_CHANNELS = 8
#: With more than ``DIRECT_ALWAYS_CHANNELS`` channels, the direct kernel needs at least
#: ``DIRECT_MIN_TAPS`` taps (channels * kh * kw) to beat im2col; an RGB stem (at most
#: ``STEM_CHANNELS``) with more than ``DIRECT_MAX_TAPS`` goes to im2col.
DIRECT_MIN_TAPS = 40
DIRECT_MAX_TAPS = 100
DIRECT_ALWAYS_CHANNELS = 2
STEM_CHANNELS = 3
#: Winograd needs enough channels for its GEMMs to dominate its transforms (runtime ``conv``).
WINOGRAD_MIN_CHANNELS = 16

# Winograd F(2x2, 3x3) filter transform (Lavin & Gray): U = G g G^T.
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
#: ``U[a, b] = sum G[a, i] g[i, j] G[b, j]`` as one matrix over the 9 taps; its entries (0,
#: +-0.25, 0.5, 1) are exact in float32, so float32 filters need no float64 round trip
_GG = np.kron(_G, _G)


def _direct_filter(sources: dict, attrs: dict) -> np.ndarray:
    """``(kh, kw, cg, filters)`` -> ``(filters, cg*kh*kw)``, taps ordered channel, ky, kx."""
    k = np.asarray(sources["value"])
    kh, kw, cg, o_n = k.shape
    return np.ascontiguousarray(k.transpose(3, 2, 0, 1).reshape(o_n, cg * kh * kw))


def _winograd_filter(sources: dict, attrs: dict) -> np.ndarray:
    """``(3, 3, C, O)`` -> ``(16, C, O)``: each filter's 4x4 transform, flattened.

    A filter with a NaN/inf gets NaN in ``U[0, 0, 0]``: the runtime then takes the exact im2col
    path (Winograd would mix inf into NaN) after checking one element instead of the filter.
    """
    k = np.asarray(sources["value"])
    kh, kw, c_n, o_n = k.shape
    with np.errstate(invalid="ignore", over="ignore"):
        # one BLAS product with G (x) G, not a float64 four-operand einsum: ResNet-18
        # prepares 13 filters per compile and the einsum took ~0.5 s of CPU
        u = (_GG.astype(k.dtype) @ k.reshape(kh * kw, c_n * o_n)).reshape(16, c_n, o_n)
    if u.size and not np.isfinite(k).all():
        u[0, 0, 0] = np.nan
    return u


register_derivation("direct_conv_filter", _direct_filter)
register_derivation("winograd_filter", _winograd_filter)


def conv_algorithm(kernel_shape: tuple, strides: tuple, dilation: tuple, groups: int,
                   activation: str) -> str:
    """``"direct"``, ``"winograd"`` (chosen per call by the runtime, filter prepared) or
    ``"gemm"`` for a conv2d with this filter ``(kh, kw, in/groups, filters)``."""
    kh, kw, cg, o_n = kernel_shape
    taps = cg * kh * kw
    stem = DIRECT_ALWAYS_CHANNELS < cg <= STEM_CHANNELS and taps > DIRECT_MAX_TAPS
    if activation != "softmax" and cg <= DIRECT_MAX_CHANNELS and not stem and (
            cg <= DIRECT_ALWAYS_CHANNELS or taps >= DIRECT_MIN_TAPS):
        return "direct"
    if ((kh, kw) == (3, 3) and tuple(strides) == (1, 1) and tuple(dilation) == (1, 1)
            and groups == 1 and cg >= WINOGRAD_MIN_CHANNELS and o_n >= WINOGRAD_MIN_CHANNELS):
        return "winograd"
    return "gemm"


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _choose(g: nx.DiGraph, node: int, params: dict) -> str | None:
    data = g.nodes[node]
    if data["op"] != "conv2d" or "kernel" not in params or data.get("kernel") is not None \
            or "prepared" in params:
        return None
    shape = g.nodes[params["kernel"]]["type"].shape
    if shape is None or len(shape) != 4 or not all(isinstance(d, int) for d in shape):
        return None
    if data["type"].dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        return None
    attrs = data["attrs"]
    return conv_algorithm(shape, _pair(attrs.get("strides", 1)), _pair(attrs.get("dilation", 1)),
                          int(attrs.get("groups", 1)), attrs.get("activation", "linear"))


def prepare_conv(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Pick each conv2d node's algorithm and give it its prepared filter (param ``prepared``;
    one prepared node per kernel param, shared by every conv reading that kernel)."""
    prepared_of: dict[tuple, int] = {}
    for node in topo_nodes(g):
        params = param_operands(g, node)
        algorithm = _choose(g, node, params)
        if algorithm is None or algorithm == "gemm":
            continue
        data = g.nodes[node]
        kind = "direct_conv_filter" if algorithm == "direct" else "winograd_filter"
        if algorithm == "direct":
            data["kernel"] = DIRECT_KERNEL
        kh, kw, cg, o_n = g.nodes[params["kernel"]]["type"].shape
        key = (params["kernel"], kind)
        if key not in prepared_of:
            pdata = g.nodes[params["kernel"]]
            derive = _direct_filter if algorithm == "direct" else _winograd_filter
            shape = (o_n, cg * kh * kw) if algorithm == "direct" else (16, cg, o_n)
            value = pdata.get("value")
            prepared_of[key] = add_node(
                g, "param", origin=pdata.get("origin"), param="prepared",
                key=f"{pdata['key']}+{kind}", type=TensorType(shape, pdata["type"].dtype),
                value=None if value is None else derive({"value": value}, {}),
                derived=Derived(kind, (("value", pdata.get("derived") or pdata["key"]),)),
                prepared=True)
        g.add_edge(prepared_of[key], node,
                   positions=(len(data_operands(g, node)) + len(params),))
    return g
