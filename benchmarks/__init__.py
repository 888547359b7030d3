"""deferc's benchmark suite: ``python -m benchmarks``.

Runs the workloads in ``workloads.py`` against the peers in ``peers/`` (NumPy, PyTorch eager,
ONNX Runtime), checks every peer's output against ours before timing it, and writes
``results/latest.{json,md,png}``. Only ``ours.py`` knows deferc's API, so the rest of the suite
can be developed and run without it.
"""
