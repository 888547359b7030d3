"""The benchmark harness's reporting: whole-suite repeats, the per-family plot, BLAS caveats."""

import sys

import pytest

from benchmarks.plot import group_by_family, plot_unavailable_reason, write_plot
from benchmarks.records import Row, Target
from benchmarks.report import table_lines
from benchmarks.runs import combine_runs


def _row(workload, ours, peer_value=1.0, peer="onnxruntime", status="ok"):
    return Row(workload, "batch 2", peer, ours=ours, peer_value=peer_value, status=status,
               target=Target("time_ratio", "<=", 0.8, "<= 0.8x ORT"))


def test_combine_runs_keeps_the_median_run_and_every_ratio():
    runs = [[_row("W1", 0.9)], [_row("W1", 0.5)], [_row("W1", 0.7)]]
    (row,) = combine_runs(runs)
    assert row.ratio == pytest.approx(0.7)
    assert sorted(row.extra["ratio_runs"]) == pytest.approx([0.5, 0.7, 0.9])
    assert row.met is True
    assert "runs 0.5x-0.9x" in table_lines([row])[-1]


def test_combine_runs_never_votes_a_failure_away():
    runs = [[_row("W1", 0.5)], [_row("W1", 0.5, status="MISMATCH: max err 3")],
            [_row("W1", 0.5)]]
    (row,) = combine_runs(runs)
    assert row.status.startswith("MISMATCH")


def test_single_run_is_unchanged():
    rows = [_row("W1", 0.5), _row("C2", 2.0)]
    assert combine_runs([rows]) == rows


def test_plot_has_one_panel_per_family(tmp_path):
    if plot_unavailable_reason():
        pytest.skip("matplotlib not installed")
    rows = [_row("W1", 0.5), _row("W2", 1.5), _row("C1", 3.0), _row("C3", 2.0, peer="torch"),
            _row("W6", 1.0, status="error: boom")]
    groups = group_by_family(rows)
    assert list(groups) == ["MLPs", "CNNs"]
    assert [r.workload for r in groups["MLPs"]] == ["W1", "W2"]
    path = write_plot(rows, tmp_path / "p.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_takes_sequence_and_onnx_ids_and_builds_what_the_run_times():
    """``--profile`` accepts every W/C/S/R inference id; an S id builds its own plan and input."""
    from dataclasses import replace

    from benchmarks.__main__ import parse_args
    from benchmarks.profiling import profile_workload
    from benchmarks.workloads import WORKLOADS

    for wid in ("W1", "C1", "S1", "S2", "S3", "S4", "R1", "R2", "R3"):
        assert parse_args(["--profile", wid.lower()]).profile == wid
    tiny = replace(WORKLOADS["S2"].spec, units=4, steps=3, features=2, batch=2)
    table = profile_workload(tiny, repeat=1)
    assert table.startswith("S2: GRU, batch 2, T=3, 2 inputs") and "gru" in table


def test_a_run_on_avx2_blas_kernels_of_an_avx512_cpu_is_flagged():
    from benchmarks.report import _blas_warning

    machine = {"cpu_flags": ["avx2", "avx512f"], "env": {"OPENBLAS_CORETYPE": "Haswell"},
               "openblas_cores": {"libscipy_openblas.so": "Haswell"}}
    assert "OPENBLAS_CORETYPE=Haswell" in _blas_warning(machine)
    machine["env"] = {}
    assert "detection" in _blas_warning(machine)
    machine["openblas_cores"] = {"libscipy_openblas.so": "SkylakeX"}
    assert _blas_warning(machine) is None
    assert _blas_warning({"cpu_flags": ["avx2"], "env": {},
                          "openblas_cores": {"libscipy_openblas.so": "Haswell"}}) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_the_kernels_openblas_is_recorded():
    import runtime  # noqa: F401  (loads SciPy's OpenBLAS, the one numba's kernels call)
    from benchmarks.machine import openblas_cores

    cores = openblas_cores()
    assert any("openblas" in lib and core for lib, core in cores.items()), cores
