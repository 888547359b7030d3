"""Building one-op ONNX graphs and checking deferc's import against ``onnx.reference``."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from compiler import onnx as conx


def make_model(nodes, inputs: dict, outputs: list, initializers: dict | None = None,
               opset: int = 17, dims: dict | None = None) -> onnx.ModelProto:
    """A model reading ``inputs`` (name -> sample array; ``dims[name]`` overrides the declared
    dims, e.g. ``("N", 3, "H", "W")``) and returning ``outputs``."""
    dims = dims or {}
    graph_inputs = [helper.make_tensor_value_info(
        name, helper.np_dtype_to_tensor_dtype(a.dtype), dims.get(name, a.shape))
        for name, a in inputs.items()]
    graph_outputs = [helper.make_empty_tensor_value_info(n) for n in outputs]
    inits = [numpy_helper.from_array(np.asarray(v), name)
             for name, v in (initializers or {}).items()]
    graph = helper.make_graph(nodes, "g", graph_inputs, graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7 if opset < 15 else 8
    return model


def check(nodes, inputs: dict, outputs: list | None = None, initializers: dict | None = None,
          opset: int = 17, dims: dict | None = None, rtol: float = 1e-4, layout: str = "NCHW",
          expected: list | None = None, **load_args):
    """Run the model with deferc and with ``ReferenceEvaluator`` (or hand-written
    ``expected`` outputs, where the reference implementation is wrong); outputs must agree."""
    outputs = outputs or [nodes[-1].output[0]]
    model = make_model(nodes, inputs, outputs, initializers, opset, dims)
    if expected is None:
        expected = ReferenceEvaluator(model).run(None, inputs)
    net = conx.load(model, layout=layout, **load_args)
    arrays = list(inputs.values())
    if layout == "NHWC":
        arrays = [a.transpose(0, 2, 3, 1) if a.ndim == 4 else a for a in arrays]
    got = net(arrays[0]) if len(arrays) == 1 else net(arrays)
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        if layout == "NHWC" and e.ndim == 4:
            g = g.transpose(0, 3, 1, 2)
        assert g.shape == e.shape, (g.shape, e.shape)
        scale = max(float(np.abs(e).max()), 1.0) if e.size else 1.0
        np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64),
                                   atol=rtol * scale, rtol=rtol)
    return net


def node(op: str, inputs, outputs=("y",), **attrs):
    return helper.make_node(op, list(inputs), list(outputs), name=f"{op.lower()}_node", **attrs)


def rand(*shape, seed: int = 0, positive: bool = False) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return np.abs(x) + 0.1 if positive else x


__all__ = ["TensorProto", "check", "make_model", "node", "rand"]
