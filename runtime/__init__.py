"""The deferc runtime: numba kernels and the executable ``Plan`` that runs them."""

from . import threads  # noqa: F401, I001  (first: starts the threading layer before cached code loads)
from . import cache  # noqa: F401  (then: fixes numba's cache location before kernels load)
from . import blas_preload  # noqa: F401  (BLAS for numba without importing scipy.linalg)
from compiler.backend import register_runtime
from .plan import Plan
from .threads import get_num_threads, set_num_threads

register_runtime(Plan)  # compiler.compile() hands finished graphs to Plan (see compiler.backend)

__all__ = ["Plan", "get_num_threads", "set_num_threads"]
