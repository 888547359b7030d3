"""The implementations we compare against, all built from the same ``ModelSpec``.

Each peer module exposes ``NAME``, ``unavailable_reason()`` (``None`` when usable, otherwise why
not — e.g. the package is not installed), ``version()`` and ``build(spec) -> run``, where
``run(x: np.ndarray) -> np.ndarray`` is the callable that gets checked and timed.
"""

from __future__ import annotations

from types import ModuleType

from . import numpy_peer, onnx_peer, torch_peer

#: Peers by name, in table order.
PEERS: dict[str, ModuleType] = {
    numpy_peer.NAME: numpy_peer,
    torch_peer.NAME: torch_peer,
    onnx_peer.NAME: onnx_peer,
}
