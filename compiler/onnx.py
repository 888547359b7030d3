"""ONNX interchange: ``from compiler import onnx as conx``; needs the optional ``onnx`` package."""

from __future__ import annotations


def export(model, path, *signature, **options):
    """Write ``model`` as an ONNX file (opset 17); see compiler.frontend.onnx.export."""
    from .frontend.onnx.export import export as _export
    return _export(model, path, *signature, **options)
