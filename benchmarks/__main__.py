"""``python -m benchmarks``: run the selected workloads, print the table, write latest.*.

Exit status is 1 when any peer disagreed with ours or failed to run (a broken comparison must
not pass silently); missed performance targets are reported in the table but do not fail the run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import ours as ours_adapter
from .context import REPO_ROOT, RunContext
from .machine import load_average, machine_info
from .peers import PEERS
from .plot import plot_unavailable_reason, write_plot
from .progress import Progress
from .report import table_lines, write_reports
from .runs import combine_runs
from .workloads import WORKLOADS

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"comma-separated ids (default: all = {','.join(WORKLOADS)})")
    p.add_argument("--repeat", type=int, default=None,
                   help="timing repetitions per implementation (default 10, --quick 3)")
    p.add_argument("--quick", action="store_true",
                   help="few repetitions and subprocess runs: a smoke test, not a measurement")
    p.add_argument("--repeat-runs", type=int, default=1,
                   help="run the whole selection N times; report the median run and the spread")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for latest.*")
    p.add_argument("--ours", choices=("auto", "deferc", "stand-in"), default="auto",
                   help="what 'ours' is; auto = deferc if importable, else a NumPy stand-in")
    p.add_argument("--profile", metavar="W_ID",
                   help="print our plan's per-step table for one workload (e.g. C3) and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.profile:
        args.profile = args.profile.strip().upper()
        if args.profile not in WORKLOADS or WORKLOADS[args.profile].spec is None:
            profilable = [w for w, wl in WORKLOADS.items() if wl.spec is not None]
            p.error(f"--profile takes one of {', '.join(profilable)}, received {args.profile}")
    args.workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}")
    if args.repeat is None:
        args.repeat = 3 if args.quick else 10
    if args.repeat_runs < 1:
        p.error(f"--repeat-runs must be >= 1, received {args.repeat_runs}")
    if args.repeat < 1:
        p.error(f"--repeat must be >= 1, received {args.repeat}")
    return args


def make_context(args: argparse.Namespace) -> RunContext:
    unavailable = {}
    for name, peer in PEERS.items():
        reason = peer.unavailable_reason()
        if reason:
            unavailable[name] = reason
            print(f"skipping peer {name}: {reason}", file=sys.stderr)
    ours = ours_adapter.resolve(args.ours)
    if ours.name != ours_adapter.DEFERC:
        print(f"NOTE: ours = {ours.name} ({ours_adapter.deferc_unavailable_reason() or 'forced'})"
              "; numbers do not describe deferc", file=sys.stderr)
    return RunContext(ours=ours, peers=PEERS, unavailable=unavailable, repeat=args.repeat,
                      warmup=1 if args.quick else 3, min_rep_s=0.010 if args.quick else 0.020,
                      subprocess_repeat=1 if args.quick else 3, quick=args.quick)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile:
        from .profiling import profile_workload

        print(profile_workload(WORKLOADS[args.profile].spec, args.repeat))
        return 0
    ctx = make_context(args)
    selected = [WORKLOADS[w] for w in args.workloads]
    ctx.progress = Progress(args.repeat_runs * sum(w.steps(ctx) for w in selected),
                            enabled=not args.no_progress)
    runs, started, load_start = [], time.perf_counter(), load_average()
    for _ in range(args.repeat_runs):
        rows: list = []
        for wl in selected:
            try:
                rows += wl.run(ctx)
            # One broken workload must not hide the others' results; the run still exits 1.
            except Exception as exc:  # noqa: BLE001
                message = f"{wl.id} aborted: {type(exc).__name__}: {exc}"
                ctx.progress.note(message)
                ctx.failures.append(message)
        runs.append(rows)
    ctx.progress.close()
    rows = combine_runs(runs)

    machine = dict(machine_info(), load_average_start=load_start)
    meta = {"ours": ctx.ours.name, "machine": machine,
            "config": {"workloads": args.workloads, "repeat": args.repeat, "quick": args.quick,
                       "repeat_runs": args.repeat_runs,
                       "warmup": ctx.warmup, "min_rep_s": ctx.min_rep_s,
                       "subprocess_repeat": ctx.subprocess_repeat,
                       "elapsed_s": round(time.perf_counter() - started, 1)},
            "workloads": {w.id: w.title for w in selected},
            "skipped_peers": ctx.unavailable, "notes": list(ctx.failures)}
    paths = write_reports(rows, meta, args.out)
    print("\n".join(table_lines(rows)))
    reason = plot_unavailable_reason()
    if reason:
        print(f"plot skipped: {reason}", file=sys.stderr)
    else:
        png = write_plot(rows, args.out / "latest.png", f"ours = {ctx.ours.name} vs peers")
        if png is not None:
            paths["png"] = png
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    for failure in ctx.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if ctx.failures else 0


if __name__ == "__main__":
    sys.exit(main())
