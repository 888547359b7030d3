"""ONNX import and export (needs the optional `onnx` package)."""
