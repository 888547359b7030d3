"""Saving and loading: weights as ``.npz`` files, architectures as JSON-ready configs.

Weights are keyed ``"<layer name>/<parameter>"`` (``"dense_1/kernel"``; in a nested model
``"block/dense/kernel"``), the same keys as the model's ``WeightStore`` and the IR's param nodes.
A nested model's config holds the inner model's whole config; a layer tied at several places of a
``Sequential`` is listed once, with the calling order in ``"stack"``. Loading into a model
whose weights do not exist yet infers their shapes from the file, like PyTorch's lazy modules:
the file's shapes are pinned on the IR's parameter nodes and shape propagation checks that they
fit the model and each other before any layer is touched. Every load is all-or-nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..atomic_file import write_atomically
from ..errors import CompilerError, DTypeError, ShapeError
from ..ops import Unifier
from ..symbolic import format_shape
from ..types import TensorSpec
from .layers import Layer

# -- layer classes by name --------------------------------------------------------------------

_REGISTERED: dict[str, type] = {}


def register_layer(cls: type) -> type:
    """Make a custom ``Layer`` subclass loadable by ``from_config`` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise CompilerError(f"register_layer expects a Layer subclass, received {cls!r}")
    _REGISTERED[cls.__name__] = cls
    return cls


def layer_class(name: str) -> type:
    """The ``Layer`` subclass called ``name``: registered ones first, then every imported one.

    Walking ``Layer``'s subclasses means new layer types need no list to be kept up to date.
    """
    if name in _REGISTERED:
        return _REGISTERED[name]
    found: dict[str, set] = {}
    stack = [Layer]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.__name__, set()).add(cls)
        stack.extend(cls.__subclasses__())
    matches = found.get(name, set())
    if len(matches) == 1:
        return next(iter(matches))
    if matches:
        raise CompilerError(f"layer class name {name!r} is ambiguous ({sorted(map(str, matches))});"
                            f" pick one with compiler.frontend.saving.register_layer")
    raise CompilerError(f"unknown layer class {name!r}; known: {sorted(found)}")


# -- architecture -----------------------------------------------------------------------------

def _spec_config(spec: TensorSpec) -> dict:
    return {"shape": list(spec.shape[1:]), "batch_size": spec.shape[0],
            "dtype": None if spec.dtype is None else str(np.dtype(spec.dtype)), "name": spec.name}


def _input_from_config(cfg: Mapping) -> Any:
    from .functional import Input

    return Input(tuple(cfg["shape"]), dtype=cfg.get("dtype"), name=cfg.get("name"),
                 batch_size=cfg.get("batch_size"))


def _layer_config(layer: Layer) -> dict:
    if layer.is_model:
        return model_to_config(layer)
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def _layer_from_config(config: Mapping) -> Layer:
    cls = layer_class(config["class_name"])
    if getattr(cls, "is_model", False):
        return model_from_config(config)
    return cls.from_config(dict(config["config"]))


def model_to_config(model: Any) -> dict:
    """A JSON-serializable description of ``model``'s architecture (no weights)."""
    from .models import Sequential

    common = {"name": model.name, "dtype": str(model.dtype),
              "layers": [_layer_config(layer) for layer in model.layers]}
    if isinstance(model, Sequential):
        specs = model._input_specs
        stack = model._stack
        first_declares = bool(stack) and stack[0]._declared_input is not None
        # An input that only repeats the first layer's input_shape is rebuilt from that layer.
        explicit = specs is not None and not (first_declares and specs[0].dtype is None
                                              and specs[0].name is None)
        config = {**common, "input": _spec_config(specs[0]) if explicit else None}
        if len(stack) != len(model.layers):  # a tied layer: its calls by name
            config["stack"] = [layer.name for layer in stack]
        return {"class_name": "Sequential", "config": config}
    refs = {id(t): ["input", i] for i, t in enumerate(model._inputs)}
    calls = []
    for j, (layer, args, out) in enumerate(model._calls):
        call = {"layer": layer.name, "args": [refs[id(a)] for a in args]}
        if hasattr(layer, "owner_layer"):  # a multi-output layer's extra output (return_state)
            call["output"] = layer.index
        calls.append(call)
        refs[id(out)] = ["call", j]
    return {"class_name": "Model", "config": {
        **common, "inputs": [_spec_config(s) for s in model._input_specs], "calls": calls,
        "outputs": [refs[id(t)] for t in model._outputs],
        "single_output": model._single_output}}


def model_from_config(config: Mapping) -> Any:
    """Rebuild a model from ``model_to_config``'s output (weights are created fresh)."""
    from .models import Model, Sequential

    if not isinstance(config, Mapping) or "class_name" not in config or "config" not in config:
        raise CompilerError(f"a model config is a dict with 'class_name' and 'config', "
                            f"received {_short(config)}")
    kind, cfg = config["class_name"], config["config"]
    try:
        layers = [_layer_from_config(c) for c in cfg["layers"]]
        if kind == "Sequential":
            first = [] if cfg.get("input") is None else [_input_from_config(cfg["input"])]
            if cfg.get("stack") is not None:
                by_name = {layer.name: layer for layer in layers}
                layers = [by_name[name] for name in cfg["stack"]]
            return Sequential(first + layers, name=cfg["name"], dtype=cfg["dtype"])
        if kind != "Model":
            raise CompilerError(f"unknown model class {kind!r}; expected 'Sequential' or 'Model'")
        by_name = {layer.name: layer for layer in layers}
        inputs = [_input_from_config(s) for s in cfg["inputs"]]
        produced: list = []

        def resolve(ref: list) -> Any:
            source, index = ref
            return inputs[index] if source == "input" else produced[index]

        for call in cfg["calls"]:
            result = by_name[call["layer"]](*[resolve(r) for r in call["args"]])
            if isinstance(result, list):  # a multi-output layer: the output this call named
                result = result[call.get("output", 0)]
            produced.append(result)
        outputs = [resolve(r) for r in cfg["outputs"]]
        return Model(inputs, outputs[0] if cfg["single_output"] else outputs,
                     name=cfg["name"], dtype=cfg["dtype"])
    except (KeyError, IndexError, TypeError, ValueError) as e:
        if isinstance(e, CompilerError):
            raise
        raise CompilerError(f"malformed {kind} config: {type(e).__name__}: {e}") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


# -- weights: files ---------------------------------------------------------------------------



def save_weights(model: Any, path: str | os.PathLike) -> None:
    """Write all weights to ``path`` (an ``.npz``) atomically.

    The archive is written to a temporary file in the same directory, flushed to disk and then
    renamed over ``path``, so a crash mid-save leaves the previous file intact.
    """
    entries = model._require_built()  # raises, naming the layer, before any I/O
    arrays = {key: layer.variable(p).value.copy() for key, layer, p in entries}
    write_atomically(path, lambda f: np.savez(f, **arrays))


def read_weights_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array in an ``.npz`` (no pickles); ``CompilerError`` for anything unreadable."""
    where = f"weights file '{os.fspath(path)}'"
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CompilerError(f"{where} does not exist") from None
    except Exception as e:  # noqa: BLE001 - any parse failure means a corrupt/foreign file
        raise CompilerError(f"{where} is not a readable .npz archive "
                            f"({type(e).__name__}: {e})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise CompilerError(f"{where} holds a single {type(loaded).__name__}, expected an .npz "
                            f"archive of named weights as written by save_weights")
    arrays = {}
    with loaded:
        for key in loaded.files:
            try:
                value = loaded[key]
            except Exception as e:  # noqa: BLE001 - truncated member, bad CRC, pickles...
                raise CompilerError(f"{where}: entry '{key}' is corrupt or unreadable "
                                    f"({type(e).__name__}: {e})") from None
            if not isinstance(value, np.ndarray):
                raise CompilerError(f"{where}: entry '{key}' is not an array (not written by "
                                    f"save_weights?)")
            arrays[key] = value
    return arrays


# -- weights: loading into a model ------------------------------------------------------------

def load_weights(model: Any, path: str | os.PathLike) -> None:
    """Set every weight of ``model`` from ``path``; shapes missing so far come from the file.

    Raises ``CompilerError`` (missing/extra entries, unreadable file), ``ShapeError`` (a shape
    that contradicts the model, naming the parameter) or ``DTypeError``; the model is then
    exactly as before. Each weight's version is bumped, so compiled plans see the new values.
    """
    from ..driver import BUILD_LOCK

    arrays = read_weights_file(path)
    with model._lock, BUILD_LOCK:
        staged = _match_entries(model, arrays, os.fspath(path))
        fresh = {k for k, (layer, pname, _) in staged.items()
                 if layer.variable(pname).value is None}
        for key, (layer, pname, arr) in staged.items():
            current = layer.variable(pname).value
            if key not in fresh and current.shape != arr.shape:
                raise ShapeError(f"layer '{layer.name}' ({type(layer).__name__}): weight {pname} "
                                 f"has shape {current.shape}, the file has "
                                 f"{arr.shape} ('{key}')")
        specs = _check_fresh_shapes(model, staged) if fresh else None
        _commit(model, staged, fresh)
        if specs is not None and model._built_specs is None:
            model._built_specs = specs


def _match_entries(model: Any, arrays: dict, where: str) -> dict:
    """Key -> (layer, parameter, array); report missing and extra entries by name."""
    wanted = {key: (layer, p) for key, layer, p in model._weight_entries()}
    missing = sorted(wanted.keys() - arrays.keys())
    extra = sorted(arrays.keys() - wanted.keys())
    if missing or extra:
        parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra
                                                               else [])
        raise CompilerError(f"weights file '{where}' does not match model '{model.name}': "
                            f"{'; '.join(parts)}")
    staged = {}
    for key, (layer, pname) in wanted.items():
        arr = arrays[key]
        if arr.dtype.kind not in "fiu":
            raise DTypeError(f"weights file '{where}': entry '{key}' must be numeric, received "
                             f"dtype {arr.dtype}")
        staged[key] = (layer, pname, arr)
    return staged


def _check_fresh_shapes(model: Any, staged: dict) -> list[TensorSpec] | None:
    """Propagate shapes with every parameter pinned to the file's shape; raise on a conflict.

    Returns the input specs thereby inferred when the input rank was known (not guessed).
    """
    from ..ir import layer_kind, layer_name
    from ..lowering import lower
    from ..passes import CompileContext, propagate_shapes, run_pipeline, validate

    specs, guessed = model._built_specs or model._input_specs, False
    if specs is None:
        from .models import natural_input_rank

        rank = natural_input_rank(model)
        guessed = rank is None
        specs = [TensorSpec((None,) * (rank or 2))]
    graph = lower(model, [s.to_type(model.dtype, i) for i, s in enumerate(specs)])
    unify = Unifier()
    for node, data in graph.nodes(data=True):
        if data["op"] != "param":
            continue
        key, pname = data["key"], data["param"]
        arr = staged[key][2]
        try:
            unify.shapes(data["type"].shape, arr.shape, pname)
        except ShapeError as e:
            raise ShapeError(f"layer '{layer_name(graph, node)}' ({layer_kind(graph, node)}): "
                             f"weight {pname} must have shape {format_shape(data['type'].shape)},"
                             f" the file has {arr.shape} ('{key}'): {e}") from None
        data["type"] = data["type"].with_shape(arr.shape)
    run_pipeline(graph, [propagate_shapes, validate], CompileContext())
    if guessed:
        return None
    return [TensorSpec(tuple(d if isinstance(d, int) else None
                             for d in graph.nodes[n]["type"].shape))
            for n in graph.graph["inputs"]]


def _commit(model: Any, staged: dict, fresh: set) -> None:
    """Write the checked arrays: in place where weights exist; every write bumps a version."""
    converted = {key: np.array(arr, dtype=layer.dtype or model.dtype, order="C")
                 for key, (layer, _, arr) in staged.items() if key in fresh}
    for key, (layer, pname, arr) in staged.items():
        with layer._lock:
            if key in fresh:
                layer.variable(pname).replace(converted[key])
            else:
                layer.variable(pname)._set(arr, in_place=True)
