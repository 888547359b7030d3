"""ONNX Runtime on CPU, from an ONNX graph built in memory with ``onnx.helper`` (no files, no net).

Dense layers lower to ``Gemm`` (kernel used as-is, ``transB=0``) plus an activation node, which
ORT's graph optimiser may fuse; the batch axis is symbolic (``"N"``) so one session serves all
batch sizes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..modelspec import DenseLayer, LayerSpec, ModelSpec

NAME = "onnxruntime"
INTRA_OP_THREADS = 2
INTER_OP_THREADS = 1
OPSET = 17
IR_VERSION = 8  # old enough for any ORT >= 1.14, new enough for opset 17
_ACTIVATION_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}


def unavailable_reason() -> str | None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return f"onnx/onnxruntime not importable ({exc})"
    return None


def version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def _dense(layer: DenseLayer, index: int, x: str, initializers: list) -> tuple[list, str]:
    from onnx import helper, numpy_helper

    w, b, y = f"W{index}", f"B{index}", f"gemm{index}"
    initializers += [numpy_helper.from_array(layer.kernel, w),
                     numpy_helper.from_array(layer.bias, b)]
    nodes = [helper.make_node("Gemm", [x, w, b], [y], name=f"dense{index}")]
    if layer.activation != "linear":
        op = _ACTIVATION_OPS.get(layer.activation)
        if op is None:
            raise ValueError(f"onnx peer: unsupported activation {layer.activation!r}")
        attrs = {"axis": -1} if op == "Softmax" else {}
        nodes.append(helper.make_node(op, [y], [f"act{index}"], name=f"{op}{index}", **attrs))
        y = f"act{index}"
    return nodes, y


_BUILDERS: dict[type, Callable[[LayerSpec, int, str, list], tuple[list, str]]] = {
    DenseLayer: _dense,
}


def build_model(spec: ModelSpec):
    """The ``onnx.ModelProto`` for ``spec``, checked by ``onnx.checker``."""
    import onnx
    from onnx import TensorProto, helper

    nodes, initializers, current = [], [], "x"
    for i, layer in enumerate(spec.layers):
        new_nodes, current = _BUILDERS[type(layer)](layer, i, current, initializers)
        nodes += new_nodes
    out_dim = spec.layers[-1].kernel.shape[1]
    nodes.append(helper.make_node("Identity", [current], ["y"], name="output"))
    graph = helper.make_graph(
        nodes, "deferc_peer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *spec.input_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_dim])],
        initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="deferc-benchmarks")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def make_session(model):
    """An ORT session on the CPU provider: all graph optimisations, our thread settings."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = INTRA_OP_THREADS
    options.inter_op_num_threads = INTER_OP_THREADS
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def build(spec: ModelSpec) -> Callable[[np.ndarray], np.ndarray]:
    """An ORT ``InferenceSession`` (CPU provider, all graph optimisations) wrapped as ``run(x)``."""
    session = make_session(build_model(spec))
    outputs = ["y"]

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(outputs, {"x": x})[0]

    return run
