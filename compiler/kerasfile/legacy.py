"""Legacy full-model ``.h5`` files (Keras 2, or Keras 3's ``model.save("x.h5")``).

They hold the same layer configs as ``.keras`` files (Keras 2 spells call nodes as plain lists,
which ``reader.py`` also accepts), so the same table loads them. Only the weight layout
differs: ``model_weights/<top-level layer name>`` lists its variables by name in the attribute
``weight_names``, a nested model's all in one list. We map them onto the ``.keras`` layout and
let the same checks (shapes named by layer and variable) run.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import CompilerError
from . import reader, table
from .archive import h5py_module


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def load_legacy_h5(path: str) -> Any:
    """A deferc model from a legacy HDF5 full-model file."""
    h5py = h5py_module()
    where = f"'{path}'"
    try:
        with h5py.File(path, "r") as f:
            if "model_config" not in f.attrs:
                raise CompilerError(f"{where} is an HDF5 file without 'model_config': a weights-"
                                    f"only file, not a full model (load the architecture first)")
            try:
                config = json.loads(_text(f.attrs["model_config"]))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise CompilerError(f"{where}: model_config is not valid JSON ({e})") from None
            if not isinstance(config, dict):
                raise CompilerError(f"{where}: model_config must hold an object")
            model, placements = reader.model_from_entry(config, where)
            weights = f["model_weights"] if "model_weights" in f else None
            arrays = _as_keras_layout(weights, placements, where) if weights is not None else {}
    except CompilerError:
        raise
    except Exception as e:  # noqa: BLE001 - h5py raises OSError/KeyError/... on bad files
        raise CompilerError(f"{where} is truncated or not a valid HDF5 model file "
                            f"({type(e).__name__}: {e})") from None
    reader.assign_weights(model, placements, arrays, where)
    return model


def _as_keras_layout(weights: Any, placements: list, where: str) -> dict[str, np.ndarray]:
    """The legacy arrays keyed by the ``.keras`` paths the placements expect."""
    arrays: dict[str, np.ndarray] = {}
    tops: dict[str, list] = {}
    for place in placements:
        tops.setdefault(place.top, []).append(place)
    for top, places in tops.items():
        if top not in weights:
            continue
        group = weights[top]
        values = [np.asarray(group[_text(n)][()]) for n in group.attrs.get("weight_names", [])]
        k = 0
        for place in places:
            for sub, _ in table.TABLE[place.keras_class].variables(place.layer):
                if k < len(values):
                    arrays[f"{place.group}/{sub}"] = values[k]
                    k += 1
        if k != len(values):
            raise CompilerError(f"{where}: layer '{top}' has {len(values)} weights in the file, "
                                f"its config holds {k}")
    for name, arr in arrays.items():
        if arr.dtype.kind not in "fiu":
            raise CompilerError(f"{where}: weight '{name}' has dtype {arr.dtype}, expected "
                                f"numbers")
    return arrays
