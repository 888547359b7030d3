"""Keras 3 ``config.json`` -> a deferc model, and ``model.weights.h5`` -> its weights.

Every layer is checked against the table (``table.py``) before anything is built: classes that
hold Python code (``Lambda``), custom objects and unknown classes are refused by name, and no
serialized code is ever deserialized. Weights are found where Keras puts them: in each model's
``layers`` list, a layer's group is its class name in snake case, made unique per container in
list order (``dense``, ``dense_1``; ``InputLayer`` counts in functional models), whatever the
layer's own name is; nested models add ``layers/<group>/layers/...``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import CompilerError, DTypeError
from ..frontend.functional import Input
from ..frontend.layers import Layer
from ..frontend.models import Model, Sequential
from ..types import as_model_dtype
from . import table

MODEL_CLASSES = ("Functional", "Model", "Sequential")


def snake_case(name: str) -> str:
    """Keras' ``naming.to_snake_case`` (``BatchNormalization`` -> ``batch_normalization``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str, used: dict) -> str:
    """Keras' ``_get_unique_name``: ``dense``, then ``dense_1``, ``dense_2``..."""
    if base in used:
        used[base] += 1
        return f"{base}_{used[base]}"
    used[base] = 0
    return base


# -- refusals ---------------------------------------------------------------------------------

def check_entry(entry: Any, where: str) -> str:
    """The entry's class name once it is one we can build; otherwise a ``CompilerError``."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("class_name"), str):
        raise CompilerError(f"{where}: a layer entry is an object with 'class_name', received "
                            f"{_short(entry)}")
    cls = entry["class_name"]
    name = (entry.get("config") or {}).get("name", "?") if isinstance(entry.get("config"),
                                                                    Mapping) else "?"
    label = f"{where}: layer '{name}' ({cls})"
    if cls in table.CODE_LAYERS or cls == "__lambda__":
        raise CompilerError(f"{label} holds serialized Python code; deferc never deserializes "
                            f"or runs code from a file (Keras' safe mode). Rebuild that part "
                            f"with built-in layers or compiler.ops")
    module = entry.get("module")
    registered = entry.get("registered_name")
    spec = table.TABLE.get(cls)
    if spec is not None and spec.registered_name is not None:  # a keras-hub layer we know
        if registered != spec.registered_name:
            raise CompilerError(f"{label} is registered as {registered!r}; deferc knows "
                                f"{cls} only as {spec.registered_name!r}")
    elif (registered is not None and registered != cls) or \
            (module is not None and not str(module).startswith("keras")):
        raise CompilerError(f"{label} is a custom object (module {module!r}, registered as "
                            f"{registered!r}); deferc loads built-in Keras layers only: "
                            f"{table.supported()}")
    if cls in table.PENDING:
        raise CompilerError(f"{label} is not supported yet (sequence layers are being added); "
                            f"supported: {table.supported()}")
    if cls not in table.TABLE and cls not in MODEL_CLASSES and cls != "InputLayer":
        raise CompilerError(f"{label}: unknown layer class; supported: {table.supported()}")
    return cls


def check_no_code(value: Any, where: str) -> None:
    """Refuse a config that carries a serialized function or lambda anywhere inside (naming
    the layer that holds it)."""
    stack = [(value, "the config")]
    while stack:
        item, holder = stack.pop()
        if isinstance(item, Mapping):
            cls, config = item.get("class_name"), item.get("config")
            if cls in ("__lambda__", "function") or item.get("module") in ("builtins",
                                                                          "__main__"):
                raise CompilerError(f"{where}: {holder} holds serialized Python code "
                                    f"({_short(item)}); deferc never deserializes or runs "
                                    f"code from a file (Keras' safe mode)")
            if isinstance(config, Mapping) and isinstance(config.get("name"), str) and \
                    isinstance(cls, str):
                holder = f"layer '{config['name']}' ({cls})"
            stack.extend((v, holder) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, holder) for v in item)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 100 else text[:97] + "..."


# -- dtypes -----------------------------------------------------------------------------------

def policy_dtype(policy: Any, where: str) -> np.dtype | None:
    """A Keras dtype policy (``"float64"`` or ``{"class_name": "DTypePolicy", ...}``) as a
    compute dtype; mixed precision is refused."""
    if policy is None:
        return None
    name = policy.get("config", {}).get("name") if isinstance(policy, Mapping) else policy
    if not isinstance(name, str):
        raise CompilerError(f"{where}: unreadable dtype policy {_short(policy)}")
    if name.startswith("mixed_"):
        raise CompilerError(f"{where}: dtype policy {name!r} (mixed precision) is not supported;"
                            f" deferc computes in float32 or float64")
    try:
        return as_model_dtype(name)
    except DTypeError as e:
        raise DTypeError(f"{where}: {e}") from None


# -- layers -----------------------------------------------------------------------------------

def layer_from_entry(entry: Mapping, where: str) -> Layer:
    """One table layer from its Keras entry (class already checked)."""
    cls_name = entry["class_name"]
    spec = table.TABLE[cls_name]
    config = entry.get("config")
    if not isinstance(config, Mapping):
        raise CompilerError(f"{where}: layer {cls_name} has no config object")
    name = config.get("name")
    label = f"{where}: layer '{name}' ({cls_name})"
    kwargs: dict[str, Any] = {}
    for key, value in config.items():
        if key in spec.nested:  # a wrapper's layer: a whole entry, checked like any other
            if check_entry(value, label) not in table.TABLE:
                raise CompilerError(f"{label}: wraps a {value['class_name']}; only layers "
                                    f"can be wrapped, not models")
            kwargs[key] = layer_from_entry(value, label)
        elif key in spec.args:
            kwargs[key] = value
        elif key in spec.initializers:
            kwargs[key] = table.initializer_from_keras(value, label)
        elif key in spec.fixed:
            if value not in spec.fixed[key]:
                raise CompilerError(f"{label}: {key}={value!r} is not supported; only "
                                    f"{spec.fixed[key][0]!r}")
        elif key not in table.TRAINING_ONLY and value not in (None, False):
            raise CompilerError(f"{label}: option {key}={_short(value)} is not supported")
    for key in spec.activations:
        activation = kwargs.get(key)
        if activation is not None and activation not in table.ACTIVATIONS:
            raise CompilerError(f"{label}: {key} {_short(activation)} is not supported; "
                                f"supported: {list(table.ACTIVATIONS)}")
    cls = spec.cls
    if spec.from_keras is not None:
        cls, kwargs = spec.from_keras({**kwargs, "name": name})
    else:
        kwargs["name"] = name
    try:
        return cls(**kwargs)
    except CompilerError as e:
        raise type(e)(f"{label}: {e}") from None
    except (TypeError, ValueError) as e:
        raise CompilerError(f"{label}: bad configuration ({e})") from None


class Placement:
    """Where one of our layers' weights are in ``model.weights.h5`` (``group``) and which
    top-level layer holds it (``top``: legacy ``.h5`` files store weights by that name)."""

    def __init__(self, group: str, layer: Layer, keras_class: str, top: str):
        self.group, self.layer, self.keras_class, self.top = group, layer, keras_class, top


def model_from_entry(entry: Mapping, where: str, group: str = "",
                     placements: list[Placement] | None = None, top: str | None = None,
                     ) -> tuple[Model, list[Placement]]:
    """A Sequential/functional model from its entry; placements of every weight-bearing layer."""
    placements = [] if placements is None else placements
    if not group:  # once, for the whole file
        check_no_code(entry, where)
    cls = check_entry(entry, where)
    if cls not in MODEL_CLASSES:
        raise CompilerError(f"{where}: the top-level object is a {cls}, not a model; wrap it in "
                            f"a Sequential")
    config = entry.get("config")
    if not isinstance(config, Mapping) or not isinstance(config.get("layers"), list):
        raise CompilerError(f"{where}: model {cls} has no 'layers' list in its config")
    try:
        if cls == "Sequential":
            return _sequential(entry, config, where, group, placements, top), placements
        return _functional(config, where, group, placements, top), placements
    except (KeyError, IndexError, TypeError, AttributeError, RecursionError) as e:
        raise CompilerError(f"{where}: malformed {cls} config ({type(e).__name__}: {e})") \
            from None


def _member(entry: Mapping, where: str, group: str, placements: list[Placement],
            top: str | None) -> Layer:
    cls = check_entry(entry, where)
    top = top or (entry.get("config") or {}).get("name")
    if cls in MODEL_CLASSES:
        model, _ = model_from_entry(entry, where, group + "/", placements, top)
        return model
    layer = layer_from_entry(entry, where)
    placements.append(Placement(group, layer, cls, top))
    return layer


def _input(config: Mapping, where: str, fallback_dtype: Any) -> Any:
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if shape is None and config.get("shape") is not None:
        shape = [None, *config["shape"]]
    if not isinstance(shape, list) or not shape:
        raise CompilerError(f"{where}: InputLayer '{config.get('name')}' has no batch_shape")
    dtype = config.get("dtype")
    try:  # float and integer (token ids) inputs keep their dtype; others are the model's
        dtype = dtype if isinstance(dtype, str) and np.dtype(dtype).kind in "fi" else None
    except TypeError:
        raise CompilerError(f"{where}: InputLayer '{config.get('name')}' has unknown dtype "
                            f"{dtype!r}") from None
    dtype = dtype or fallback_dtype
    return Input(tuple(shape[1:]), dtype=dtype, name=config.get("name"), batch_size=shape[0])


def _model_dtype(entries: list, config: Mapping, where: str) -> np.dtype:
    """The compute dtype: the layers' policy (they compute; a model's own policy stays at
    the float32 default even when every layer is float64), else the model's, else float32."""
    found = None
    for entry in entries:
        cfg = entry.get("config") if isinstance(entry, Mapping) else None
        if isinstance(cfg, Mapping) and entry.get("class_name") not in ("InputLayer",
                                                                         *MODEL_CLASSES):
            found = policy_dtype(cfg.get("dtype"), where)
            if found is not None:
                return found
    found = policy_dtype(config.get("dtype"), where)
    return found if found is not None else np.dtype(np.float32)


def _sequential(entry: Mapping, config: Mapping, where: str, group: str,
                placements: list[Placement], top: str | None) -> Sequential:
    entries = list(config["layers"])
    dtype = _model_dtype(entries, config, where)
    items: list[Any] = []
    used: dict = {}
    for i, member in enumerate(entries):
        if i == 0 and check_entry(member, where) == "InputLayer":
            items.append(_input(member["config"], where, dtype))
            continue
        if i == 0 and isinstance(member.get("config"), Mapping) and \
                member["config"].get("batch_input_shape") is not None:
            # Keras 2 let the first layer declare the input: ``Dense(4, input_shape=(8,))``
            config_ = dict(member["config"])
            declared = {"name": None, "batch_shape": config_.pop("batch_input_shape")}
            items.append(_input(declared, where, dtype))
            member = {**member, "config": config_}
        sub = f"{group}layers/{unique_name(snake_case(member['class_name']), used)}"
        items.append(_member(member, where, sub, placements, top))
    built = config.get("build_input_shape") or (entry.get("build_config") or {}).get(
        "input_shape")
    if (not items or isinstance(items[0], Layer)) and isinstance(built, list) and built:
        items.insert(0, Input(tuple(built[1:]), dtype=dtype))
    return Sequential(items, name=config.get("name"), dtype=dtype)


def _refs(value: Any, where: str) -> list[tuple]:
    """The ``keras_history`` of every tensor in a node's args, in order; other values refused."""
    if isinstance(value, list):
        return [ref for item in value for ref in _refs(item, where)]
    if isinstance(value, Mapping) and value.get("class_name") == "__keras_tensor__":
        name, node, index = value["config"]["keras_history"]
        return [(name, int(node), int(index))]
    raise CompilerError(f"{where}: a layer call has a non-tensor argument {_short(value)}; "
                        f"only tensors are supported")


def _io_refs(value: Any) -> tuple[list[tuple], bool]:
    """``input_layers``/``output_layers``: one ``[name, node, index]`` or a list of them."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [tuple(value)], True
    return [tuple(v) for v in value], False


def _functional(config: Mapping, where: str, group: str, placements: list[Placement],
                top: str | None) -> Model:
    entries = list(config["layers"])
    dtype = _model_dtype(entries, config, where)
    layers: dict[str, Any] = {}
    pending: list[tuple[str, int, Mapping]] = []
    tensors: dict[tuple, Any] = {}
    used: dict = {}
    io_offset: dict[str, int] = {}
    arg_offset: dict[str, int] = {}
    masks = _Masks(where)
    for member in entries:
        if masks.is_mask_op(member):
            layers[member["name"]] = masks
            pending.extend((member["name"], i, node)
                           for i, node in enumerate(member.get("inbound_nodes") or []))
            continue
        cls = check_entry(member, where)
        sub = f"{group}layers/{unique_name(snake_case(cls), used)}"
        name = member.get("name") or member["config"]["name"]
        if name in layers:
            raise CompilerError(f"{where}: two layers are named {name!r}")
        if cls == "InputLayer":
            tensors[(name, 0, 0)] = _input(member["config"], where, dtype)
            layers[name] = None
            continue
        layers[name] = _member(member, where, sub, placements, top)
        nodes = member.get("inbound_nodes") or []
        # A nested functional model counts its own graph as node 0 in ``output_layers`` (and,
        # in Keras 2, whose nodes are plain lists and whose Sequential was functional, in
        # call arguments too): tensors are keyed by call number, references shifted.
        legacy = bool(nodes) and isinstance(nodes[0], list)
        functional = cls in ("Functional", "Model") or (cls == "Sequential" and legacy)
        io_offset[name] = int(functional)
        arg_offset[name] = int(functional and legacy)
        for node_index, node in enumerate(nodes):
            pending.append((name, node_index, node))
    while pending:  # call each node once all its inputs exist (any order in the file)
        waiting = []
        for name, node_index, node in pending:
            label = f"{where}: layer '{name}'"
            if isinstance(node, Mapping):  # Keras 3: {"args": [...], "kwargs": {...}}
                args, kwargs = node.get("args"), dict(node.get("kwargs") or {})
            else:  # Keras 2: [[name, node, tensor, kwargs], ...]
                args = [{"class_name": "__keras_tensor__", "config": {"keras_history": e[:3]}}
                        for e in node]
                kwargs = {k: _keras2_tensor(v) for e in node if len(e) > 3
                          for k, v in (e[3] or {}).items()}
            if layers[name] is masks:
                args, constants = _split_constants(args)
                kwargs = {**kwargs, "constants": constants}
            tensor_kwargs = {k: kwargs.pop(k) for k in (*TENSOR_KWARGS, "mask")
                             if kwargs.get(k) is not None}
            flags = {k: kwargs.pop(k) for k in FLAG_KWARGS if k in kwargs}
            for key, value in kwargs.items():
                if value not in (None, False) and key not in ("training", "constants"):
                    raise CompilerError(f"{label}: call argument {key}={_short(value)} is not "
                                        f"supported")

            def shift(refs: list[tuple]) -> list[tuple]:
                return [(r[0], r[1] - arg_offset.get(r[0], 0), r[2]) for r in refs]
            refs = shift(_refs(args, label))
            kw_refs = {k: shift(_refs(v, label)) for k, v in tensor_kwargs.items()}
            needed = refs + [r for rs in kw_refs.values() for r in rs]
            if not all(ref in tensors for ref in needed):
                unknown = [r for r in needed if r[0] not in layers]
                if unknown:
                    raise CompilerError(f"{label} is called on the output of unknown layer "
                                        f"{unknown[0][0]!r}")
                waiting.append((name, node_index, node))
                continue
            values = [tensors[r] for r in refs]
            mask = [tensors[r] for r in kw_refs.pop("mask", [])]
            if layers[name] is masks:
                out = masks.apply(name, values, kwargs["constants"], label)
            else:
                masks.check_data(values + [tensors[r] for rs in kw_refs.values() for r in rs],
                                 label)
                call_kwargs = {k: [tensors[r] for r in rs] if k == "initial_state"
                               else tensors[rs[0]] for k, rs in kw_refs.items()}
                out = layers[name](*values, **call_kwargs, **flags)
                masks.called(layers[name], values, mask, label)
            for k, t in enumerate(out if isinstance(out, list) else [out]):
                tensors[(name, node_index, k)] = t
        if len(waiting) == len(pending):
            raise CompilerError(f"{where}: the layer graph has a cycle or a missing node at "
                                f"{[w[0] for w in waiting][:5]}")
        pending = waiting
    masks.check_consumers()
    inputs, _ = _io_refs(config["input_layers"])
    outputs, single = _io_refs(config["output_layers"])
    outputs = [(r[0], r[1] - io_offset.get(r[0], 0), r[2]) for r in outputs]
    for ref in inputs + outputs:
        if ref not in tensors:
            raise CompilerError(f"{where}: model input/output {list(ref)} names no tensor")
    return Model([tensors[r] for r in inputs],
                 tensors[outputs[0]] if single else [tensors[r] for r in outputs],
                 name=config.get("name"), dtype=dtype)


#: call keyword arguments holding tensors (RNN states; attention's value (Keras 2), key, mask)
TENSOR_KWARGS = ("initial_state", "value", "key", "attention_mask")


def _keras2_tensor(value: Any) -> Any:
    """Keras 2 wrote a tensor keyword argument as ``[layer, node, index]``."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str) and \
            all(isinstance(v, int) for v in value[1:]):
        return {"class_name": "__keras_tensor__", "config": {"keras_history": value}}
    return value
#: call keyword arguments holding a flag we pass on
FLAG_KWARGS = ("use_causal_mask",)


def _split_constants(args: Any) -> tuple[list, list]:
    """A mask op's tensor arguments and its constants (``not_equal(x, 0)``)."""
    args = args if isinstance(args, list) else [args]
    tensors = [a for a in args if isinstance(a, (Mapping, list))]
    return tensors, [a for a in args if not isinstance(a, (Mapping, list))]


class _MaskOf:
    """What a Keras mask op computed: ``not_equal(source, value)``, reduced over the last
    axis by ``any`` for ``Masking``. Only ever accepted as a layer's ``mask=``."""

    def __init__(self, source: Any, value: float, reduced: bool):
        self.source, self.value, self.reduced = source, value, reduced

    def key(self) -> tuple:
        return id(self.source), self.value, self.reduced


class _Masks:
    """Keras 3 writes the masks of a functional model as graph nodes (``NotEqual``, ``Any``
    from ``keras.src.ops``) passed to each consumer as ``mask=``. deferc propagates masks
    itself (``frontend/masking.py``), so these nodes are only checked: each ``mask=`` must be
    the one an ``Embedding(mask_zero=True)`` or ``Masking`` layer of this model produces;
    any other mask, or a mask used as data, is refused."""

    OPS = ("NotEqual", "Any")

    def __init__(self, where: str):
        self.where = where
        self.sources: set = set()
        self.configs: dict[str, tuple[str, Mapping]] = {}
        self.consumers: list[tuple[str, _MaskOf]] = []

    def is_mask_op(self, entry: Any) -> bool:
        found = isinstance(entry, Mapping) and entry.get("class_name") in self.OPS and \
            str(entry.get("module", "")).startswith("keras.src.ops") and \
            isinstance(entry.get("name"), str)
        if found:
            self.configs[entry["name"]] = (entry["class_name"], entry.get("config") or {})
        return found

    def apply(self, name: str, values: list, constants: list, label: str) -> _MaskOf:
        op, config = self.configs[name]
        if op == "Any" and config.get("axis") == -1 and not config.get("keepdims") and \
                len(values) == 1 and isinstance(values[0], _MaskOf) and not constants \
                and not values[0].reduced:
            return _MaskOf(values[0].source, values[0].value, True)     # any(..., axis=-1)
        if op == "NotEqual" and len(values) == 1 and not isinstance(values[0], _MaskOf) \
                and len(constants) == 1 \
                and isinstance(constants[0], (int, float)):
            return _MaskOf(values[0], float(constants[0]), False)      # not_equal(x, value)
        raise CompilerError(f"{label}: op {name!r} is not a mask computation deferc knows; "
                            f"graph ops other than Embedding/Masking masks are not supported")

    def check_data(self, values: list, label: str) -> None:
        if any(isinstance(v, _MaskOf) for v in values):
            raise CompilerError(f"{label} takes a mask op's output as data; only mask= is "
                                f"supported")

    def called(self, layer: Any, values: list, mask: list, label: str) -> None:
        from ..frontend.sequence import Embedding, Masking

        if isinstance(layer, Embedding) and layer.mask_zero:
            self.sources.add((id(values[0]), 0.0, False))
        elif isinstance(layer, Masking):
            self.sources.add((id(values[0]), layer.mask_value, True))
        for m in mask:
            if not isinstance(m, _MaskOf):
                raise CompilerError(f"{label}: mask= is a tensor computed by layers; deferc "
                                    f"takes masks from Embedding(mask_zero=True) or Masking "
                                    f"only")
            self.consumers.append((label, m))

    def check_consumers(self) -> None:
        for label, m in self.consumers:
            if m.key() not in self.sources:
                raise CompilerError(f"{label}: its mask= is not the mask of an Embedding("
                                    f"mask_zero=True) or Masking layer of this model; other "
                                    f"masks are not supported")


# -- weights ----------------------------------------------------------------------------------

def assign_weights(model: Model, placements: list[Placement], arrays: dict[str, np.ndarray],
                   where: str) -> None:
    """Set every placed layer's weights from the HDF5 arrays, after checking all of them.

    No weights at all leaves an unbuilt model deferred; a missing, extra or mis-shaped
    variable is a ``CompilerError`` naming the layer and the variable.
    """
    staged: list[tuple[Layer, list[np.ndarray]]] = []
    claimed: set = set()
    missing: list[str] = []
    seen: set = set()
    for place in placements:
        layer = place.layer
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        variables = table.TABLE[place.keras_class].variables(layer)
        paths = [(f"{place.group}/{sub}", pname) for sub, pname in variables]
        present = [p for p, _ in paths if p in arrays]
        claimed.update(present)
        if not present:
            missing.extend(f"'{layer.name}' ({p})" for p, _ in paths)
            continue
        shapes = layer.param_shapes
        values = []
        for path, pname in paths:
            if path not in arrays:
                raise CompilerError(f"{where}: layer '{layer.name}' ({place.keras_class}) has "
                                    f"no variable {pname} ('{path}') in the weights file")
            arr = arrays[path]
            expected = shapes.get(pname)
            if expected is not None and not (len(expected) == arr.ndim and all(
                    e is None or not isinstance(e, int) or e == r
                    for e, r in zip(expected, arr.shape))):
                shown = tuple(e if isinstance(e, int) else None for e in expected)
                raise CompilerError(f"{where}: layer '{layer.name}' ({place.keras_class}): "
                                    f"variable {pname} ('{path}') has shape {arr.shape} in the "
                                    f"weights file, the config implies {shown}")
            values.append(arr)
        staged.append((layer, values))
    extra = sorted(p for p in arrays if p.startswith("layers/") and p not in claimed
                   and "seed_generator" not in p)
    if extra:
        raise CompilerError(f"{where}: the weights file has variables no layer of the config "
                            f"owns: {extra[:8]}")
    if staged and missing:
        raise CompilerError(f"{where}: the weights file lacks the variables of layers "
                            f"{missing[:8]}")
    if not staged and model.built and missing:
        raise CompilerError(f"{where}: the model is built but the weights file holds no "
                            f"weights for {missing[:8]}")
    built = {id(layer) for layer, _ in staged}
    for place in placements:
        _check_initializers(place.layer, f"{where}: layer '{place.layer.name}' "
                                         f"({place.keras_class})", id(place.layer) in built)
    for layer, values in staged:
        layer.set_weights(values)


def _check_initializers(layer: Layer, label: str, has_weights: bool) -> None:
    """A layer whose weights the file lacks will draw them: from initializers we can run.
    Those we cannot run stop answering with placeholders once the file is loaded."""
    for pname in layer.param_names:
        init = layer.initializer(pname)
        init = getattr(init, "inner", init)  # LSTM's unit_forget_bias wraps the bias one
        if not isinstance(init, table.KerasOnlyInitializer):
            continue
        init.loading = False
        if not has_weights:
            raise CompilerError(f"{label}: weight {pname} has no value in the file and its "
                                f"initializer {table._describe(init.entry)} is not supported; "
                                f"supported: {sorted(table._INIT_KEYS)}")
