"""A deferc model -> Keras 3 ``config.json`` and ``model.weights.h5`` (what Keras would write).

Functional models list their layers in the order Keras' ``map_graph`` computes on loading
(deepest first, ties by first visit in a depth-first walk from the outputs), because Keras finds
each layer's weights by that position, not by name. A model whose weights do not exist yet is
written unbuilt (no ``build_config``, empty ``vars`` groups), as Keras writes a model that was
never called.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CompilerError
from ..frontend.layers import Layer
from ..frontend.models import Model, Sequential
from ..symbolic import Dim
from . import table
from .reader import snake_case, unique_name

Group = tuple[str, str, list[np.ndarray]]


def _policy(dtype: Any) -> dict:
    return {"module": "keras", "class_name": "DTypePolicy",
            "config": {"name": str(np.dtype(dtype))}, "registered_name": None}


def _dims(shape: Any) -> list | None:
    if shape is None:
        return None
    return [d if isinstance(d, int) and not isinstance(d, Dim) else None for d in shape]


def _input_entry(name: str, shape: Any, dtype: Any) -> dict:
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": _dims(shape), "dtype": str(np.dtype(dtype)),
                       "sparse": False, "ragged": False, "name": name, "optional": False},
            "registered_name": None, "name": name, "inbound_nodes": []}


def layer_entry(layer: Layer, dtype: Any, where: str) -> dict:
    """One table layer as Keras' serialized form (``module``/``class_name``/``config``)."""
    keras_name = table.KERAS_NAME.get(type(layer))
    label = f"{where}: layer '{layer.name}' ({type(layer).__name__})"
    if keras_name is None:
        raise CompilerError(f"{label} has no Keras equivalent; .keras files hold built-in "
                            f"layers only: {sorted(table.TABLE)}")
    spec = table.TABLE[keras_name]
    ours = layer.get_config()
    config: dict[str, Any] = {"name": layer.name, "trainable": True, "dtype": _policy(dtype)}
    for key in spec.args:
        if key in ours:
            config[key] = ours[key]
    if getattr(layer, "activation", None) not in (None, *table.ACTIVATIONS) \
            and "activation" in spec.args:
        raise CompilerError(f"{label}: activation {layer.activation!r} is not written to Keras "
                            f"files (Keras' default differs); use a LeakyReLU layer")
    for key in spec.initializers:
        init = _initializer_of(layer, key)
        if init is not None:
            config[key] = table.initializer_to_keras(init, label)
    for key, values in spec.fixed.items():
        config[key] = values[0]
    return {"module": "keras.layers", "class_name": keras_name, "config": config,
            "registered_name": None}


def _initializer_of(layer: Layer, key: str) -> Any:
    """The initializer a Keras config key names (``gamma_initializer`` -> param ``gamma``)."""
    if hasattr(layer, key):
        return getattr(layer, key)
    try:
        return layer.initializer(key.removesuffix("_initializer"))
    except (CompilerError, KeyError):
        return None


def _weights(layer: Layer, keras_name: str) -> list[np.ndarray]:
    if not layer.built:
        return []
    return [layer.variable(pname).value for _, pname in table.TABLE[keras_name].variables(layer)]


def model_to_keras(model: Model, where: str, group: str = "",
                   groups: list[Group] | None = None, seen: set | None = None,
                   ) -> tuple[dict, list[Group]]:
    """``(config entry, HDF5 groups)`` for ``model`` and everything in it."""
    groups = [] if groups is None else groups
    seen = set() if seen is None else seen
    if model.__dict__.get("_subclassed"):
        raise CompilerError(f"{where}: model '{model.name}' is a subclassed Model; its call is "
                            f"Python code, which .keras files do not hold. Write it as a "
                            f"Sequential or functional Model")
    groups.append((group, model.name, []))
    if isinstance(model, Sequential):
        return _sequential(model, where, group, groups, seen), groups
    return _functional(model, where, group, groups, seen), groups


def _member(layer: Layer, dtype: Any, where: str, group: str, groups: list[Group],
            seen: set) -> dict:
    if layer.is_model:
        entry, _ = model_to_keras(layer, where, group, groups, seen)
        return entry
    entry = layer_entry(layer, dtype, where)
    arrays = [] if id(layer) in seen else _weights(layer, entry["class_name"])
    seen.add(id(layer))
    groups.append((group, layer.name, arrays))
    return entry


def _sequential(model: Sequential, where: str, group: str, groups: list[Group],
                seen: set) -> dict:
    if len(model._stack) != len(model.layers):
        raise CompilerError(f"{where}: Sequential '{model.name}' calls a layer twice (tied "
                            f"weights); Keras' Sequential cannot say that. Use a functional "
                            f"Model")
    specs = model._input_specs or model._built_specs
    entries = []
    if specs is not None:
        entry = _input_entry(specs[0].name or f"{model.name}_input", specs[0].shape,
                             model.dtype)
        entries.append({k: v for k, v in entry.items() if k not in ("name", "inbound_nodes")})
    used: dict = {}
    for layer in model._stack:
        sub = f"{group}/layers/{unique_name(snake_case(_class(layer)), used)}".lstrip("/")
        entries.append(_member(layer, model.dtype, where, sub, groups, seen))
    config: dict[str, Any] = {"name": model.name, "trainable": True,
                              "dtype": _policy(model.dtype), "layers": entries}
    entry = {"module": "keras", "class_name": "Sequential", "config": config,
             "registered_name": None}
    if specs is not None:
        config["build_input_shape"] = _dims(specs[0].shape)
        entry["build_config"] = {"input_shape": _dims(specs[0].shape)}
    return entry


def _class(layer: Layer) -> str:
    if layer.is_model:
        return "Sequential" if isinstance(layer, Sequential) else "Functional"
    return table.KERAS_NAME.get(type(layer), type(layer).__name__)


def keras_order(model: Model) -> list[Any]:
    """The model's operations (input indices as ``("input", i)``, then layers) in the order
    Keras' ``map_graph`` gives them: by depth from the outputs, deepest first, ties broken by
    the first visit of a depth-first walk from the outputs."""
    input_of = {id(t): ("input", i) for i, t in enumerate(model._inputs)}
    call_of = {id(out): j for j, (_, _, out) in enumerate(model._calls)}

    def node_of(t: Any) -> Any:
        return input_of[id(t)] if id(t) in input_of else ("call", call_of[id(t)])

    def operation(node: Any) -> Any:
        return node if node[0] == "input" else id(model._calls[node[1]][0])

    def parents(node: Any) -> list:
        return [] if node[0] == "input" else [node_of(a) for a in model._calls[node[1]][1]]

    finished: set = set()
    post_order: list = []
    index: dict = {}
    for out in model._outputs:
        stack = [(node_of(out), False)]
        while stack:
            node, expanded = stack.pop()
            if node in finished:
                continue
            if expanded:
                finished.add(node)
                post_order.append(node)
                continue
            index.setdefault(operation(node), len(index))
            stack.append((node, True))
            stack.extend((p, False) for p in reversed(parents(node)))
    node_depth: dict = {}
    op_depth: dict = {}
    for node in reversed(post_order):
        depth = max(node_depth.setdefault(node, 0), op_depth.get(operation(node), 0))
        op_depth[operation(node)] = node_depth[node] = depth
        for p in parents(node):
            node_depth[p] = max(depth + 1, node_depth.get(p, 0))
    for i in range(len(model._inputs)):
        if ("input", i) not in op_depth:
            op_depth[("input", i)], index[("input", i)] = 0, -1
    ops = sorted(op_depth, key=lambda op: (-op_depth[op], index[op]))
    layers = {id(layer): layer for layer, _, _ in model._calls}
    return [op if isinstance(op, tuple) else layers[op] for op in ops]


def _functional(model: Model, where: str, group: str, groups: list[Group], seen: set) -> dict:
    dtype = model.dtype
    taken = {layer.name for layer in model.layers}
    input_names = []
    for i, spec in enumerate(model._input_specs):
        name = spec.name or ("input_layer" if i == 0 else f"input_layer_{i}")
        while name in taken:
            name += "_"
        taken.add(name)
        input_names.append(name)
    refs: dict[int, list] = {id(t): [input_names[i], 0, 0] for i, t in enumerate(model._inputs)}
    nodes: dict[int, list] = {}
    functional_outputs: set = set()  # in output_layers, a functional model's calls count from 1
    for layer, args, out in model._calls:
        calls = nodes.setdefault(id(layer), [])
        tensors = [_tensor(a, refs) for a in args]
        calls.append({"args": tensors if len(args) == 1 else [tensors], "kwargs": {}})
        refs[id(out)] = [layer.name, len(calls) - 1, 0]
        if layer.is_model and not isinstance(layer, Sequential):
            functional_outputs.add(id(out))
    entries = []
    used: dict = {}
    for op in keras_order(model):
        if isinstance(op, tuple):
            i = op[1]
            sub = f"{group}/layers/{unique_name('input_layer', used)}".lstrip("/")
            groups.append((sub, input_names[i], []))
            entries.append(_input_entry(input_names[i], model._input_specs[i].shape,
                                        model._inputs[i].dtype or dtype))
            continue
        sub = f"{group}/layers/{unique_name(snake_case(_class(op)), used)}".lstrip("/")
        entry = _member(op, dtype, where, sub, groups, seen)
        entry.update(name=op.name, inbound_nodes=nodes[id(op)])
        entries.append(entry)
    ins = [refs[id(t)] for t in model._inputs]
    outs = [[r[0], r[1] + (id(t) in functional_outputs), r[2]]
            for t, r in ((t, refs[id(t)]) for t in model._outputs)]
    config = {"name": model.name, "trainable": True, "dtype": _policy(dtype), "layers": entries,
              "input_layers": ins[0] if len(ins) == 1 else ins,
              "output_layers": outs[0] if model._single_output else outs}
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": config, "registered_name": "Functional"}


def _tensor(t: Any, refs: dict) -> dict:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": _dims(t.shape), "dtype": str(np.dtype(t.dtype)),
                       "keras_history": refs[id(t)]}}
