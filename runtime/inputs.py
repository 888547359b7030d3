"""Input conversion lives in ``compiler.inputs`` (the frontend needs it without the runtime)."""

from compiler.inputs import as_input_array

__all__ = ["as_input_array"]
