"""The implementations we compare against, all built from the same framework-neutral spec.

Each peer module exposes ``NAME``, ``unavailable_reason()`` (``None`` when usable, otherwise why
not — e.g. the package is not installed), ``version()`` and ``build(spec) -> run``, where
``run(x: np.ndarray) -> np.ndarray`` is the callable that gets checked and timed. For the conv
workloads, ``GRAPH_BUILDERS[name](graph_spec) -> PeerRun`` builds the same peer from a
``GraphSpec`` (modules ``*_graph``; availability is still the peer module's).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from ..graphspec import GraphSpec, PeerRun
from . import numpy_graph, numpy_peer, onnx_graph, onnx_peer, torch_graph, torch_peer

#: Peers by name, in table order.
PEERS: dict[str, ModuleType] = {
    numpy_peer.NAME: numpy_peer,
    torch_peer.NAME: torch_peer,
    onnx_peer.NAME: onnx_peer,
}

#: Conv-net (``GraphSpec``) builders by peer name.
GRAPH_BUILDERS: dict[str, Callable[[GraphSpec], PeerRun]] = {
    numpy_peer.NAME: numpy_graph.build,
    torch_peer.NAME: torch_graph.build,
    onnx_peer.NAME: onnx_graph.build,
}
