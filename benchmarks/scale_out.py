"""D1-D2: one compiled plan mapped over a dask cluster (``runtime.dask.predict``).

Each workload times the same chunks three ways: ``plan(chunk)`` in a loop in this process on one
thread (the per-core baseline), and ``predict`` on a ``LocalCluster`` of worker processes with
one thread each, first one worker, then two. The input is persisted on the workers before
timing, so what is timed is scheduling, plan execution and nothing of the client-to-worker input
transfer (that is input I/O, reported separately in README's "Scale out" notes); outputs stay on
the workers (``persist``). Before timing, the cluster's first and last chunks are checked against
``plan`` run here. A last row measures the scheduler's overhead per task with tiny chunks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .context import RunContext
from .ours import DEFERC
from .records import Row, Target
from .timing import summarize

#: speed-up of 2 workers over 1 >= 1.7x  <=>  time ratio <= 1/1.7
SPEEDUP = Target("time_ratio", "<=", round(1 / 1.7, 3), ">= 1.7x one worker (time <= 0.588x)")
#: per-core throughput >= 0.9x plan(x)  <=>  core-seconds ratio <= 1/0.9
PER_CORE = Target("time_ratio", "<=", round(1 / 0.9, 3),
                  ">= 0.9x plan(x) per core (core-time <= 1.11x)")
WORKERS = (1, 2)
TINY_ROWS, TINY_TASKS = 8, 200  # the per-task overhead probe
TIMEOUT_S = 900


@dataclass(frozen=True)
class ScaleOutWorkload:
    """``model`` (a factory name in ``MODELS``) over ``rows`` samples of ``sample_shape``."""

    id: str
    title: str
    model: str
    sample_shape: tuple[int, ...]
    rows: int
    chunk_rows: int

    def sizes(self, quick: bool) -> tuple[int, int]:
        """Rows and chunk rows; ``--quick`` runs a tenth of the rows in half-size chunks (a
        smoke test). Chunks stay large on purpose: an arena under 32 MiB comes from the heap in
        one process but page-faults on every call in a dask worker (the nanny sets
        ``MALLOC_TRIM_THRESHOLD_``), which is not what D1/D2 are about."""
        if quick:
            return self.rows // 10, self.chunk_rows // 2
        return self.rows, self.chunk_rows

    def steps(self) -> int:
        return 2 + len(WORKERS)


def _seed_mlp(seed: int) -> object:
    """The seed chapter's MLP (20 -> 256 -> 10), uninitialized: compile builds it."""
    from compiler import Sequential, layers

    return Sequential([layers.Dense(256, activation="relu"), layers.Dense(10)], name="seed_mlp")


def _lenet5(seed: int) -> object:
    from compiler.applications import lenet5

    return lenet5()


MODELS: dict[str, Callable[[int], object]] = {"seed_mlp": _seed_mlp, "lenet5": _lenet5}


def unavailable_reason(ctx: RunContext) -> str | None:
    if ctx.ours.name != DEFERC:
        return f"scale-out workloads need deferc (ours = {ctx.ours.name})"
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as e:
        return f"dask[distributed] not installed ({e}); pip install 'deferc[dask]'"
    return None


#: Worker processes run their kernels on one thread each (per-core). Set through the nanny's
#: environment, never this process's: numba fixes its thread count when ``runtime`` is imported.
ONE_THREAD_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _time_cluster(ctx: RunContext, n_workers: int, plan: object, x: np.ndarray,
                  chunk_rows: int, expected: tuple[np.ndarray, np.ndarray],
                  probe_overhead: bool) -> tuple[list[float], float | None]:
    from distributed import Client, LocalCluster, wait

    from runtime.dask import predict

    with LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, env=ONE_THREAD_ENV,
            dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as client:
        client.wait_for_workers(n_workers, timeout=TIMEOUT_S)
        xs = _scatter_rows(client, x, chunk_rows)

        def fresh(a: object) -> object:
            """A copy under new keys, made on the workers and not timed: repeating ``predict``
            on the same input would find its (deterministically named) results in memory."""
            b = a.map_blocks(np.copy).persist()
            wait(b, timeout=TIMEOUT_S)
            return b

        def run(a: object) -> float:
            start = time.perf_counter()
            wait(predict(plan, a).persist(), timeout=TIMEOUT_S)
            return time.perf_counter() - start

        y = predict(plan, xs).persist()  # warm-up: workers unpickle the plan, load its code
        first, last = client.compute([y.blocks[0], y.blocks[-1]], sync=True)
        for got, want, which in ((first, expected[0], "first"), (last, expected[1], "last")):
            if not np.allclose(got, want, rtol=1e-5, atol=1e-6):
                raise AssertionError(f"{n_workers} worker(s): the {which} chunk differs from "
                                     f"plan(chunk) in this process")
        del y
        times = [run(fresh(xs)) for _ in range(ctx.repeat)]
        overhead = None
        if probe_overhead:
            n = TINY_ROWS * TINY_TASKS
            tiny = _scatter_rows(client, x[:n], TINY_ROWS)
            local = min(_loop(plan, x[:n], TINY_ROWS) for _ in range(3))
            wall = min(run(fresh(tiny)) for _ in range(3))
            # wall time per task with every worker busy, minus the plan's own work
            overhead = (wall * n_workers - local) / TINY_TASKS
    return times, overhead


def _scatter_rows(client: object, x: np.ndarray, chunk_rows: int) -> object:
    """``x`` as a dask array whose row chunks already live on the workers (not in the graph)."""
    import dask.array as da
    from distributed import wait

    parts = [x[i:i + chunk_rows] for i in range(0, len(x), chunk_rows)]
    futures = client.scatter(parts)
    wait(futures, timeout=TIMEOUT_S)
    return da.concatenate([da.from_delayed(f, shape=p.shape, dtype=p.dtype, meta=p[:0])
                           for f, p in zip(futures, parts)])


def _loop(plan: object, x: np.ndarray, chunk_rows: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(x), chunk_rows):
        plan(x[i:i + chunk_rows])
    return time.perf_counter() - start


def run_scale_out(ctx: RunContext, wl: ScaleOutWorkload) -> list[Row]:
    reason = unavailable_reason(ctx)
    if reason:
        ctx.progress.step(wl.steps())
        return [Row(wl.id, case, target=target, status=f"skipped: {reason}", plot=False)
                for case, target in (("2 workers vs 1", SPEEDUP), ("2 workers per core", PER_CORE))]
    from compiler import TensorSpec, compile
    from runtime import get_num_threads, set_num_threads

    bar = ctx.progress
    rows_n, chunk = wl.sizes(ctx.quick)
    case = f"{rows_n:,} rows, chunks of {chunk:,}"
    bar.describe(f"{wl.id}: build + plan(x) per chunk, one thread")
    plan = compile(MODELS[wl.model](ctx.seed), TensorSpec((None, *wl.sample_shape)),
                   seed=ctx.seed, tier="jit")
    x = np.random.default_rng(ctx.seed).standard_normal(
        (rows_n, *wl.sample_shape)).astype(np.float32)
    threads = get_num_threads()
    set_num_threads(1)
    try:
        last_start = (rows_n - 1) // chunk * chunk
        expected = (plan(x[:chunk]).copy(), plan(x[last_start:]).copy())
        _loop(plan, x, chunk)  # warm-up
        local = summarize([_loop(plan, x, chunk) for _ in range(ctx.repeat)])
    finally:
        set_num_threads(threads)
    bar.step()
    cluster, overhead = {}, None
    for n in WORKERS:
        bar.describe(f"{wl.id}: dask, {n} worker(s)")
        times, probe = _time_cluster(ctx, n, plan, x, chunk, expected, n == WORKERS[-1])
        cluster[n] = summarize(times)
        overhead = probe if probe is not None else overhead
        bar.step()
    one, two = cluster[1], cluster[2]
    note = {"workers": "LocalCluster, processes, 1 thread each", "rows": rows_n, "chunk": chunk}
    rows = [
        Row(wl.id, f"{case}: 2 workers vs 1", peer="dask, 1 worker", ours=two.median,
            ours_iqr=two.iqr, peer_value=one.median, peer_iqr=one.iqr, target=SPEEDUP,
            plot=False, extra=dict(note, samples_2=two.samples, samples_1=one.samples)),
        Row(wl.id, f"{case}: 2 workers, core-seconds", peer="plan(x) per chunk, 1 thread",
            ours=2 * two.median, ours_iqr=2 * two.iqr, peer_value=local.median,
            peer_iqr=local.iqr, target=PER_CORE, plot=False,
            extra=dict(note, samples_local=local.samples)),
        Row(wl.id, f"{case}: 1 worker", peer="plan(x) per chunk, 1 thread", ours=one.median,
            ours_iqr=one.iqr, peer_value=local.median, peer_iqr=local.iqr, plot=False),
    ]
    bar.step()
    if overhead is not None:
        rows.append(Row(wl.id, f"scheduler overhead per task ({TINY_TASKS} tasks of "
                               f"{TINY_ROWS} rows, 2 workers)", ours=overhead, plot=False))
    return rows


def describe(wl: ScaleOutWorkload) -> str:
    return (f"{wl.title}: {wl.rows:,} rows in chunks of {wl.chunk_rows:,}, dask LocalCluster "
            f"(processes, 1 thread each) 1 vs 2 workers, and plan(x) on the same chunks")
