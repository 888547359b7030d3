"""Time-step masks as explicit IR values (Keras' ``compute_mask``, made a second edge).

A mask is an ``(N, T)`` IR value (1 = keep the step, 0 = skip it) computed by a
``sequence_mask`` node from the value that defines it (an ``Embedding``'s indices, a
``Masking`` layer's input). During lowering, ``GraphBuilder.masks`` maps each value to the
``Mask`` that travels with it: a layer with ``supports_masking = True`` passes its input's mask
on to its output (``GraphBuilder.lower_layer``); a consumer (RNNs, ``GlobalAveragePooling1D``;
later attention) asks ``mask_node(builder, value)``, which emits the ``sequence_mask`` node on
first use, then reads it as its *last* data operand with ``attrs["masked"] = True``. A mask no
layer consumes is never emitted, so graphs without consumers are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ir import Origin, add_node


@dataclass
class Mask:
    """How to compute a mask from ``source``; ``node`` once it is emitted."""

    source: int
    attrs: dict
    origin: Origin
    node: int | None = None


def set_mask(builder: Any, value: int, source: int, origin: Origin, mask_value: float = 0.0,
             reduce_last: bool = False) -> None:
    """Attach to ``value`` the mask ``source != mask_value`` (``reduce_last``: any over the
    last axis, Keras ``Masking``)."""
    builder.masks[value] = Mask(source, {"mask_value": float(mask_value),
                                         "reduce_last": bool(reduce_last)}, origin)


def mask_node(builder: Any, value: int) -> int | None:
    """The IR node of ``value``'s mask (emitted now if needed), or ``None`` when unmasked."""
    mask = builder.masks.get(value)
    if mask is None:
        return None
    if mask.node is None:
        mask.node = add_node(builder.graph, "sequence_mask", [mask.source], attrs=mask.attrs,
                             origin=mask.origin)
    return mask.node
