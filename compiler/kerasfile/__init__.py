"""Keras 3 ``.keras`` files, both ways, without Keras: ``load_keras`` and ``save_keras``.

The layer mapping is one table (``table.py``); ``reader.py`` and ``writer.py`` turn configs
into models and back; ``archive.py`` owns the zip and HDF5 bytes.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import CompilerError
from . import archive, reader, writer
from .table import PENDING, TABLE, supported

__all__ = ["PENDING", "TABLE", "load_keras", "save_keras", "supported"]


def load_keras(path: str | os.PathLike) -> Any:
    """A deferc model from a Keras 3 ``.keras`` file (weights included when the file has them).

    A model Keras saved before it was ever called loads deferred: its layers exist, its weights
    are created by the first call. Anything we cannot run exactly is a ``CompilerError``.
    """
    path = os.fspath(path)
    where = f"'{path}'"
    config, weights = archive.read_archive(path)
    model, placements = reader.model_from_entry(config, where)
    arrays = archive.read_h5(weights, where) if weights is not None else {}
    reader.assign_weights(model, placements, arrays, where)
    return model


def save_keras(model: Any, path: str | os.PathLike) -> None:
    """Write ``model`` as a Keras 3 ``.keras`` file that ``keras.saving.load_model`` reads.

    Everything is checked and serialized in memory first: a refusal writes nothing.
    """
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise CompilerError(f"model.save writes the Keras 3 format; the path must end in "
                            f"'.keras', received '{path}' (use save_weights for .npz)")
    config, groups = writer.model_to_keras(model, f"model '{model.name}'")
    archive.write_archive(path, config, archive.h5_bytes(groups))
