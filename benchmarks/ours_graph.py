"""deferc's conv models as ours and as a ``GraphSpec``: the conv half of ``ours``.

Like ``ours``, this is a module that knows deferc's API (the other being ``ours`` itself): it
builds the model, gives biases and BatchNorm statistics non-trivial values *before* compiling
(so a dropped bias or a BatchNorm-folding bug changes our output and fails the peers' check),
compiles it, and reads the same weights back out of deferc's IR, op by op, for the peers.
Walking the IR (not ``model.layers``) makes branching models such as ResNet-18 work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .graphspec import GraphSpec, OpSpec, Pads, same_pads

Run = Callable[[np.ndarray], np.ndarray]

#: How each kind of parameter is re-drawn: biases and BatchNorm statistics default to 0/1 in
#: Keras, values under which dropped or mis-folded terms would go unnoticed.
_RANDOM_PARAMS: dict[str, tuple[float, float]] = {
    "bias": (-0.1, 0.1), "beta": (-0.2, 0.2), "gamma": (0.5, 1.5),
    "moving_mean": (-0.2, 0.2), "moving_variance": (0.5, 1.5),
}


@dataclass(frozen=True)
class GraphBuilt:
    """Our compiled plan and the weights/graph it was built with (for the peers)."""

    run: Run
    spec: GraphSpec


# -- the models of the conv workloads --------------------------------------------------------------
def lenet5() -> Any:
    from compiler.applications import lenet5 as build

    return build()


def conv3x3_relu(size: int = 56, channels: int = 64) -> Any:
    """C2: one ``Conv2D(channels, 3, padding="same", activation="relu")`` (with bias)."""
    from compiler import Input, Sequential, layers

    return Sequential([Input((size, size, channels)),
                       layers.Conv2D(channels, 3, padding="same", activation="relu")],
                      name="conv3x3_relu")


def resnet18_imagenet() -> Any:
    from compiler.applications import resnet18

    return resnet18(stem="imagenet", num_classes=1000, input_shape=(None, None, 3))


#: Model factories by the name workloads refer to them with (workloads stay deferc-free).
MODELS: dict[str, Callable[[], Any]] = {
    "lenet5": lenet5, "conv3x3_relu": conv3x3_relu, "resnet18_imagenet": resnet18_imagenet}


# -- building --------------------------------------------------------------------------------------
def build(model_name: str, input_shape: tuple[int, ...], seed: int) -> GraphBuilt:
    """Build the named model for ``input_shape`` (NHWC, no batch axis)."""
    return build_model(MODELS[model_name](), input_shape, seed)


def build_model(model: Any, input_shape: tuple[int, ...], seed: int) -> GraphBuilt:
    """Initialize ``model``, randomize biases/BN statistics, compile it, describe it.

    Args:
        model: a deferc ``Sequential`` or ``Model`` with one input and one output.
        input_shape: the image shape, NHWC without the batch axis; spatial sides are fixed.
        seed: for the weights and the re-drawn biases/statistics.
    Returns:
        ``GraphBuilt(plan, spec)``; ``spec`` carries copies of exactly the weights ``plan`` uses.
    """
    from compiler import TensorSpec, compile, set_random_seed

    set_random_seed(seed)
    model.build((None, *input_shape))
    randomize_params(model, seed)
    plan = compile(model, TensorSpec((None, *input_shape)), tier="jit")  # time jitted code
    return GraphBuilt(plan, graph_spec(model, input_shape))


def randomize_params(model: Any, seed: int) -> None:
    """Redraw biases and BatchNorm parameters uniformly (see ``_RANDOM_PARAMS``)."""
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        names, weights = layer.param_names, layer.get_weights()
        if not any(n in _RANDOM_PARAMS for n in names):
            continue
        layer.set_weights([
            rng.uniform(*_RANDOM_PARAMS[n], w.shape).astype(w.dtype) if n in _RANDOM_PARAMS
            else w for n, w in zip(names, weights)])


# -- deferc IR -> GraphSpec ----------------------------------------------------------------------
def graph_spec(model: Any, input_shape: tuple[int, ...]) -> GraphSpec:
    """Lower ``model`` for one sample, propagate shapes, and copy out every op with its weights."""
    from compiler import TensorSpec, lower
    from compiler.ir import data_operands, layer_name, param_operands, topo_nodes
    from compiler.passes import CompileContext, propagate_shapes

    g = lower(model, [TensorSpec((1, *input_shape)).to_type(model.dtype)])
    g = propagate_shapes(g, CompileContext())
    if len(g.graph["inputs"]) != 1 or len(g.graph["outputs"]) != 1:
        raise ValueError(f"model '{model.name}': graph specs need one input and one output")
    values = {g.graph["inputs"][0]: 0}
    ops: list[OpSpec] = []
    for node in topo_nodes(g):
        data = g.nodes[node]
        if data["op"] in ("input", "param"):
            continue
        sources = data_operands(g, node)
        in_shapes = tuple(_sample_shape(g.nodes[s]["type"]) for s in sources)
        store = model.weight_store
        weights = {p: np.ascontiguousarray(store.value(g.nodes[n]["key"]), dtype=np.float32)
                   for p, n in param_operands(g, node).items()}
        ops.append(OpSpec(data["op"], tuple(values[s] for s in sources),
                          _normalize_attrs(data["op"], data["attrs"], in_shapes),
                          weights, in_shapes, _sample_shape(data["type"]),
                          layer_name(g, node)))
        values[node] = len(ops)
    return GraphSpec(tuple(input_shape), tuple(ops), values[g.graph["outputs"][0]],
                     name=model.name)


def _sample_shape(tensor_type: Any) -> tuple[int, ...]:
    shape = tuple(tensor_type.shape)
    if not all(isinstance(d, (int, np.integer)) for d in shape):
        raise ValueError(f"graph spec needs concrete shapes, received {shape}")
    return tuple(int(d) for d in shape[1:])


def _pads(padding: str, in_shape: tuple[int, ...], k: tuple[int, int], strides: tuple[int, int],
          dilation: tuple[int, int]) -> Pads:
    if padding == "same":
        return same_pads((in_shape[0], in_shape[1]), k, strides, dilation)
    if padding == "valid":
        return (0, 0), (0, 0)
    raise ValueError(f"graph spec: padding must be 'valid' or 'same', received {padding!r}")


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


def _normalize_attrs(op: str, attrs: dict, in_shapes: tuple) -> dict:
    """deferc's op attrs -> the ``OpSpec`` attrs documented there (pads made explicit)."""
    if op == "conv2d":
        if attrs.get("residual", False):
            raise ValueError("graph spec: conv2d with a fused residual is not a lowered op")
        k, strides = _pair(attrs["kernel_size"]), _pair(attrs.get("strides", 1))
        dilation = _pair(attrs.get("dilation", 1))
        return {"strides": strides, "dilation": dilation, "groups": int(attrs.get("groups", 1)),
                "pads": _pads(attrs.get("padding", "valid"), in_shapes[0], k, strides, dilation),
                "activation": attrs.get("activation", "linear")}
    if op in ("max_pool2d", "avg_pool2d"):
        pool = _pair(attrs.get("pool_size", 2))
        strides = pool if attrs.get("strides") is None else _pair(attrs["strides"])
        return {"pool_size": pool, "strides": strides,
                "pads": _pads(attrs.get("padding", "valid"), in_shapes[0], pool, strides, (1, 1))}
    if op == "zero_padding2d":
        from compiler.ops.pooling import zero_padding_amounts

        return {"pads": zero_padding_amounts(attrs)}
    if op == "batch_norm":
        from compiler.ops.normalization import DEFAULT_EPSILON

        return {"epsilon": float(attrs.get("epsilon", DEFAULT_EPSILON))}
    if op in ("activation", "dense"):
        if op == "activation" and "alpha" in attrs:
            raise ValueError(f"graph spec: activation {attrs['activation']!r} with alpha")
        return {"activation": attrs.get("activation", "linear")}
    if op == "global_avg_pool2d":
        return {"keepdims": bool(attrs.get("keepdims", False))}
    return {}
