"""The process-wide default seed for weight initialization (Keras' ``set_random_seed``)."""

from __future__ import annotations

_seed: list = [None]


def set_random_seed(seed: int | None) -> None:
    """Make later initializations reproducible (``None`` restores fresh entropy)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an int or None, received {seed!r}")
    _seed[0] = seed


def get_seed() -> int | None:
    return _seed[0]
