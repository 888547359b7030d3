"""Where the numbers came from: CPU, thread settings and library versions.

Recorded with every run because a ratio is only comparable with one taken on the same machine
and the same threading configuration.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

from .context import REPO_ROOT


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


#: The instruction-set extensions that decide which code paths numba, BLAS and ORT take.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "amx_tile")


def cpu_flags() -> list[str]:
    """The SIMD flags of ``/proc/cpuinfo`` that matter for kernels (empty when unreadable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in SIMD_FLAGS if flag in present]
    except OSError:
        pass
    return []


def cache_sizes() -> dict[str, str]:
    """Per-level cache sizes of CPU 0 as the kernel reports them (``{"L1d": "48K", ...}``)."""
    sizes = {}
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return sizes
    for entry in entries:
        try:
            with open(f"{root}/{entry}/level") as f:
                level = f.read().strip()
            with open(f"{root}/{entry}/type") as f:
                kind = f.read().strip()
            with open(f"{root}/{entry}/size") as f:
                size = f.read().strip()
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        sizes[f"L{level}{suffix}"] = size
    return sizes


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except (ImportError, AttributeError):  # missing: not part of this run
        return None


def _numba_info() -> dict[str, Any]:
    try:
        import numba
    except ImportError:
        return {}
    info: dict[str, Any] = {"configured_threading_layer": numba.config.THREADING_LAYER,
                            "num_threads": numba.get_num_threads()}
    try:
        info["threading_layer"] = numba.threading_layer()
    except ValueError:  # only known once a parallel kernel has run
        info["threading_layer"] = None
    return info


def _blas() -> str | None:
    try:
        import numpy as np

        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except (KeyError, TypeError, AttributeError):  # show_config's layout varies by version
        return None


#: OpenBLAS's kernel families that use AVX-512 (``openblas_get_corename``).
AVX512_BLAS_CORES = frozenset({"SkylakeX", "Cooperlake", "SapphireRapids"})
_CORENAME_SYMBOLS = ("openblas_get_corename", "scipy_openblas_get_corename",
                     "scipy_openblas_get_corename64_")


def openblas_cores() -> dict[str, str]:
    """``{library file: kernel family}`` of every OpenBLAS loaded in this process (Linux).

    The family is chosen once, at load, from the CPU or from ``OPENBLAS_CORETYPE``; pinned to
    "Haswell" on an AVX-512 CPU it halves every GEMM ours (SciPy's OpenBLAS, through numba) and
    NumPy run, so a run records what it actually ran.
    """
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line and "/" in line}
    except OSError:
        return {}
    cores = {}
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)  # already loaded: this only returns its handle
        except OSError:
            continue
        for symbol in _CORENAME_SYMBOLS:
            function = getattr(lib, symbol, None)
            if function is not None:
                function.restype = ctypes.c_char_p
                cores[os.path.basename(path)] = (function() or b"").decode()
                break
    return cores


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, check=False,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """Collect after the workloads ran, so numba's threading layer is known."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    # Only if a workload imported torch: importing it here would cost seconds and memory.
    get_threads = getattr(sys.modules.get("torch"), "get_num_threads", None)
    torch_threads = get_threads() if get_threads else None
    return {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_caches": cache_sizes(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {m: _version(m) for m in
                     ("numpy", "numba", "torch", "onnxruntime", "onnx", "matplotlib")},
        "numpy_blas": _blas(),
        "openblas_cores": openblas_cores(),
        "numba": _numba_info(),
        "torch_num_threads": torch_threads,
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS",
                                           "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                           "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                if k in os.environ},
        "git_commit": _git_commit(),
        "load_average_end": load_average(),
    }


def load_average() -> list[float] | None:
    """1/5/15-minute load: above the CPU count, other processes were competing with the run."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
