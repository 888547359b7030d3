"""The deferc runtime: numba kernels and the executable ``Plan`` that runs them."""

from compiler.backend import register_runtime

from . import cache  # noqa: F401  (first: fixes numba's cache location before kernels load)
from .plan import Plan
from .threads import get_num_threads, set_num_threads

register_runtime(Plan)  # compiler.compile() hands finished graphs to Plan (see compiler.backend)

register_runtime(Plan)  # compiler.compile() hands finished graphs to Plan (see compiler.backend)

__all__ = ["Plan", "get_num_threads", "set_num_threads"]
