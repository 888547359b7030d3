"""The ``.keras`` container: a zip of ``config.json``, ``metadata.json`` and ``model.weights.h5``.

Nothing is ever extracted to disk: members are read into memory after their names are checked
(no absolute paths, no ``..``), so a hostile archive cannot write anywhere. HDF5 goes through
``h5py`` (the optional extra ``deferc[keras]``), imported only when a file is read or written.
Writing is atomic: a temporary file next to the target, renamed over it once complete.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import posixpath
import zipfile
from typing import Any

import numpy as np

from ..atomic_file import write_atomically
from ..errors import CompilerError

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
#: The Keras release whose format we write (Keras reads ``metadata.json`` only for display).
KERAS_FORMAT_VERSION = "3.15.1"
#: JSON members larger than this are refused before being read (a zip bomb would be).
MAX_JSON_BYTES = 64 << 20
#: A member larger than ``MAX_JSON_BYTES`` compressed more than this much is refused.
MAX_RATIO = 1000


def h5py_module() -> Any:
    """``h5py``, or a ``CompilerError`` saying how to install it."""
    try:
        import h5py
    except ImportError:
        raise CompilerError("reading and writing .keras files needs h5py: "
                            "pip install 'deferc[keras]'") from None
    return h5py


def is_zip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def read_archive(path: str) -> tuple[dict, bytes | None]:
    """``(config, weights bytes or None)`` from a ``.keras`` file; ``CompilerError`` if bad."""
    where = f"'{path}'"
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:
                name = info.filename
                parts = name.replace("\\", "/").split("/")
                if name.startswith(("/", "\\")) or posixpath.isabs(name) or ".." in parts or \
                        (len(name) > 1 and name[1] == ":"):
                    raise CompilerError(f"{where}: refusing zip entry {name!r} (absolute or "
                                        f"containing '..'); nothing was extracted")
                if info.file_size > MAX_JSON_BYTES and \
                        info.file_size > MAX_RATIO * max(info.compress_size, 1):
                    raise CompilerError(f"{where}: zip entry {name!r} would expand "
                                        f"{info.file_size} bytes from {info.compress_size}; "
                                        f"refusing a likely zip bomb")
            names = {info.filename: info for info in infos}
            if CONFIG not in names:
                raise CompilerError(f"{where} is a zip without {CONFIG}: not a Keras 3 .keras "
                                    f"file (entries: {sorted(names)[:10]})")
            if names[CONFIG].file_size > MAX_JSON_BYTES:
                raise CompilerError(f"{where}: {CONFIG} declares {names[CONFIG].file_size} "
                                    f"bytes, more than the {MAX_JSON_BYTES} accepted")
            try:
                config = json.loads(zf.read(CONFIG).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
                raise CompilerError(f"{where}: {CONFIG} is not valid JSON ({e})") from None
            weights = zf.read(WEIGHTS) if WEIGHTS in names else None
    except FileNotFoundError:
        raise CompilerError(f"{where} does not exist") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, RuntimeError,
            NotImplementedError) as e:
        raise CompilerError(f"{where} is truncated or not a valid .keras zip "
                            f"({type(e).__name__}: {e})") from None
    if not isinstance(config, dict):
        raise CompilerError(f"{where}: {CONFIG} must hold an object, received "
                            f"{type(config).__name__}")
    return config, weights


def read_h5(data: bytes, where: str) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 image by path (``layers/dense/vars/0``)."""
    h5py = h5py_module()
    arrays: dict[str, np.ndarray] = {}
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    if obj.dtype.kind not in "fiu":
                        raise CompilerError(f"{where}: weight '{name}' has dtype {obj.dtype}, "
                                            f"expected numbers")
                    if obj.size * obj.dtype.itemsize > MAX_RATIO * len(data):
                        raise CompilerError(f"{where}: weight '{name}' would expand to "
                                            f"{obj.size * obj.dtype.itemsize} bytes from a "
                                            f"{len(data)}-byte file; refusing it")
                    arrays[name] = np.asarray(obj[()])
            f.visititems(visit)
    except CompilerError:
        raise
    except Exception as e:  # noqa: BLE001 - h5py raises OSError/KeyError/... on bad images
        raise CompilerError(f"{where}: {WEIGHTS} is truncated or not valid HDF5 "
                            f"({type(e).__name__}: {e})") from None
    return arrays


def h5_bytes(groups: list[tuple[str, str, list[np.ndarray]]]) -> bytes:
    """An HDF5 image: for each ``(group path, layer name, arrays)`` a ``vars`` group
    (attribute ``name``) holding ``vars/0``, ``vars/1``... as Keras writes them."""
    h5py = h5py_module()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for group, name, arrays in groups:
            vars_group = f.require_group(posixpath.join(group, "vars") if group else "vars")
            vars_group.attrs["name"] = name
            for i, arr in enumerate(arrays):
                vars_group.create_dataset(str(i), data=arr)
    return buffer.getvalue()


def write_archive(path: str | os.PathLike, config: dict, weights: bytes) -> None:
    """Write the zip atomically: a temporary file in the same directory, then a rename."""
    path = os.fspath(path)
    metadata = {"keras_version": KERAS_FORMAT_VERSION, "saved_by": "deferc",
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(METADATA, json.dumps(metadata))
            zf.writestr(CONFIG, json.dumps(config))
            zf.writestr(WEIGHTS, weights)

    write_atomically(path, write)
