"""Everything a workload needs to run: options, ours, the peers that can run, progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from .ours import Ours
from .progress import Progress

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunContext:
    """Options of one ``python -m benchmarks`` run, shared by all workloads."""

    ours: Ours
    peers: dict[str, ModuleType]
    unavailable: dict[str, str]  # peer name -> why it is skipped
    repeat: int
    warmup: int
    min_rep_s: float
    subprocess_repeat: int
    quick: bool
    progress: Progress = field(default_factory=lambda: Progress(0, enabled=False))
    seed: int = 0
    failures: list[str] = field(default_factory=list)
