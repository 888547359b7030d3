"""Turn result rows into ``latest.json`` (everything) and ``latest.md`` (the table people read)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .machine import AVX512_BLAS_CORES
from .records import Row
from .runs import spread_text

COLUMNS = ("Workload", "Case", "Peer", "Ours", "Peer value", "Ours/peer", "GFLOP/s ours",
           "GFLOP/s peer", "Target", "Measured", "Met")


def format_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(s) >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def _value(v: float | None, iqr: float | None, unit: str) -> str:
    if v is None:
        return "-"
    text = format_seconds(v) if unit == "s" else f"{v:.4g} {unit}"
    if iqr:
        text += f" ±{format_seconds(iqr) if unit == 's' else f'{iqr:.2g}'}"
    return text


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _ratio(row: Row) -> str:
    spread = spread_text(row)
    return _num(row.ratio, ".3g") + (f" (runs {spread})" if spread else "")


def _measured(row: Row) -> str:
    m = row.measured
    if m is None:
        return "-"
    if row.target.metric == "value":
        return _value(m, None, row.unit)
    return f"{m:.3g}x"


def _met(row: Row) -> str:
    if row.status != "ok":
        return row.status.split(":", 1)[0].upper()
    return {True: "PASS", False: "FAIL", None: ""}[row.met]


def table_lines(rows: Sequence[Row]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = (r.workload, r.case, r.peer or "-", _value(r.ours, r.ours_iqr, r.unit),
                 _value(r.peer_value, r.peer_iqr, r.unit), _ratio(r),
                 _num(r.gflops_ours, ".3g"), _num(r.gflops_peer, ".3g"),
                 r.target.text if r.target else "", _measured(r), _met(r))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(rows: Sequence[Row], meta: dict[str, Any]) -> str:
    """The full ``latest.md``: header, caveats, table, workload legend, notes, machine."""
    m = meta["machine"]
    out = ["# deferc benchmarks", ""]
    if meta["ours"] != "deferc":
        out += [(f"> **ours = {meta['ours']}**: deferc was not importable, so 'ours' is a NumPy "
                "stand-in. These numbers test the harness, not deferc."), ""]
    out += [(f"ours = **{meta['ours']}**; {m['timestamp']}; {m['cpu_model']} "
            f"({m['cpus_usable']} usable CPUs); repeat={meta['config']['repeat']}"
            f"{_runs(meta)}"
            f"{' (quick)' if meta['config']['quick'] else ''}. Times are the median per call "
            "± IQR; ours/peer < 1 means ours is faster."), ""]
    for caveat in (_busy_warning(m), _blas_warning(m)):
        if caveat:
            out += [f"> {caveat}", ""]
    out += table_lines(rows)
    out += ["", "## Workloads", ""]
    out += [f"- **{wid}**: {title}" for wid, title in meta["workloads"].items()]
    notes = [f"- {r.workload} {r.peer or ''}: {r.status}" for r in rows if r.status != "ok"]
    notes += [f"- {r.workload} {r.peer}: {r.extra['note']}" for r in rows if "note" in r.extra]
    notes += [f"- {r.workload} {r.case}: {r.peer} skipped: {r.extra['peer_skipped']}"
              for r in rows if r.extra.get("peer_skipped")]
    notes += [f"- {n}" for n in meta.get("notes", [])]
    if notes:
        out += ["", "## Notes", ""] + notes
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    flags = ", ".join(m.get("cpu_flags") or []) or "unknown"
    caches = ", ".join(f"{k} {v}" for k, v in (m.get("cpu_caches") or {}).items()) or "unknown"
    out += ["", "## Machine", "", f"- {m['cpu_model']}; SIMD: {flags}; caches: {caches}",
            f"- {m['platform']}, Python {m['python']}",
            f"- {versions}", (f"- NumPy BLAS: {m['numpy_blas']}; OpenBLAS kernels: "
            f"{m.get('openblas_cores') or 'unknown'}; numba: {m['numba']}; "
            f"torch threads: {m['torch_num_threads']}; env: {m['env'] or 'none'}"),
            f"- git: {m['git_commit']}", ""]
    return "\n".join(out)


def _runs(meta: dict[str, Any]) -> str:
    runs = meta["config"].get("repeat_runs", 1)
    return (f"; the whole suite ran {runs} times: each row is the median run, with the range "
            "of its ratio over runs") if runs > 1 else ""


def _busy_warning(machine: dict[str, Any]) -> str | None:
    """A caveat when the 1-minute load says other processes shared the CPUs during the run."""
    cpus = machine.get("cpus_usable") or machine.get("cpu_count") or 1
    loads = [lo[0] for lo in (machine.get("load_average_start"), machine.get("load_average_end"))
             if lo]
    if not loads or max(loads) < 0.5 * cpus:
        return None
    return (f"**Busy machine**: 1-min load {' -> '.join(f'{v:.2f}' for v in loads)} on {cpus} "
            "CPUs; other processes competed with this run, so times are noisy.")


def _blas_warning(machine: dict[str, Any]) -> str | None:
    """A caveat when OpenBLAS ran AVX2 kernels on a CPU with AVX-512 (``OPENBLAS_CORETYPE``
    pinned, or a CPU this OpenBLAS does not recognise): its GEMMs ran at about half speed."""
    cores = machine.get("openblas_cores") or {}
    if "avx512f" not in (machine.get("cpu_flags") or []) or not cores:
        return None
    slow = sorted({core for core in cores.values() if core not in AVX512_BLAS_CORES})
    if not slow:
        return None
    pinned = machine.get("env", {}).get("OPENBLAS_CORETYPE")
    cause = f"OPENBLAS_CORETYPE={pinned} in the environment" if pinned else "OpenBLAS's detection"
    return (f"**BLAS below the CPU**: OpenBLAS ran {', '.join(slow)} kernels ({cause}) on a CPU "
            "with AVX-512: GEMM-bound rows of ours and NumPy ran at about half speed.")


def _write_atomic(path: Path, text: str) -> None:
    """Write via ``*.tmp`` + rename so an interrupted run never leaves a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_reports(rows: Sequence[Row], meta: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "latest.json", "md": out_dir / "latest.md"}
    payload = dict(meta, rows=[r.to_json() for r in rows])
    _write_atomic(paths["json"], json.dumps(payload, indent=2, default=str) + "\n")
    _write_atomic(paths["md"], markdown(rows, meta))
    return paths
