"""SciPy's BLAS wrappers without ``scipy.linalg``: about a quarter second off every fresh process.

numba's BLAS bridge (``np.dot`` in kernels, ``runtime.kernels.blas``) needs only the extension
module ``scipy.linalg.cython_blas`` (it reads C function pointers from it), but ``import
scipy.linalg.cython_blas`` first runs ``scipy/linalg/__init__.py``, which imports most of SciPy
(~0.25 s of CPU, the largest single import of a warm start). Loading the extension file directly,
under its full name, gives numba the very same module; a later ``import scipy.linalg`` imports
the package as usual and finds this module in ``sys.modules``. Any failure leaves it to the
normal import.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

NAME = "scipy.linalg.cython_blas"


def preload() -> bool:
    """Register ``scipy.linalg.cython_blas`` without importing ``scipy.linalg``; ``True`` if it
    is in ``sys.modules`` afterwards."""
    if NAME in sys.modules:
        return True
    try:
        import scipy

        linalg = os.path.join(os.path.dirname(scipy.__file__), "linalg")
        spec = importlib.machinery.PathFinder.find_spec(NAME, [linalg])
        if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return False
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception:  # noqa: BLE001 - the normal import path still works
        return False
    sys.modules.setdefault(NAME, module)
    return True


preload()
