"""Reading an ONNX file safely: parse, check the graph's structure, and decode tensors.

Nothing here trusts the file: protobuf parse errors, unknown opsets, custom domains, cycles,
duplicate value names and tensors whose declared size disagrees with the bytes present all
become ``CompilerError``. External data is read by us (never by ``onnx.load``), only from files
inside the model's folder (no absolute paths, no ``..``, no symlink leaving the folder), and
only after checking that the file holds as many bytes as the tensor needs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CompilerError

#: opsets of the default domain we import
MIN_OPSET, MAX_OPSET = 6, 21
#: the most elements one tensor (or one declared dim) may have: refuses giant declared sizes
MAX_ELEMENTS = 1 << 31
DEFAULT_DOMAINS = ("", "ai.onnx")


def require_onnx() -> Any:
    """The ``onnx`` package, or a clear error naming the extra to install."""
    try:
        import onnx
    except ImportError:  # pragma: no cover - the test environment has it
        raise CompilerError("compiler.onnx needs the 'onnx' package: pip install "
                            "'deferc[onnx]' (or pip install onnx)") from None
    return onnx


def read_model(source: Any) -> tuple[Any, Path | None]:
    """``(ModelProto, folder)`` from a path, bytes or a ``ModelProto``.

    ``folder`` is where external data may live (``None`` for bytes and protos: external data is
    then refused).
    """
    onnx = require_onnx()
    if isinstance(source, onnx.ModelProto):
        return source, None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _parse(bytes(source), "<bytes>"), None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise CompilerError(f"cannot read ONNX file '{path}': {e.strerror or e}") from None
        return _parse(data, str(path)), path.resolve().parent
    raise CompilerError(f"compiler.onnx.load: expected a path, bytes or an onnx.ModelProto, "
                        f"received {type(source).__name__}")


def _parse(data: bytes, where: str) -> Any:
    onnx = require_onnx()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise CompilerError(f"'{where}' is not a valid ONNX file (protobuf parse failed: "
                            f"{e})") from None
    if not model.HasField("graph") or not model.graph.node and not model.graph.output:
        raise CompilerError(f"'{where}' is not a valid ONNX model: it has no graph")
    return model


def default_opset(model: Any) -> int:
    """The default-domain opset the model imports; refused outside ``MIN_OPSET..MAX_OPSET``."""
    versions = [op.version for op in model.opset_import if op.domain in DEFAULT_DOMAINS]
    if not versions:
        raise CompilerError("ONNX model imports no opset of the default domain ('ai.onnx')")
    version = int(versions[0])
    if not MIN_OPSET <= version <= MAX_OPSET:
        raise CompilerError(f"ONNX model uses opset {version} of the default domain; deferc "
                            f"imports opsets {MIN_OPSET} to {MAX_OPSET}")
    return version


def check_structure(graph: Any) -> list:
    """The graph's nodes in a valid execution order; refuses cycles, duplicate value names,
    reads of undefined values, subgraphs and nodes without outputs."""
    defined: dict[str, str] = {}

    def define(name: str, what: str) -> None:
        if not name:
            return
        if name in defined:
            raise CompilerError(f"ONNX graph: value '{name}' is defined twice ({defined[name]} "
                                f"and {what})")
        defined[name] = what

    initializer_names = {t.name for t in graph.initializer}
    for t in graph.initializer:
        define(t.name, f"initializer '{t.name}'")
    for v in graph.input:
        if v.name not in initializer_names:  # opset <= 9: weights are also listed as inputs
            define(v.name, f"graph input '{v.name}'")
    producers: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            define(out, f"output of node '{node.name or node.op_type}'")
            if out:
                producers[out] = i
    for i, node in enumerate(graph.node):
        for attr in node.attribute:
            if attr.g.node or attr.graphs:
                raise CompilerError(f"ONNX node '{node.name}' ({node.op_type}): subgraphs "
                                    f"(control flow) are not supported")
        for name in node.input:
            if name and name not in defined:
                raise CompilerError(f"ONNX node '{node.name}' ({node.op_type}) reads "
                                    f"'{name}', which nothing defines")
    for out in graph.output:
        if out.name not in defined:
            raise CompilerError(f"ONNX graph output '{out.name}' is not computed by any node")
    if len({o.name for o in graph.output}) != len(graph.output):
        raise CompilerError("ONNX graph: duplicate graph output names "
                            f"{[o.name for o in graph.output]}")
    return _topological(graph.node, producers)


def _topological(nodes: Any, producers: dict[str, int]) -> list:
    """Kahn's algorithm over node indices; a cycle is an error naming a node on it."""
    deps = [{producers[n] for n in node.input if n in producers} for node in nodes]
    readers: dict[int, list[int]] = {}
    for i, ds in enumerate(deps):
        for d in ds:
            readers.setdefault(d, []).append(i)
    pending = [len(ds) for ds in deps]
    ready = [i for i, p in enumerate(pending) if p == 0]
    order: list[int] = []
    while ready:
        i = ready.pop()
        order.append(i)
        for r in readers.get(i, ()):
            pending[r] -= 1
            if pending[r] == 0:
                ready.append(r)
    if len(order) != len(nodes):
        stuck = next(nodes[i] for i, p in enumerate(pending) if p > 0)
        raise CompilerError(f"ONNX graph has a cycle through node '{stuck.name}' "
                            f"({stuck.op_type})")
    return [nodes[i] for i in sorted(order)]


# -- tensors ------------------------------------------------------------------------------------
def _np_dtype(data_type: int, name: str) -> np.dtype:
    onnx = require_onnx()
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type))
    except Exception:
        dtype = None
    if dtype is None or dtype.kind not in "biuf":
        raise CompilerError(f"ONNX tensor '{name}': data type {data_type} is not supported "
                            f"(numeric and bool tensors only)")
    return dtype


def checked_count(dims: Iterable[int], what: str) -> int:
    """The element count of ``dims``; refuses negative and giant sizes before anything is
    allocated."""
    dims = [int(d) for d in dims]
    if any(d < 0 for d in dims):
        raise CompilerError(f"{what}: negative dim in {dims}")
    count = math.prod(dims)
    if count > MAX_ELEMENTS:
        raise CompilerError(f"{what}: declares {dims} ({count} elements), more than the "
                            f"{MAX_ELEMENTS} deferc accepts")
    return count


#: the typed repeated field holding each kind of value when ``raw_data`` is absent
_FIELDS = {"f": ("float_data", "double_data"), "i": ("int32_data", "int64_data"),
           "u": ("int32_data", "uint64_data"), "b": ("int32_data",)}


def tensor_to_array(tensor: Any, folder: Path | None) -> np.ndarray:
    """Decode one ``TensorProto``; sizes are checked against the bytes present first."""
    onnx = require_onnx()
    name = tensor.name or "<unnamed>"
    what = f"ONNX tensor '{name}'"
    dtype = _np_dtype(tensor.data_type, name)
    count = checked_count(tensor.dims, what)
    shape = tuple(int(d) for d in tensor.dims)
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        raw = _read_external(tensor, folder, count * dtype.itemsize, what)
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape).astype(dtype)
    if tensor.HasField("raw_data"):
        need = count * dtype.itemsize
        if len(tensor.raw_data) != need:
            raise CompilerError(f"{what}: {shape} {dtype} needs {need} bytes, the file holds "
                                f"{len(tensor.raw_data)}")
        return np.frombuffer(tensor.raw_data, dtype=dtype.newbyteorder("<")).reshape(
            shape).astype(dtype)
    if dtype == np.float16:
        held = len(tensor.int32_data)
    else:
        held = max((len(getattr(tensor, f)) for f in _FIELDS[dtype.kind]), default=0)
    if held != count:
        raise CompilerError(f"{what}: {shape} needs {count} values, the file holds {held}")
    try:
        return np.asarray(onnx.numpy_helper.to_array(tensor), dtype=dtype).reshape(shape)
    except Exception as e:
        raise CompilerError(f"{what}: cannot decode ({e})") from None


def _read_external(tensor: Any, folder: Path | None, need: int, what: str) -> bytes:
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    if folder is None:
        raise CompilerError(f"{what}: stored in external file '{location}'; load the model "
                            f"from its path (not bytes or a proto) so the file can be found")
    rel = Path(location)
    if not location or rel.is_absolute() or ".." in rel.parts or location.startswith(("/", "\\")):
        raise CompilerError(f"{what}: external data location '{location}' must be a relative "
                            f"path inside the model's folder")
    path = (folder / rel).resolve()
    if not path.is_relative_to(folder):
        raise CompilerError(f"{what}: external data location '{location}' leaves the model's "
                            f"folder (through a symlink)")
    try:
        offset = int(info.get("offset", 0))
        length = int(info.get("length", need))
    except ValueError:
        raise CompilerError(f"{what}: external data offset/length are not integers") from None
    if offset < 0 or length != need:
        raise CompilerError(f"{what}: external data length {length} (offset {offset}) does not "
                            f"match the {need} bytes the tensor needs")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if offset + need > size:
                raise CompilerError(f"{what}: external file '{location}' holds {size} bytes, "
                                    f"the tensor needs {need} from offset {offset}")
            f.seek(offset)
            return f.read(need)
    except OSError as e:
        raise CompilerError(f"{what}: cannot read external file '{location}': "
                            f"{e.strerror or e}") from None
