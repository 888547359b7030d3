"""``python -m benchmarks --profile W_ID``: the per-step table of our plan on one workload.

Builds exactly what the workload times (same model, weights and batch) and prints
``plan.profile``: the question after a missed target is always "which step".
"""

from __future__ import annotations

import numpy as np

from .graph_inference import GraphWorkload
from .inference import InferenceWorkload


def profile_workload(wl: InferenceWorkload | GraphWorkload, repeat: int, seed: int = 0) -> str:
    from . import ours, ours_graph

    rng = np.random.default_rng(seed)
    if isinstance(wl, InferenceWorkload):
        plan = ours.Deferc().build(wl.input_dim, wl.configs, seed).run
        x = rng.standard_normal((wl.batch, wl.input_dim), dtype=np.float32)
    else:
        plan = ours_graph.build(wl.model, wl.input_shape, seed).run
        x = rng.standard_normal((wl.batch, *wl.input_shape), dtype=np.float32)
    header = f"{wl.id}: {wl.title}, batch {wl.batch} (median of {repeat})"
    return header + "\n" + plan.profile(x, repeat=repeat).table()
