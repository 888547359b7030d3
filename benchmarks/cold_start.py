"""T1-T3 (issue 15): ResNet-18 224², batch 1, from a fresh process, against ONNX Runtime.

T1: cold cache, time to the first result (``compile`` with the default ``tier="auto"``: the
first call is answered by the lower tier while the kernels compile); T2: the same with a warm
cache; T3: cold cache, time until a call has run on the jitted code (the child keeps calling
until ``plan.last_tier == "jit"``). The peer is a fresh process that imports onnxruntime,
creates a session on the same network and weights (an ONNX file written from our IR
beforehand, as the C3 row does) and runs it once. Times are the child's own, from its first
statement (imports included) to the result. One cold directory serves T1 and T3 and, once
filled by that run, T2.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import snippets
from .context import RunContext
from .records import Row, Target
from .startup import ChildResult, run_child
from .timing import summarize

T1 = Target("time_ratio", "<=", 2.0, "<= 2x ORT (session + first run)")
T2 = Target("time_ratio", "<=", 1.0, "<= 1.0x ORT (session + first run)")
T3 = Target("value", "<=", 30.0, "<= 30 s to compiled speed")
SHAPE = (224, 224, 3)
#: a cold child compiles every kernel ResNet-18 needs: minutes on a loaded 2-core machine
COLD_TIMEOUT_S = 3600

OURS = (snippets._PROLOGUE + f"""
from compiler import TensorSpec, applications, compile
model = applications.resnet18(stem="imagenet")
plan = compile(model, TensorSpec((None, {', '.join(map(str, SHAPE))})))
X = np.random.default_rng(0).standard_normal((1, {', '.join(map(str, SHAPE))})).astype(np.float32)
Y = plan(X)
_t1 = time.perf_counter()
_first_tier = plan.last_tier
_jit = None
if plan.wait():      # blocks until the jitted code runs (at once on a warm cache)
    plan(X)
    _jit = time.perf_counter() - _t0 if plan.last_tier == "jit" else None
""" + snippets._REPORT.replace('"maxrss_kb": _peak', '"maxrss_kb": _peak, "jit_seconds": _jit, '
                                '"first_tier": _first_tier'))

ORT = snippets._PROLOGUE + """
import onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = 2
options.inter_op_num_threads = 1
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
session = ort.InferenceSession(PATH, options, providers=["CPUExecutionProvider"])
X = np.random.default_rng(0).standard_normal((1, SHAPE)).astype(np.float32)
Y = session.run(None, {"x": X.transpose(0, 3, 1, 2)})[0]
_t1 = time.perf_counter()
""" + snippets._REPORT

_MEMO: dict = {}


def _onnx_file(directory: str) -> str:
    """ResNet-18 with our initial weights as an ONNX file (built in this process, not timed)."""
    import onnx

    from compiler import applications

    from .ours_graph import graph_spec
    from .peers.onnx_graph import build_model

    model = applications.resnet18(stem="imagenet")
    model.build((None, *SHAPE))
    path = str(Path(directory) / "resnet18.onnx")
    onnx.save(build_model(graph_spec(model, SHAPE)), path)
    return path


def _measure(ctx: RunContext) -> dict:
    key = id(ctx)
    if key not in _MEMO:
        n, bar = ctx.subprocess_repeat, ctx.progress
        with tempfile.TemporaryDirectory(prefix="deferc-t1-") as tmp:
            bar.describe("T1-T3: ONNX Runtime, fresh process")
            ort_code = ORT.replace("PATH", repr(_onnx_file(tmp))).replace(
                "SHAPE", ", ".join(map(str, SHAPE)))
            ort = [run_child(ort_code) for _ in range(n)]
            bar.step()
            bar.describe("T1/T3: ours, cold cache")
            cold, warm = [], []
            for i in range(n):
                with tempfile.TemporaryDirectory(prefix="deferc-cold-") as cache:
                    cold.append(run_child(OURS, cache, timeout=COLD_TIMEOUT_S))
                    if i == 0:  # that run waited for the jitted code: the cache is warm now
                        bar.step()
                        bar.describe("T2: ours, warm cache")
                        warm = [run_child(OURS, cache) for _ in range(n)]
            bar.step()
        _MEMO[key] = {"ort": ort, "cold": cold, "warm": warm}
    return _MEMO[key]


def _row(wid: str, case: str, ours: list[ChildResult], ort: list[ChildResult] | None,
         target: Target, metric: str = "seconds") -> Row:
    values = [r.data[metric] for r in ours if r.data.get(metric) is not None]
    row = Row(wid, case, peer="onnxruntime" if ort else None, target=target,
              extra={"ours_runs": values, "first_tier": [r.data.get("first_tier") for r in ours]})
    if not values:
        row.status = "error: the jitted code never became ready"
        return row
    mine = summarize(values)
    row.ours, row.ours_iqr = mine.median, mine.iqr
    if ort:
        peer = summarize([r.first_result_s for r in ort])
        row.peer_value, row.peer_iqr = peer.median, peer.iqr
        row.extra["peer_runs"] = [r.first_result_s for r in ort]
    return row


def run_t(ctx: RunContext, wid: str) -> list[Row]:
    runs = _measure(ctx)
    if wid == "T1":
        return [_row("T1", "cold cache, time to first result", runs["cold"], runs["ort"], T1)]
    if wid == "T2":
        return [_row("T2", "warm cache, time to first result", runs["warm"], runs["ort"], T2)]
    return [_row("T3", "cold cache, time to compiled speed", runs["cold"], None, T3,
                 "jit_seconds")]
