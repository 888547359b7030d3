"""Embedding: a bounds-checked gather of table rows, parallel over rows for large outputs.

Indices come as int32/int64 or as floats holding exact integers (inputs are cast to the model
dtype until per-value dtypes land). Every index is checked before any row is read; a bad one
raises ``IndexOutOfRangeError`` naming the layer, the index and ``input_dim``.
"""

import numpy as np
from numba import njit, prange

from compiler.ops.sequence import raise_bad_index

from .flags import JIT, PARALLEL_MIN_ELEMENTS
from .registry import Kernel, register_kernel


@njit(**JIT)
def _first_bad(flat, input_dim):
    """Position of the first index that is not an integer in ``[0, input_dim)``, else -1."""
    for i in range(flat.shape[0]):
        v = flat[i]
        if not (v >= 0 and v < input_dim and np.floor(v) == v):  # NaN fails every test
            return i
    return -1


@njit(**JIT)
def _gather_serial(flat, table, out2d):
    for i in range(flat.shape[0]):
        out2d[i, :] = table[np.int64(flat[i])]


@njit(parallel=True, **JIT)
def _gather_parallel(flat, table, out2d):
    for i in prange(flat.shape[0]):
        out2d[i, :] = table[np.int64(flat[i])]


def _run(idx, table, out, input_dim, where, parallel) -> None:
    flat = np.ascontiguousarray(idx).reshape(-1)
    if flat.size == 0:
        return
    bad = _first_bad(flat, input_dim)
    if bad >= 0:
        raise_bad_index(where, flat[bad].item(), bad, input_dim, np.shape(idx))
    out2d = out.reshape(flat.shape[0], table.shape[1])
    if parallel and out.size >= PARALLEL_MIN_ELEMENTS and flat.shape[0] > 1:
        _gather_parallel(flat, table, out2d)
    else:
        _gather_serial(flat, table, out2d)


def embedding(idx, table, out, input_dim, where) -> None:
    """``out[...] = table[idx]`` after checking every index."""
    _run(idx, table, out, input_dim, where, False)


def embedding_parallel(idx, table, out, input_dim, where) -> None:
    _run(idx, table, out, input_dim, where, True)


def _scalars(attrs, input_shapes, out_shape) -> tuple:
    where = f"layer '{attrs['layer']}' (Embedding)" if attrs.get("layer") else "Embedding"
    return (int(attrs["input_dim"]), where)


register_kernel(Kernel("embedding", embedding, _scalars, param_names=("embeddings",),
                       parallel_fn=embedding_parallel))
