"""``python -m compiler.onnx MODEL.onnx [--run] [--dot FILE]``: what a file holds, what deferc
makes of it, and (``--run``) how fast it runs next to ONNX Runtime."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

import numpy as np

from ...errors import CompilerError
from .reader import DEFAULT_DOMAINS, read_model


def _dims(value_info: Any) -> str:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return "(rank unknown)"
    dims = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
            for d in t.shape.dim]
    return "(" + ", ".join(dims) + ")"


def describe_file(proto: Any, out: Any) -> None:
    """Inputs/outputs with symbolic dims, the op histogram and every unsupported op."""
    from .converters import CONVERTERS
    from .model import FOLD_ONLY

    graph = proto.graph
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
    print(f"ONNX model '{graph.name}' (opsets: {opsets}; producer: {proto.producer_name} "
          f"{proto.producer_version})", file=out)
    weights = {t.name for t in graph.initializer}
    for v in graph.input:
        if v.name not in weights:
            print(f"  input  {v.name}: {_dims(v)}", file=out)
    for v in graph.output:
        print(f"  output {v.name}: {_dims(v)}", file=out)
    histogram = Counter(n.op_type for n in graph.node)
    print("ops: " + ", ".join(f"{op} {c}" for op, c in sorted(histogram.items())), file=out)
    missing = [n for n in graph.node if n.domain not in DEFAULT_DOMAINS
               or (n.op_type not in CONVERTERS and n.op_type not in FOLD_ONLY)]
    if missing:
        print(f"unsupported ({len(missing)}):", file=out)
        for n in missing:
            print(f"  {n.op_type} (node '{n.name}', domain '{n.domain or 'ai.onnx'}')", file=out)


def _sample_inputs(model: Any, batch: int = 1, side: int = 224) -> list:
    arrays = []
    for spec in model._input_specs:
        shape = [d if isinstance(d, int) else (batch if i == 0 else side)
                 for i, d in enumerate(spec.shape)]
        arrays.append(np.random.default_rng(0).standard_normal(shape).astype(model.dtype))
    return arrays


def _time(fn: Any, repeat: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None, out: Any = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m compiler.onnx", description=__doc__)
    parser.add_argument("model", help="an .onnx file")
    parser.add_argument("--run", action="store_true",
                        help="run it on random inputs and time it against ONNX Runtime")
    parser.add_argument("--dot", metavar="FILE", help="write the compiled IR as Graphviz DOT")
    args = parser.parse_args(argv)
    from ...driver import compile
    from .model import load

    try:
        proto, _ = read_model(args.model)
        describe_file(proto, out)
        model = load(args.model)
        start = time.perf_counter()
        plan = compile(model)
        print(f"compiled in {time.perf_counter() - start:.2f} s", file=out)
    except CompilerError as e:
        print(f"error: {e}", file=out)
        return 1
    g = plan.graph
    transposes = sum(1 for n in g.nodes if g.nodes[n]["op"] == "transpose")
    print(f"transposes left after the passes: {transposes}", file=out)
    if args.dot:
        with open(args.dot, "w") as f:
            f.write(plan.to_dot())
        print(f"IR written to {args.dot}", file=out)
    if args.run:
        inputs = _sample_inputs(model)
        ours = _time(lambda: plan(*inputs))
        print(f"deferc: {ours * 1e3:.2f} ms per call", file=out)
        try:
            import onnxruntime as ort
        except ImportError:
            print("onnxruntime is not installed: no comparison", file=out)
            return 0
        session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
        feeds = {i.name: a for i, a in zip(session.get_inputs(), inputs)}
        theirs = _time(lambda: session.run(None, feeds))
        print(f"onnxruntime: {theirs * 1e3:.2f} ms per call (deferc / ORT = "
              f"{ours / theirs:.2f}x)", file=out)
    return 0
