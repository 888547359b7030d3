"""Importing this package registers every op (each module calls ``register`` once per op)."""

from . import activations, conv, dense, merge, normalization, pooling, reshape, softmax  # noqa: F401  # noqa: F401,E402
from .registry import OpDef, Unifier, get_op, register, registered_ops  # noqa: F401
