"""Importing this package registers every op (each module calls ``register`` once per op)."""

from . import activations, dense, reshape  # noqa: F401
from .registry import OpDef, Unifier, get_op, register, registered_ops  # noqa: F401
from . import conv, merge, normalization, pooling, softmax  # noqa: F401,E402
