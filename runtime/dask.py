"""Batch inference over dask arrays: one compiled plan mapped over every row chunk.

``predict(model_or_plan, x)`` returns a lazy dask array whose shape, dtype and ``meta`` are known
without computing. The plan is built on the client (so deferred initialization happens once and
every worker uses the same weights) and travels once per worker, not once per task: with a
``distributed`` Client active it is scattered to all workers and the future is reused by later
calls with the same plan (same pickled bytes, so same weights); with the threaded scheduler the
plan object itself is shared. Workers unpickle a plan once per process, keyed by a hash of its
bytes, and its generated code loads from the on-disk numba cache.

Needs ``dask[array]`` (``pip install 'deferc[dask]'`` adds ``distributed`` too).
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import dask.array as da
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("runtime.dask needs dask: pip install 'deferc[dask]' "
                      "(or 'dask[distributed]')") from e

from compiler.errors import DTypeError, ShapeError
from compiler.symbolic import Dim
from compiler.types import TensorSpec

from .plan import Plan

__all__ = ["predict", "ShippedPlan", "deserialization_count"]

# -- the plan as it travels ---------------------------------------------------------------------

#: token -> Plan, per process: a worker unpickles each plan once, however many tasks use it.
_PLANS: dict[str, Plan] = {}
#: token -> how many times this process unpickled that plan (tests read it on the workers).
_DESERIALIZED: dict[str, int] = {}
_PLANS_LOCK = threading.Lock()


class ShippedPlan:
    """A plan plus the hash of its pickled bytes: what the task graph refers to.

    Pickles as (token, bytes); unpickling reuses this process's copy of the same token, so a
    plan reaching a worker twice (a second compute, a peer transfer) is not rebuilt.
    """

    def __init__(self, plan: Plan, blob: bytes, token: str):
        self.plan, self.blob, self.token = plan, blob, token

    @classmethod
    def of(cls, plan: Plan) -> ShippedPlan:
        if plan._stale:  # weights changed since the last call: snapshot the current ones
            plan._sync_weights()
        blob = pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL)
        return cls(plan, blob, "deferc-plan-" + hashlib.sha256(blob).hexdigest()[:32])

    def __reduce__(self):
        return _load_shipped, (self.token, self.blob)

    def __repr__(self) -> str:
        return f"<ShippedPlan {self.token} {len(self.blob)} bytes>"


def _load_shipped(token: str, blob: bytes) -> ShippedPlan:
    with _PLANS_LOCK:
        plan = _PLANS.get(token)
        if plan is None:
            plan = _PLANS[token] = pickle.loads(blob)
            _DESERIALIZED[token] = _DESERIALIZED.get(token, 0) + 1
    return ShippedPlan(plan, blob, token)


def deserialization_count(token: str | None = None) -> int:
    """How many times this process unpickled a plan (``token``: that plan only)."""
    if token is not None:
        return _DESERIALIZED.get(token, 0)
    return sum(_DESERIALIZED.values())


# -- shipping: once per worker ------------------------------------------------------------------

#: (client id, token) -> Future of the broadcast ShippedPlan; the last few plans stay on the
#: cluster so a second predict with the same plan sends nothing.
_SCATTERED: OrderedDict = OrderedDict()
_KEEP_SCATTERED = 8


def _active_client() -> Any:
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def _ship(shipped: ShippedPlan) -> Any:
    """What the tasks receive: a broadcast Future with a Client active, else the object."""
    client = _active_client()
    if client is None:
        return shipped
    key = (client.id, shipped.token)
    future = _SCATTERED.get(key)
    if future is None or future.status != "finished":
        future = client.scatter(shipped, broadcast=True, hash=False)
        _SCATTERED[key] = future
    _SCATTERED.move_to_end(key)
    while len(_SCATTERED) > _KEEP_SCATTERED:
        _SCATTERED.popitem(last=False)
    return future


# -- the graph ----------------------------------------------------------------------------------

def predict(model_or_plan: Any, x: Any) -> Any:
    """Run a model over a dask array (or several row-aligned ones), lazily, chunk by chunk.

    Args:
        model_or_plan: a ``runtime.Plan``, or a model; a model is compiled once here, on the
            client, for ``x``'s dtype and non-batch sizes (initializing its weights if needed).
        x: a ``dask.array.Array`` with the batch on axis 0, or a list/tuple of them (one per
            model input, equal row counts).
    Returns:
        A dask array (a list of them for a model with several outputs) whose row chunks are
        those of the (first) input; nothing is computed.
    Raises:
        ShapeError (a ``ValueError``): an input whose width, rank or row count does not fit,
            naming the model, input, axis and sizes; unknown sizes are checked per chunk at
            compute time, with the same message.
        DTypeError (a ``ValueError``): a non-numeric or complex input.
    """
    inputs = list(x) if isinstance(x, (list, tuple)) else [x]
    for i, a in enumerate(inputs):
        if not isinstance(a, da.Array):
            raise TypeError(f"predict: input {i} must be a dask.array.Array, received "
                            f"{type(a).__name__} (wrap NumPy data with dask.array.from_array)")
        if a.ndim < 1:
            raise ShapeError(f"predict: input {i} needs a batch axis (rank >= 1), received a "
                             f"0-d array")
    plan = model_or_plan if isinstance(model_or_plan, Plan) else _compile_for(model_or_plan,
                                                                              inputs)
    name = plan.model_name or "?"
    if len(inputs) != len(plan.signature.types):
        raise ShapeError(f"predict(model '{name}'): takes {len(plan.signature.types)} input(s), "
                         f"received {len(inputs)}")
    for i, a in enumerate(inputs):
        _check_dtype(name, plan, i, a.dtype)
    inputs = _align_rows(name, plan, inputs)
    out_shapes = _output_shapes(name, plan, inputs)

    shipped = _ship(ShippedPlan.of(plan))
    row_chunks = inputs[0].chunks[0]
    args = _row_indexed(inputs)
    label = f"deferc-predict-{_token(shipped, inputs)}"
    if len(out_shapes) == 1:
        shape = out_shapes[0]
        out_index = ("rows", *(f"out_{j}" for j in range(1, len(shape))))
        return da.blockwise(
            _run_block, out_index, shipped, None, name, None, *args,
            new_axes={f"out_{j}": shape[j] for j in range(1, len(shape))},
            concatenate=True, align_arrays=False, dtype=plan.output_dtypes[0],
            meta=np.empty((0,) * len(shape), plan.output_dtypes[0]), name=label)
    # several outputs: one task per chunk runs the plan; cheap tasks pick each output
    both = da.blockwise(_run_block, ("rows",), shipped, None, name, None, *args,
                        concatenate=True, align_arrays=False, dtype=object,
                        meta=np.empty((0,), object), name=label)
    outs = []
    for k, shape in enumerate(out_shapes):
        chunks = (row_chunks, *((d,) for d in shape[1:]))
        dtype = plan.output_dtypes[k]
        outs.append(both.map_blocks(_pick, k, chunks=chunks, dtype=dtype,
                                    new_axis=list(range(1, len(shape))) or None,
                                    meta=np.empty((0,) * len(shape), dtype)))
    return outs


def _row_indexed(inputs: Sequence) -> list:
    """Blockwise (array, index) pairs sharing only the row index: the other axes are single
    chunks after ``_align_rows``, so each task sees whole rows of every input."""
    out: list = []
    for i, a in enumerate(inputs):
        out += [a, ("rows", *(f"in{i}_{j}" for j in range(1, a.ndim)))]
    return out


def _pick(results: Any, k: int) -> np.ndarray:
    return results[k]


def _token(shipped: Any, inputs: Sequence) -> str:
    from dask.base import tokenize

    key = getattr(shipped, "key", None) or shipped.token
    return tokenize(key, *[a.name for a in inputs])


def _compile_for(model: Any, inputs: Sequence) -> Plan:
    """Compile ``model`` on the client for these inputs' non-batch sizes; the batch stays N."""
    from compiler import compile

    specs = [TensorSpec((None, *(_known(d) for d in a.shape[1:]))) for a in inputs]
    return compile(model, *specs)


def _known(d: float) -> int | None:
    return None if d != d else int(d)  # NaN (unknown size) stays symbolic


def _check_dtype(name: str, plan: Plan, i: int, dtype: np.dtype) -> None:
    """Refuse what ``plan(x)`` refuses (complex, strings, objects); other numbers are cast."""
    kind = np.dtype(dtype).kind
    if kind not in "fiub":
        raise DTypeError(f"predict(model '{name}'): {plan.signature.describe(i)} must be "
                         f"numeric (real), received dtype {dtype}; the plan computes in "
                         f"{plan.dtype}")


def _align_rows(name: str, plan: Plan, inputs: list) -> list:
    """Whole rows per chunk, and every input chunked along rows like the first."""
    first = inputs[0]
    out = []
    for i, a in enumerate(inputs):
        if a.ndim > 1 and any(len(c) > 1 for c in a.chunks[1:]):
            a = a.rechunk({axis: -1 for axis in range(1, a.ndim)})
        if i and a.chunks[0] != first.chunks[0]:
            rows_a, rows_0 = a.shape[0], first.shape[0]
            if rows_a == rows_a and rows_0 == rows_0 and rows_a != rows_0:
                raise ShapeError(f"predict(model '{name}'): {plan.signature.describe(i)}: axis 0 "
                                 f"(rows) expected {rows_0} rows like input 0, received {rows_a}")
            if any(c != c for c in a.chunks[0] + first.chunks[0]):
                raise ShapeError(f"predict(model '{name}'): {plan.signature.describe(i)}: axis 0 "
                                 f"has unknown chunk sizes that differ from input 0's; call "
                                 f"compute_chunk_sizes() on both first")
            a = a.rechunk({0: first.chunks[0]})
        out.append(a)
    return out


class _Probe:
    """Stands in for an array where only the shape is read (``InputSignature.bind``)."""

    def __init__(self, shape: tuple):
        self.shape, self.ndim = shape, len(shape)


def _output_shapes(name: str, plan: Plan, inputs: Sequence) -> list[tuple]:
    """Output shapes for one chunk (rows as ``nan``), checking the inputs' non-batch sizes now.

    Unknown (NaN) sizes are left to the per-chunk check at compute time.
    """
    if any(d != d for a in inputs for d in a.shape[1:]):
        known = None
    else:
        known = [(a.shape[1:]) for a in inputs]
    shapes = []
    for rows in (3, 5):  # two row counts tell a row axis from a constant one
        probes = [_Probe((rows, *(int(d) for d in s))) for s in known] if known else None
        if probes is None:
            return _symbolic_output_shapes(name, plan)
        try:
            bindings = plan.signature.bind(probes)
        except ShapeError as e:
            raise ShapeError(f"predict(model '{name}'): {e}") from None
        shapes.append([tuple(d if isinstance(d, int) else d.evaluate(bindings)
                             for d in plan.graph.nodes[o]["type"].shape)
                       for o in plan._output_nodes])
    out = []
    for k, (s3, s5) in enumerate(zip(*shapes)):
        if s3[0] != 3 or s5[0] != 5 or s3[1:] != s5[1:]:
            raise ShapeError(f"predict(model '{name}'): output {k} is not one row per input row "
                             f"(its shape is {s5} for 5 input rows); predict maps chunks of "
                             f"rows")
        out.append((np.nan, *s5[1:]))
    return out


def _symbolic_output_shapes(name: str, plan: Plan) -> list[tuple]:
    out = []
    for o in plan._output_nodes:
        shape = plan.graph.nodes[o]["type"].shape
        rest = tuple(d if isinstance(d, int) else np.nan for d in shape[1:])
        if any(isinstance(d, Dim) for d in shape[1:]):
            raise ShapeError(f"predict(model '{name}'): the output's non-batch sizes depend on "
                             f"input sizes dask does not know yet; call compute_chunk_sizes() "
                             f"first")
        out.append((np.nan, *rest))
    return out


def _run_block(shipped: ShippedPlan, name: str, *blocks: np.ndarray) -> Any:
    """One task: the plan over one chunk of rows (same checks and messages as ``plan(x)``)."""
    try:
        return shipped.plan(*blocks)
    except ShapeError as e:
        raise ShapeError(f"predict(model '{name}'), chunk of {len(blocks[0])} rows: {e}") \
            from None
