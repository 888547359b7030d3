"""Helpers shared by the op-family tests: run a shape rule, a kernel and the NumPy reference."""

from __future__ import annotations

import numpy as np

from compiler.ops import Unifier, get_op
from compiler.types import TensorType
from runtime.kernels.registry import empty_param, get_kernel


def infer(name, input_shapes, attrs, param_shapes=None, dtype=np.float32) -> TensorType:
    """The op's output type for the given input (and parameter) shapes."""
    op = get_op(name)
    inputs = [TensorType(None if s is None else tuple(s), np.dtype(dtype)) for s in input_shapes]
    if param_shapes is None:
        param_shapes = op.param_shapes(inputs, attrs)
    params = {k: TensorType(tuple(v), np.dtype(dtype)) for k, v in param_shapes.items()}
    return op.shape_rule(inputs, params, attrs, Unifier())


def run_kernel(name, inputs, params, attrs) -> np.ndarray:
    """Call the op's kernel with the ``fn(*inputs, *params, out, *scalars)`` convention."""
    op = get_op(name)
    out_type = infer(name, [x.shape for x in inputs], attrs,
                     {k: v.shape for k, v in params.items()}, inputs[0].dtype)
    kernel = get_kernel(op.kernel)
    out = np.full(out_type.shape, np.nan, dtype=inputs[0].dtype)  # catches unwritten cells
    ordered = [params.get(p, empty_param(inputs[0].dtype)) for p in kernel.param_names]
    scalars = kernel.scalars(attrs, [x.shape for x in inputs], out.shape)
    kernel.fn(*inputs, *ordered, out, *scalars)
    return out


def reference(name, inputs, params, attrs) -> np.ndarray:
    return get_op(name).reference(inputs, params, attrs)


def assert_kernel_matches(name, inputs, params, attrs, rtol=1e-4, atol=1e-5) -> np.ndarray:
    """Kernel vs NumPy reference: same shape, dtype, NaN pattern and values (within tolerance)."""
    want = reference(name, inputs, params, attrs)
    got = run_kernel(name, inputs, params, attrs)
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    return got


def params_for(name, inputs, attrs, rng, positive=()) -> dict:
    """Random parameters of the shapes the op's ``param_spec`` asks for."""
    spec = get_op(name).param_shapes([TensorType(x.shape, x.dtype) for x in inputs], attrs)
    dtype = inputs[0].dtype
    out = {}
    for k, shape in spec.items():
        v = rng.standard_normal(shape).astype(dtype)
        out[k] = np.abs(v) + dtype.type(0.1) if k in positive else v
    return out
