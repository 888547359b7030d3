"""How ``compile`` reaches a runtime without ``compiler/`` importing one.

Imports run one way: frontend -> compiler -> runtime. The compiler produces a finished graph;
turning it into something callable is the job of a runtime package, which registers a factory
here when it is imported (``runtime/__init__.py`` calls ``register_runtime``). ``compile`` asks
``runtime_factory()``; if nothing is registered yet it imports the runtime *by name*
(``$DEFERC_RUNTIME``, default ``"runtime"``), the plugin pattern of matplotlib's backends. So
building models and propagating shapes never loads the runtime or numba, and another runtime
(a test double, a remote executor) can be plugged in by registering its own factory.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from .errors import CompilerError

#: ``factory(graph, records, *, model_name, executor, store[, tier]) -> callable plan`` (``tier``
#: only when ``compile`` was given one)
RuntimeFactory = Callable[..., Any]

_factory: RuntimeFactory | None = None


def register_runtime(factory: RuntimeFactory) -> None:
    """Make ``factory`` the runtime ``compile`` hands finished graphs to."""
    global _factory
    _factory = factory


def runtime_factory() -> RuntimeFactory:
    """The registered runtime factory, importing the default runtime package on first use."""
    if _factory is None:
        name = os.environ.get("DEFERC_RUNTIME", "runtime")
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise CompilerError(f"compile() needs a runtime: importing {name!r} failed ({e})"
                                ) from e
    if _factory is None:
        raise CompilerError(f"runtime package {name!r} did not register a runtime "
                            f"(compiler.backend.register_runtime)")
    return _factory
