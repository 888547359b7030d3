"""Compilation flags shared by every kernel.

``fastmath=True`` would let LLVM assume no NaN/inf (``nnan``/``ninf``) and silently change results
on such inputs; we keep only the flags that preserve IEEE special values.
"""

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
JIT = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
#: Below this many output elements a kernel's serial path beats spawning threads.
PARALLEL_MIN_ELEMENTS = 1 << 15
