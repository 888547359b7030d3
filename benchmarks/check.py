"""The gate before timing: a peer is only timed once it computes what ours computes."""

from __future__ import annotations

import numpy as np

RTOL = 1e-4
#: Absolute tolerance per unit of output magnitude: float32 sums over ~1k terms in a different
#: order (BLAS blocking, FMA) differ by a few ulps of the largest value, not of each element.
ATOL_PER_SCALE = 1e-4


class OutputMismatch(AssertionError):
    """A peer's output differs from ours beyond float32 tolerance."""


def check_matches(ours: np.ndarray, theirs: np.ndarray, who: str) -> None:
    """Raise ``OutputMismatch`` naming ``who`` unless ``theirs`` matches ``ours`` (tolerance)."""
    theirs = np.asarray(theirs)
    if theirs.shape != ours.shape:
        raise OutputMismatch(f"{who}: output shape {theirs.shape}, ours {ours.shape}")
    scale = max(1.0, float(np.max(np.abs(ours))) if ours.size else 1.0)
    try:
        np.testing.assert_allclose(theirs, ours, rtol=RTOL, atol=ATOL_PER_SCALE * scale,
                                   err_msg=f"{who} disagrees with ours")
    except AssertionError as exc:
        raise OutputMismatch(str(exc)) from None
