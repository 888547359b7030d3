"""Source of the child processes W5 and the peak-RSS rows run with ``python -c``.

Each script is self-contained (imports only the library under test and NumPy), does its work, and
prints one JSON line: ``seconds`` from its first statement to its first result, ``maxrss_kb``
(peak resident set in KiB: ``VmHWM``, else ``getrusage``) and the output ``shape``. A fresh
process per run is the only way to see import + compile + cache-load cost and a peak RSS that
belongs to one library alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from .modelspec import DenseConfig

_PROLOGUE = "import time\n_t0 = time.perf_counter()\nimport numpy as np\n"
# VmHWM, not getrusage's ru_maxrss: on Linux ru_maxrss survives fork+exec, so a child of a
# 600 MiB benchmark process would report the parent's peak as its own.
_REPORT = """
import json, resource
try:
    with open("/proc/self/status") as _f:
        _peak = next(int(l.split()[1]) for l in _f if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    _peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": _t1 - _t0, "shape": list(Y.shape), "maxrss_kb": _peak}))
"""


def _input(input_dim: int, batch: int) -> str:
    return (f"X = np.random.default_rng(0).standard_normal(({batch}, {input_dim}))"
            ".astype(np.float32)\n")


def _finish(call: str, extra_calls: int, context: str | None = None) -> str:
    """Stop the clock after the first result, make ``extra_calls`` more (steady-state memory)."""
    loop = f"for _ in range({extra_calls}):\n    Y = {call}\n"
    if context:
        loop = f"with {context}:\n" + "".join(f"    {line}\n" for line in loop.splitlines())
    return "_t1 = time.perf_counter()\n" + loop + _REPORT


def deferc_script(input_dim: int, configs: Sequence[DenseConfig], batch: int,
                  extra_calls: int = 0) -> str:
    """The seed example: build a ``Sequential`` and call it; shapes are inferred on first call."""
    dense = ", ".join(f"layers.Dense({c.units}, activation={c.activation!r})" for c in configs)
    return (_PROLOGUE + "from compiler import Sequential, layers\n"
            + f"net = Sequential([{dense}])\n" + _input(input_dim, batch)
            + "Y = net(X)\n" + _finish("net(X)", extra_calls))


def numpy_script(input_dim: int, configs: Sequence[DenseConfig], batch: int,
                 extra_calls: int = 0) -> str:
    """The stand-in for ours: Glorot-initialised float32 NumPy matmuls."""
    lines = [_PROLOGUE, "rng = np.random.default_rng(1)\nWS = []\n"]
    fan_in = input_dim
    for c in configs:
        lines.append(f"WS.append((rng.uniform(-0.1, 0.1, ({fan_in}, {c.units})).astype(np.float32),"
                     f" np.zeros({c.units}, np.float32), {c.activation == 'relu'}))\n")
        fan_in = c.units
    lines.append("def net(h):\n    for w, b, relu in WS:\n        h = h @ w + b\n"
                 "        h = np.maximum(h, 0) if relu else h\n    return h\n")
    lines += [_input(input_dim, batch), "Y = net(X)\n", _finish("net(X)", extra_calls)]
    return "".join(lines)


def torch_script(input_dim: int, configs: Sequence[DenseConfig], batch: int,
                 extra_calls: int = 0, lazy: bool = True) -> str:
    """PyTorch eager equivalent; ``lazy`` uses ``LazyLinear`` (deferred shapes, like ours)."""
    mods, fan_in = [], input_dim
    for c in configs:
        mods.append(f"nn.LazyLinear({c.units})" if lazy else f"nn.Linear({fan_in}, {c.units})")
        if c.activation == "relu":
            mods.append("nn.ReLU()")
        elif c.activation != "linear":
            raise ValueError(f"torch_script: unsupported activation {c.activation!r}")
        fan_in = c.units
    return (_PROLOGUE + "import torch\nfrom torch import nn\ntorch.set_num_threads(2)\n"
            + f"net = nn.Sequential({', '.join(mods)}).eval()\n" + _input(input_dim, batch)
            + "with torch.inference_mode():\n    Y = net(torch.from_numpy(X)).numpy()\n"
            + _finish("net(torch.from_numpy(X)).numpy()", extra_calls, "torch.inference_mode()"))
