"""ONNX Runtime for ``GraphSpec`` conv nets: an NCHW ONNX graph built with ``onnx.helper``.

One ONNX node (plus an activation node) per op: ``Conv`` (explicit, possibly asymmetric pads),
``BatchNormalization``, ``MaxPool``/``AveragePool`` (``count_include_pad=0``, as TF), ``Pad``,
``Add``, ``GlobalAveragePool``, ``Gemm``. ``Flatten`` of an image is preceded by a ``Transpose`` to
NHWC so features come out in our order. ORT's optimiser is free to fuse (e.g. Conv+BN+Relu):
that is part of what we compare against.
"""

from __future__ import annotations

import numpy as np

from ..graphspec import GraphSpec, OpSpec, Pads, PeerRun
from .onnx_peer import IR_VERSION, OPSET, make_session

_ACTIVATION_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}


def _onnx_pads(pads: Pads) -> list[int]:
    """``((t, b), (l, r))`` -> ONNX ``[t, l, b, r]`` (all begins, then all ends)."""
    (t, b), (left, r) = pads
    return [t, left, b, r]


class _Emitter:
    """Accumulates nodes and initializers; ``emit`` returns the new value's name."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []

    def const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def emit(self, op_type: str, inputs: list[str], out: str, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def activation(self, name: str, x: str, out: str, rank: int) -> str:
        if name == "linear":
            return x
        if name not in _ACTIVATION_OPS or (name == "softmax" and rank != 2):
            raise ValueError(f"onnx graph peer: unsupported activation {name!r} on rank {rank}")
        attrs = {"axis": -1} if name == "softmax" else {}
        return self.emit(_ACTIVATION_OPS[name], [x], out, **attrs)


def _op(em: _Emitter, op: OpSpec, i: int, xs: list[str]) -> str:
    """Emit ``op`` (the ``i``-th) reading ``xs``; returns the name of its output."""
    a, w, y = op.attrs, op.weights, f"v{i + 1}"
    if op.op == "conv2d":
        args = [xs[0], em.const(f"W{i}", w["kernel"].transpose(3, 2, 0, 1))]
        if "bias" in w:
            args.append(em.const(f"B{i}", w["bias"]))
        kh, kw = w["kernel"].shape[:2]
        h = em.emit("Conv", args, f"conv{i}", kernel_shape=[kh, kw], strides=list(a["strides"]),
                    dilations=list(a["dilation"]), group=a["groups"], pads=_onnx_pads(a["pads"]))
        return em.activation(a["activation"], h, y, 4)
    if op.op in ("max_pool2d", "avg_pool2d"):
        kind, extra = (("MaxPool", {}) if op.op == "max_pool2d"
                       else ("AveragePool", {"count_include_pad": 0}))
        return em.emit(kind, [xs[0]], y, kernel_shape=list(a["pool_size"]),
                       strides=list(a["strides"]), pads=_onnx_pads(a["pads"]), **extra)
    if op.op == "batch_norm":
        c = op.in_shapes[0][-1]
        if len(op.in_shapes[0]) != 3:
            raise ValueError(f"onnx graph peer: {op.name}: batch_norm on rank "
                             f"{len(op.in_shapes[0]) + 1} (only images)")
        args = [xs[0], em.const(f"gamma{i}", w.get("gamma", np.ones(c, np.float32))),
                em.const(f"beta{i}", w.get("beta", np.zeros(c, np.float32))),
                em.const(f"mean{i}", w["moving_mean"]), em.const(f"var{i}", w["moving_variance"])]
        return em.emit("BatchNormalization", args, y, epsilon=a["epsilon"])
    if op.op == "dense":
        args = [xs[0], em.const(f"W{i}", w["kernel"])]
        if "bias" in w:
            args.append(em.const(f"B{i}", w["bias"]))
        return em.activation(a["activation"], em.emit("Gemm", args, f"gemm{i}"), y, 2)
    if op.op == "activation":
        return em.activation(a["activation"], xs[0], y, len(op.in_shapes[0]) + 1)
    if op.op == "add":
        h = xs[0]
        for j, other in enumerate(xs[1:]):
            h = em.emit("Add", [h, other], y if j == len(xs) - 2 else f"add{i}_{j}")
        return h
    if op.op == "zero_padding2d":
        (t, b), (left, r) = a["pads"]
        pads = em.const(f"pads{i}", np.array([0, 0, t, left, 0, 0, b, r], np.int64))
        return em.emit("Pad", [xs[0], pads], y, mode="constant")
    if op.op == "global_avg_pool2d":
        h = em.emit("GlobalAveragePool", [xs[0]], y if a["keepdims"] else f"gap{i}")
        return h if a["keepdims"] else em.emit("Flatten", [h], y, axis=1)
    if op.op == "flatten":
        h = xs[0]
        if len(op.in_shapes[0]) == 3:  # NCHW image: features in NHWC order, like ours
            h = em.emit("Transpose", [h], f"nhwc{i}", perm=[0, 2, 3, 1])
        return em.emit("Flatten", [h], y, axis=1)
    if op.op == "identity":
        return em.emit("Identity", [xs[0]], y)
    raise ValueError(f"onnx graph peer: unsupported op {op.op!r} ({op.name})")


def _nchw(shape: tuple[int, ...]) -> list:
    """Value-info shape with a symbolic batch; images as NCHW."""
    if len(shape) == 3:
        return ["N", shape[2], shape[0], shape[1]]
    return ["N", *shape]


def build_model(spec: GraphSpec):
    """The ``onnx.ModelProto`` of ``spec`` (NCHW), checked by ``onnx.checker``."""
    import onnx
    from onnx import TensorProto, helper

    em, names = _Emitter(), ["x"]
    for i, op in enumerate(spec.ops):
        names.append(_op(em, op, i, [names[v] for v in op.inputs]))
    em.emit("Identity", [names[spec.output]], "y")
    graph = helper.make_graph(
        em.nodes, f"deferc_peer_{spec.name}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, _nchw(spec.input_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, _nchw(spec.output_shape))],
        initializer=em.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="deferc-benchmarks")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def build(spec: GraphSpec) -> PeerRun:
    """An ORT ``InferenceSession`` (CPU, all graph optimisations, 2 intra-op threads)."""
    session = make_session(build_model(spec))

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(["y"], {"x": x})[0]

    return PeerRun(run, "NCHW")
