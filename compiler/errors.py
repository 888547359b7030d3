"""The compiler's exception hierarchy.

Every error a user can trigger derives from ``CompilerError`` (a ``ValueError``), so callers can
catch one type; the subclasses say which kind of fix is needed.
"""


class CompilerError(ValueError):
    """Base class of every error deferc raises for bad models, configurations or inputs."""


class ShapeError(CompilerError):
    """Two shapes provably disagree (wrong width, wrong rank, mismatching layers)."""


class DeferredInitializationError(CompilerError):
    """Weights were asked for (or needed) before their shapes could be inferred."""


class DTypeError(CompilerError, TypeError):
    """An input or weight has a dtype deferc cannot use (strings, objects, complex...)."""
