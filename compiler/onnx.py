"""``compiler.onnx``: run ONNX models with deferc, and write deferc models as ONNX.

``load(path | bytes | onnx.ModelProto, input_shapes=None, layout="NCHW")`` returns an ordinary
``compiler.Model`` (weights named after the ONNX initializers). ``python -m compiler.onnx
MODEL.onnx [--run] [--dot FILE]`` reports what a file holds and what deferc makes of it.
The ``onnx`` package is imported only when used (``pip install 'deferc[onnx]'``).
"""

from __future__ import annotations

from typing import Any


def load(source: Any, input_shapes: dict | None = None, layout: str = "NCHW",
         name: str | None = None) -> Any:
    """Import an ONNX model as a ``compiler.Model``.

    Args:
        source: a file path, the file's bytes, or an ``onnx.ModelProto``.
        input_shapes: ``{input name: shape}`` overriding the declared dims (ONNX layout; ``None``
            or a string marks a symbolic dim).
        layout: ``"NCHW"`` (arrays as the file expects) or ``"NHWC"`` (rank-4 inputs and outputs
            channels-last: no transposes at the boundary).
        name: the model's name (default: the graph's name).
    Returns:
        An ``OnnxModel``: call it with arrays, ``compile`` it, read and set its weights.
    """
    from .frontend.onnx.model import load as _load

    return _load(source, input_shapes=input_shapes, layout=layout, name=name)


def export(model, path, *signature, **options):
    """Write ``model`` as an ONNX file (opset 17); see compiler.frontend.onnx.export."""
    from .frontend.onnx.export import export as _export
    return _export(model, path, *signature, **options)


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in the tests
    import sys

    from .frontend.onnx.cli import main

    sys.exit(main())
