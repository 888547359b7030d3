"""``python -m benchmarks --profile W_ID``: the per-step table of our plan on one workload.

Builds exactly what the workload times (same model, weights and batch) and prints
``plan.profile``: the question after a missed target is always "which step".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import onnx_import, sequence, sequence_inference
from .graph_inference import GraphWorkload
from .inference import InferenceWorkload

#: workload types whose module builds ``(plan, x)`` exactly as its timed run does
_PROFILED = {sequence_inference.SequenceWorkload: sequence_inference.profiled,
             sequence.EncoderWorkload: sequence.profiled,
             onnx_import.OnnxWorkload: onnx_import.profiled}


def profile_workload(wl: Any, repeat: int, seed: int = 0) -> str:
    from . import ours, ours_graph

    rng = np.random.default_rng(seed)
    if isinstance(wl, InferenceWorkload):
        plan = ours.Deferc().build(wl.input_dim, wl.configs, seed).run
        x = rng.standard_normal((wl.batch, wl.input_dim), dtype=np.float32)
    elif isinstance(wl, GraphWorkload):
        plan = ours_graph.build(wl.model, wl.input_shape, seed).run
        x = rng.standard_normal((wl.batch, *wl.input_shape), dtype=np.float32)
    else:
        plan, x = _PROFILED[type(wl)](wl, seed)
    title = getattr(wl, 'title', None) or getattr(wl, 'cell', '')
    header = f"{wl.id}: {title}, {getattr(wl, 'case', f'batch {wl.batch}')} " \
             f"(median of {repeat})"
    return header + "\n" + plan.profile(x, repeat=repeat).table()
