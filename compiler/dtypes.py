"""Value dtypes: which exist, how operands promote, and where a value changes dtype implicitly.

Every IR value has one of ``VALUE_DTYPES``. Promotion follows Keras 3 / JAX rather than NumPy
where they differ: an integer (or bool) operand meeting a float takes the float's dtype
(``int64 + float32`` is ``float32``, NumPy would say ``float64``); ints promote among themselves
(``int32 + int64`` is ``int64``); ``bool`` is the weakest. Ops that need a float result from
integer operands (``divide exp log sqrt erf mean``) give ``float32``, Keras' ``floatx``.

Inputs: a float input (float16/32/64) is computed in the model dtype (float16 has no kernels:
it is cast at the boundary, as ints given to a float input are); int32, int64 and bool inputs
keep their dtype. Layer ops (``dense conv2d batch_norm softmax``... everything that is not a
``compiler.ops`` primitive nor a pure data-movement/merge op) compute in the model dtype: a
non-float operand is converted when the step reads it (Keras casts a layer's inputs to its
compute dtype; Dense on int ids gives float32). ``input_conversions`` is that rule, in one place
for the reference executor and the runtime; a layer op may name operands that are indices
(``OpDef.extras["index_operands"]``: Embedding's ids), which are read as the integers they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np

from .errors import DTypeError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
INT_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
BOOL = np.dtype(bool)
#: the dtypes an IR value may have
VALUE_DTYPES = FLOAT_DTYPES + INT_DTYPES + (BOOL,)
#: what integer operands of a float-valued op become (Keras' ``floatx``)
DEFAULT_FLOAT = np.dtype(np.float32)

#: layer ops that keep their operands' dtype (data movement, merges, max pooling: Keras'
#: ``MaxPooling2D`` of int32 is int32); every other non-primitive op computes in the model dtype
DTYPE_PRESERVING_LAYER_OPS = frozenset({
    "identity", "flatten", "reshape", "concatenate", "zero_padding2d", "add", "subtract",
    "multiply", "maximum", "minimum", "max_pool2d", "global_max_pool2d", "max_pool1d",
    "global_max_pool1d"})


def is_float(dtype: Any) -> bool:
    return np.dtype(dtype).kind == "f"


def promote(dtypes: Sequence[Any]) -> np.dtype:
    """Keras-style promotion: the widest float if any operand is float, else NumPy's.

    Python scalars are weak (``x * 2`` keeps ``x``'s dtype): a Python float makes an integer
    result ``float32``, a Python int makes a ``bool`` result ``int64``.
    """
    weak = [d for d in dtypes if isinstance(d, (bool, int, float))]
    dts = [np.dtype(d) for d in dtypes if not isinstance(d, (bool, int, float))]
    floats = [d for d in dts if d.kind == "f"]
    if floats:
        return np.result_type(*floats)
    out = np.result_type(*dts) if dts else BOOL
    if any(type(w) is float for w in weak):
        return DEFAULT_FLOAT
    if out == BOOL and any(type(w) is int for w in weak):
        return np.dtype(np.int64)
    return out if dts or weak else DEFAULT_FLOAT


def float_result(dtype: np.dtype) -> np.dtype:
    """The dtype of a float-valued op (``exp``, true division) on operands of ``dtype``."""
    return dtype if dtype.kind == "f" else DEFAULT_FLOAT


def value_dtype(requested: Any, model_dtype: np.dtype, what: str = "input") -> np.dtype:
    """The IR dtype of an input declared as ``requested`` (``None``: the model dtype)."""
    if requested is None:
        return np.dtype(model_dtype)
    try:
        dt = np.dtype(requested)
    except (TypeError, ValueError, SyntaxError):  # numpy parses odd strings ("0:")
        raise DTypeError(f"{what}: unknown dtype {requested!r}; use one of "
                         f"{[str(d) for d in VALUE_DTYPES]}") from None
    if dt.kind == "f":
        return np.dtype(model_dtype)  # float16 too: there are no float16 kernels
    if dt in VALUE_DTYPES:
        return dt
    if dt.kind in "iu" and dt.itemsize <= 4 and not (dt.kind == "u" and dt.itemsize == 4):
        return np.dtype(np.int32)  # int8/16, uint8/16 fit in int32 exactly
    if dt.kind in "iu":
        return np.dtype(np.int64)
    raise DTypeError(f"{what}: dtype {dt} is not supported; use one of "
                     f"{[str(d) for d in VALUE_DTYPES]}")


def computes_in_model_dtype(op: str, opdef: Any) -> bool:
    """A layer op whose kernel computes in the model (float) dtype whatever its operands."""
    return not opdef.extras.get("primitive") and op not in DTYPE_PRESERVING_LAYER_OPS


def input_conversions(g: nx.DiGraph, node: int, operands: Sequence[int]) -> tuple:
    """Per data operand of ``node``: the dtype it is converted to when read, or ``None``.

    Layer ops read every operand in their own (output) dtype; primitives read operands as they
    are (their kernels handle every dtype, see ``runtime/kernels/registry.py``).
    """
    from .ops import get_op

    data = g.nodes[node]
    opdef = get_op(data["op"])
    if opdef.extras.get("primitive"):
        return (None,) * len(operands)
    want = data["type"].dtype
    # index operands (an embedding's ids) are read as the integers they are, never as floats
    ints = {i for i in opdef.extras.get("index_operands", ())
            if i < len(operands) and g.nodes[operands[i]]["type"].dtype in INT_DTYPES}
    return tuple(None if i in ints or g.nodes[n]["type"].dtype == want else want
                 for i, n in enumerate(operands))


def model_dtype(g: nx.DiGraph) -> np.dtype:
    """The dtype layer ops and weights compute in (recorded by lowering)."""
    dt = g.graph.get("dtype")
    if dt is not None:
        return np.dtype(dt)
    for n in g.graph.get("inputs", ()):
        t = g.nodes[n].get("type") if n in g else None
        if t is not None and is_float(t.dtype):
            return t.dtype
    return DEFAULT_FLOAT
