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
from ..frontend import initializers
from ..frontend.attention import MultiHeadAttention
from ..frontend.layers import Layer
from ..frontend.models import Model, Sequential
from ..frontend.recurrent import _MultiOutput
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
    for key in spec.activations:
        if getattr(layer, key, None) not in (None, *table.ACTIVATIONS) and key in spec.args:
            raise CompilerError(f"{label}: {key} {getattr(layer, key)!r} is not written to "
                                f"Keras files (Keras' default differs or Keras lacks it)")
    for key, attr in spec.nested.items():
        config[key] = layer_entry(getattr(layer, attr), dtype, where)
    for key in spec.initializers:
        init = _initializer_of(layer, key)
        if init is not None:
            config[key] = table.initializer_to_keras(init, label)
    for key, values in spec.fixed.items():
        config[key] = values[0]
    return {"module": spec.module, "class_name": keras_name, "config": config,
            "registered_name": spec.registered_name}


def _initializer_of(layer: Layer, key: str) -> Any:
    """The initializer a Keras config key names (``gamma_initializer`` -> param ``gamma``)."""
    if isinstance(getattr(layer, key, None), initializers.Initializer):
        return getattr(layer, key)
    try:
        return layer.initializer(key.removesuffix("_initializer"))
    except (CompilerError, KeyError):
        return None


def _groups(layer: Layer, keras_name: str, group: str, written: bool) -> list[Group]:
    """The layer's HDF5 groups as Keras writes them: its own (``vars`` holds the variables of
    plain layers), then sub-layers' (``cell``, ``forward_layer/cell``, ``query_dense``...)
    with their variables in order (none when unbuilt, or already written for a shared layer)."""
    spec = table.TABLE[keras_name]
    arrays: dict[str, list[np.ndarray]] = {"": []}
    arrays.update((sub, []) for sub in spec.empty_groups)
    for path, pname in spec.variables(layer):
        sub, _, index = path.rpartition("vars/")
        values = arrays.setdefault(sub.rstrip("/"), [])
        if layer.built and not written:
            assert int(index) == len(values), f"{keras_name} variables out of order"
            values.append(layer.variable(pname).value)
    return [(f"{group}/{sub}" if sub else group, layer.name if not sub else sub, values)
            for sub, values in arrays.items()]


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
    groups.extend(_groups(layer, entry["class_name"], group, id(layer) in seen))
    seen.add(id(layer))
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
        return node if node[0] == "input" else id(_owner(model._calls[node[1]][0]))

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
    layers = {id(_owner(layer)): _owner(layer) for layer, _, _ in model._calls}
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
    call_index: dict[tuple, int] = {}  # one Keras node per call, whichever outputs are used
    for layer, args, out in model._calls:
        owner = _owner(layer)
        key = (id(owner), tuple(id(a) for a in args))
        calls = nodes.setdefault(id(owner), [])
        if key not in call_index:
            call_index[key] = len(calls)
            calls.append(_node(owner, [_tensor(a, refs) for a in args]))
        refs[id(out)] = [owner.name, call_index[key], getattr(layer, "index", 0)]
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


def _owner(layer: Any) -> Any:
    """The layer a call belongs to (a ``return_state`` output's stand-in -> its RNN)."""
    return getattr(layer, "owner_layer", layer)


def _node(layer: Any, tensors: list[dict]) -> dict:
    """One call as Keras writes it: RNN states and attention's key and mask as keywords."""
    if isinstance(layer, MultiHeadAttention):
        has_key, has_mask, causal = layer._call_form
        kwargs: dict[str, Any] = {}
        rest = tensors[2:]
        if has_key:
            kwargs["key"] = rest.pop(0)
        if has_mask:
            kwargs["attention_mask"] = rest.pop(0)
        if causal:
            kwargs["use_causal_mask"] = True
        return {"args": tensors[:2], "kwargs": kwargs}
    if isinstance(layer, _MultiOutput):
        kwargs = {"initial_state": tensors[1:]} if len(tensors) > 1 else {}
        return {"args": tensors[:1], "kwargs": kwargs}
    return {"args": tensors if len(tensors) == 1 else [tensors], "kwargs": {}}


def _tensor(t: Any, refs: dict) -> dict:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": _dims(t.shape), "dtype": str(np.dtype(t.dtype)),
                       "keras_history": refs[id(t)]}}
