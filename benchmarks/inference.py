"""W1-W4: one model, one batch size; ours and every peer are checked, then timed in-process.

Every peer must reproduce our output before anything is timed. Timing then goes in rounds of
contiguous blocks (``timing.measure_rounds``) rather than call-by-call interleaving: ORT's and
OpenMP's worker threads spin for a while after a call, and on 2 cores that spinning would be
charged to whoever runs next; rounds still spread drifting background load over everyone.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from .check import OutputMismatch, check_matches
from .context import RunContext
from .modelspec import DenseConfig
from .peers import numpy_peer
from .records import Row, Target
from .timing import Timing, measure_rounds

#: Pause between timing blocks so the previous library's spinning threads go to sleep: numpy's
#: OpenBLAS threads spin for ~0.1-0.2 s after a product (a threaded conv timed right after a
#: numpy matmul ran 1.8 ms instead of 1.0 ms until they stopped).
SETTLE_S = 0.3
OURS = "ours"


@dataclass(frozen=True)
class InferenceWorkload:
    """A model (``input_dim`` + layer configs) run at one ``batch`` size against ``peers``."""

    id: str
    title: str
    input_dim: int
    configs: tuple[DenseConfig, ...]
    batch: int
    peers: tuple[str, ...] = ("numpy", "torch", "onnxruntime")
    targets: dict[str, Target] = field(default_factory=dict)  # peer name -> target
    sgemm_baseline: Target | None = None  # W3: compare GFLOP/s with bare NumPy matmuls
    rss_peers: tuple[str, ...] = ()  # peers whose peak RSS is measured (subprocess) vs ours

    def steps(self) -> int:
        return 2 + len(self.peers) + 2 * bool(self.rss_peers)


def run_inference(ctx: RunContext, wl: InferenceWorkload) -> list[Row]:
    """Build ours, check every peer against it, then time all of them in shared rounds."""
    bar = ctx.progress
    bar.describe(f"{wl.id}: build ours ({ctx.ours.name})")
    built = ctx.ours.build(wl.input_dim, wl.configs, ctx.seed)
    x = np.random.default_rng(ctx.seed).standard_normal((wl.batch, wl.input_dim)).astype(
        np.float32)
    expected = np.array(built.run(x), copy=True)  # ours may reuse its output buffer
    flops = built.spec.flops(wl.batch)
    bar.step()

    def attempt(name: str) -> tuple[Callable[[], object], np.ndarray]:
        run = ctx.peers[name].build(built.spec)
        return (lambda: run(x)), run(x)

    unchecked = {}
    if wl.sgemm_baseline is not None:
        matmuls = numpy_peer.build_matmul_only(built.spec)
        unchecked[numpy_peer.MATMUL_ONLY_NAME] = lambda: matmuls(x)
    timings, statuses = check_and_time(ctx, wl.id, lambda: built.run(x), expected,
                                       {name: partial(attempt, name) for name in wl.peers},
                                       unchecked)
    ours = timings[OURS]
    rows = comparison_rows(wl.id, f"batch {wl.batch}", wl.peers, timings, flops, wl.targets,
                           statuses)
    if wl.sgemm_baseline is not None:
        base = timings[numpy_peer.MATMUL_ONLY_NAME]
        rows.append(Row(wl.id, f"batch {wl.batch}", peer=numpy_peer.MATMUL_ONLY_NAME,
                        ours=ours.median, ours_iqr=ours.iqr, peer_value=base.median,
                        peer_iqr=base.iqr, flops=flops, target=wl.sgemm_baseline,
                        extra={"note": "matmuls only (no bias/activation); output not checked",
                               "peer_timing": base.to_json(), "ours_timing": ours.to_json()}))
    if wl.rss_peers:
        from .startup import peak_rss_rows

        rows += peak_rss_rows(ctx, wl.id, wl.input_dim, wl.configs, wl.batch, wl.rss_peers)
    return rows


def skipped_rows(wl, steps: int, ctx: RunContext, why: str) -> list[Row]:
    """Rows saying why a workload that needs deferc has no numbers (ours is a stand-in)."""
    ctx.progress.step(steps)
    return [Row(wl.id, wl.case, peer=name, target=wl.targets.get(name),
                status=f"skipped: {why} (ours = {ctx.ours.name})") for name in wl.peers]


def check_and_time(ctx: RunContext, workload_id: str, ours: Callable[[], object],
                   expected: np.ndarray,
                   attempts: dict[str, Callable[[], tuple[Callable[[], object], np.ndarray]]],
                   unchecked: dict[str, Callable[[], object]] | None = None,
                   ) -> tuple[dict[str, Timing], dict[str, str]]:
    """Build and check each peer (``attempts``, see ``checked_peer``), then time ours, the
    peers that agree and any ``unchecked`` baselines in shared rounds.

    One place for the check-then-time protocol every inference workload follows, so a peer
    that disagrees is never timed and every workload settles threads the same way.
    """
    bar = ctx.progress
    contenders: dict[str, Callable[[], object]] = {OURS: ours}
    statuses: dict[str, str] = {}
    for name, attempt in attempts.items():
        bar.describe(f"{workload_id}: build + check {name}")
        timed = checked_peer(ctx, workload_id, name, attempt, expected, statuses)
        if timed is not None:
            contenders[name] = timed
        bar.step()
    contenders.update(unchecked or {})
    bar.describe(f"{workload_id}: timing {len(contenders)} implementations")
    gc.collect()
    timings = measure_rounds(contenders, ctx.repeat, ctx.warmup, ctx.min_rep_s,
                             between=lambda: time.sleep(SETTLE_S))
    bar.step()
    return timings, statuses


def checked_peer(ctx: RunContext, workload_id: str, name: str,
                 attempt: Callable[[], tuple[Callable[[], object], np.ndarray]],
                 expected: np.ndarray, statuses: dict[str, str]) -> Callable[[], object] | None:
    """The peer's timed call if it is available and agrees with ours; else record why not.

    ``attempt()`` builds the peer and returns ``(timed_call, output)``, the output already in
    ours' layout; building, layout changes and the check all happen before any timing.
    """
    if name in ctx.unavailable:
        statuses[name] = f"skipped: {ctx.unavailable[name]}"
        return None
    try:
        timed, output = attempt()
        check_matches(expected, output, f"{workload_id} {name}")
    except OutputMismatch as exc:
        message = f"MISMATCH in {workload_id} vs {name}: {exc}"
        ctx.progress.note("!" * 72 + f"\n{message}\n" + "!" * 72)
        ctx.failures.append(message)
        statuses[name] = f"MISMATCH: {str(exc).strip().splitlines()[0]}"
        return None
    # A peer that cannot even run is reported (and fails the run), not fatal to the suite.
    except Exception as exc:  # noqa: BLE001
        message = f"{workload_id} {name} failed: {type(exc).__name__}: {exc}"
        ctx.progress.note(message)
        ctx.failures.append(message)
        statuses[name] = f"error: {type(exc).__name__}: {exc}"
        return None
    return timed


def comparison_rows(workload_id: str, case: str, peers: Sequence[str],
                    timings: dict[str, Timing], flops: int | None, targets: dict[str, Target],
                    statuses: dict[str, str]) -> list[Row]:
    """One row per peer: ours vs that peer (or the reason it has no number)."""
    ours, rows = timings[OURS], []
    for name in peers:
        row = Row(workload_id, case, peer=name, ours=ours.median, ours_iqr=ours.iqr,
                  flops=flops, target=targets.get(name), status=statuses.get(name, "ok"))
        if name in timings:
            timing = timings[name]
            row.peer_value, row.peer_iqr, row.checked = timing.median, timing.iqr, True
            row.extra = {"ours_timing": ours.to_json(), "peer_timing": timings[name].to_json()}
        rows.append(row)
    return rows


def describe(configs: Sequence[DenseConfig], input_dim: int) -> str:
    """``20->256(relu)->10`` style summary for table captions."""
    parts = [str(input_dim)] + [
        f"{c.units}({c.activation})" if c.activation != "linear" else str(c.units) for c in configs]
    return "->".join(parts)
