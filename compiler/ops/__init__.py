"""Importing this package registers every op (each module calls ``register`` once per op).

It is also the user-facing ``compiler.ops`` (Keras 3 ``keras.ops`` names: ``ops.matmul``,
``ops.relu``...): those functions live in ``compiler/frontend/ops_api.py`` and are looked up
here on first use, so the registry never imports the frontend at import time.
"""

from . import (  # noqa: F401,E402
    activations,
    conv,
    dense,
    merge,
    normalization,
    pooling,
    primitives,
    recurrent,
    reshape,
    reshape_dims,
    sequence,
    softmax,
)
from .registry import OpDef, Unifier, get_op, register, registered_ops  # noqa: F401

# The op modules ``reshape`` and ``softmax`` share names with user functions; the functions win
# (``ops.reshape(x, shape)``). The modules stay importable (``from compiler.ops.reshape import``).
del reshape, softmax  # noqa: F821

# sequence models: Conv1D family, attention
from . import add_norm, attention, attention_parts, position, sequence1d  # noqa: E402,F401

# isort: split
# ops of the ONNX importer
from . import clamped_slice, conv_transpose, reduce_prod  # noqa: E402,F401


def __getattr__(name: str):
    from ..frontend import ops_api

    if name in ops_api.__all__:
        return getattr(ops_api, name)
    raise AttributeError(f"module 'compiler.ops' has no attribute {name!r}")


def __dir__() -> list:
    from ..frontend import ops_api

    return sorted(set(globals()) | set(ops_api.__all__))
