"""``compiler.load_model``: one function for every model file deferc reads.

The format is told by the file's first bytes, not its name: a zip is a Keras 3 ``.keras`` file,
HDF5 a legacy Keras full-model ``.h5``, anything else JSON (our ``Model.to_config()``, or a
Keras ``config.json`` on its own: an architecture without weights loads deferred).
"""

from __future__ import annotations

import json
import os
from typing import Any

from .errors import CompilerError

_ZIP, _HDF5 = b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"


def load_model(path: str | os.PathLike, weights: str | os.PathLike | None = None) -> Any:
    """Load a model: ``.keras`` (Keras 3), legacy Keras ``.h5``, or a JSON architecture.

    Args:
        path: the model file.
        weights: for a JSON architecture only: our ``save_weights`` ``.npz`` (or, for a Keras
            ``config.json``, its ``model.weights.h5``). Without it, weights are initialized
            fresh (or stay deferred where the architecture does not fix their shapes).
    Returns:
        A ``Sequential`` or functional ``Model``.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise CompilerError(f"model file '{path}' does not exist") from None
    except OSError as e:
        raise CompilerError(f"model file '{path}' cannot be read ({e})") from None
    if head.startswith(_ZIP) or head.startswith(_HDF5):
        if weights is not None:
            raise CompilerError(f"'{path}' holds its own weights; pass weights= only with a "
                                f"JSON architecture")
        from .kerasfile import load_keras
        from .kerasfile.legacy import load_legacy_h5

        return load_keras(path) if head.startswith(_ZIP) else load_legacy_h5(path)
    return _load_json(path, weights)


def _load_json(path: str, weights: Any) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CompilerError(f"'{path}' is neither a .keras zip, an HDF5 model nor JSON "
                            f"({type(e).__name__}: {e})") from None
    if isinstance(config, dict) and ("module" in config or config.get("class_name") ==
                                     "Functional"):
        return _keras_config(config, path, weights)
    from .frontend.saving import model_from_config

    model = model_from_config(config)
    if weights is not None:
        model.load_weights(weights)
    return model


def _keras_config(config: dict, path: str, weights: Any) -> Any:
    from .kerasfile import archive, reader

    where = f"'{path}'"
    model, placements = reader.model_from_entry(config, where)
    if weights is not None:  # without them: fresh weights where the config fixes the shapes
        try:
            with open(weights, "rb") as f:
                data = f.read()
        except OSError as e:
            raise CompilerError(f"weights file '{os.fspath(weights)}' cannot be read ({e})") \
                from None
        arrays = archive.read_h5(data, f"'{os.fspath(weights)}'")
        reader.assign_weights(model, placements, arrays, where)
    return model
