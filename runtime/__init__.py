"""The deferc runtime: numba kernels and the executable ``Plan`` that runs them."""

from . import cache  # noqa: F401  (first: fixes numba's cache location before kernels load)
from .plan import Plan
from .threads import get_num_threads, set_num_threads

__all__ = ["Plan", "get_num_threads", "set_num_threads"]
