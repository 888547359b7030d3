"""ONNX import (``model.load``) and export (``export.py``); the public face is ``compiler.onnx``."""
