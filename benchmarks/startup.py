"""W5 (time to first result) and peak-RSS rows: measurements that need a fresh process each.

Wall time is taken by the parent from spawn to exit, so it includes interpreter start, imports,
compilation or cache loading and the first call: what a user waits for. "Cold" points
``NUMBA_CACHE_DIR`` and ``DEFERC_CACHE_DIR`` at a new empty directory per run; "warm" uses one
directory that a discarded first run has filled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import snippets
from .context import REPO_ROOT, RunContext
from .modelspec import DenseConfig
from .records import Row, Target
from .timing import summarize

CHILD_TIMEOUT_S = 600
CACHE_VARS = ("NUMBA_CACHE_DIR", "DEFERC_CACHE_DIR")


@dataclass(frozen=True)
class ChildResult:
    wall_s: float  # spawn to exit, measured by the parent
    first_result_s: float  # first statement to first result, measured by the child
    maxrss_mib: float
    data: dict = field(default_factory=dict)  # the child's whole JSON line


class ChildFailed(RuntimeError):
    """A benchmark child process exited non-zero or printed no result."""


def run_child(code: str, cache_dir: str | None = None, timeout: float = CHILD_TIMEOUT_S
              ) -> ChildResult:
    """Run ``python -c code`` from the repo root and parse its JSON result line."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if cache_dir is not None:
        env.update({var: cache_dir for var in CACHE_VARS})
    # an installed package has its bytecode compiled (pip does it): with this set, as in some
    # sandboxes, every child compiled our ~110 modules from source again (~0.5 s of CPU each)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter_ns()
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=timeout)
    wall = (time.perf_counter_ns() - start) * 1e-9
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ChildFailed(f"child exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    data = json.loads(lines[-1])
    return ChildResult(wall, data["seconds"], data["maxrss_kb"] / 1024.0, data)


def _runs(ctx: RunContext, code: str, n: int, cache: str) -> list[ChildResult]:
    """``n`` runs; ``cache`` is "warm" (shared, pre-filled), "cold" (fresh each) or "none"."""
    if cache == "cold":
        results = []
        for _ in range(n):
            with tempfile.TemporaryDirectory(prefix="deferc-cold-") as tmp:
                results.append(run_child(code, tmp))
        return results
    with tempfile.TemporaryDirectory(prefix="deferc-warm-") as tmp:
        cache_dir = tmp if cache == "warm" else None
        run_child(code, cache_dir)  # fills the cache (warm) / the OS page cache (none)
        return [run_child(code, cache_dir) for _ in range(n)]


def _summary(results: list[ChildResult]) -> dict:
    return {"wall_s": [r.wall_s for r in results],
            "first_result_s": [r.first_result_s for r in results],
            "maxrss_mib": [r.maxrss_mib for r in results]}


W5_WARM = Target("value", "<=", 1.2, "<= 1.2 s wall (warm cache)")
W5_COLD = Target("value", "<=", 6.0, "<= 6 s wall (cold cache)")


def run_w5(ctx: RunContext, input_dim: int, configs: Sequence[DenseConfig],
           batch: int) -> list[Row]:
    """Seed example in fresh processes: ours warm/cold vs a PyTorch ``LazyLinear`` reference."""
    bar, n = ctx.progress, ctx.subprocess_repeat
    code = ctx.ours.script(input_dim, configs, batch)
    torch_runs: list[ChildResult] | None = None
    skipped = ctx.unavailable.get("torch")
    bar.describe("W5: torch LazyLinear reference")
    if skipped is None:
        torch_runs = _runs(ctx, snippets.torch_script(input_dim, configs, batch), n, "none")
    bar.step()
    rows = []
    for cache, target in (("warm", W5_WARM), ("cold", W5_COLD)):
        bar.describe(f"W5: ours, {cache} cache")
        ours_runs = _runs(ctx, code, n, cache)
        rows.append(_w5_row(f"{cache} cache, wall", ours_runs, torch_runs, "wall_s", target,
                            skipped))
        if cache == "warm":
            rss = _w5_row("peak RSS (warm)", ours_runs, torch_runs, "maxrss_mib", None, skipped)
            rss.unit = "MiB"
            rows.append(rss)
        bar.step()
    return rows


def _w5_row(case: str, ours_runs: list[ChildResult], torch_runs: list[ChildResult] | None,
            metric: str, target: Target | None, skipped: str | None) -> Row:
    ours = summarize([getattr(r, metric) for r in ours_runs])
    row = Row("W5", case, peer="torch LazyLinear", ours=ours.median, ours_iqr=ours.iqr,
              target=target, extra={"ours_runs": _summary(ours_runs)})
    if torch_runs is not None:
        peer = summarize([getattr(r, metric) for r in torch_runs])
        row.peer_value, row.peer_iqr = peer.median, peer.iqr
        row.extra["peer_runs"] = _summary(torch_runs)
    else:
        row.extra["peer_skipped"] = skipped
    return row


def peak_rss_rows(ctx: RunContext, workload: str, input_dim: int,
                  configs: Sequence[DenseConfig], batch: int,
                  peers: Sequence[str]) -> list[Row]:
    """Peak RSS of a fresh process that builds the model and makes a few calls, ours vs peers."""
    bar, calls = ctx.progress, 3
    bar.describe(f"{workload}: peak RSS, ours")
    ours_runs = _runs(ctx, ctx.ours.script(input_dim, configs, batch, calls), 1, "warm")
    bar.step()
    rows = []
    for peer in peers:
        bar.describe(f"{workload}: peak RSS, {peer}")
        if peer != "torch":
            raise ValueError(f"peak RSS: no child script for peer {peer!r}")
        row = Row(workload, f"peak RSS, batch {batch}", peer=peer, unit="MiB",
                  ours=ours_runs[0].maxrss_mib, extra={"ours_runs": _summary(ours_runs)})
        if peer in ctx.unavailable:
            row.status = f"skipped: {ctx.unavailable[peer]}"
        else:
            script = snippets.torch_script(input_dim, configs, batch, calls, lazy=False)
            peer_runs = _runs(ctx, script, 1, "none")
            row.peer_value = peer_runs[0].maxrss_mib
            row.extra["peer_runs"] = _summary(peer_runs)
        rows.append(row)
    bar.step()
    return rows
