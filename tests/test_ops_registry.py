"""Every registered op is complete: shape rule, reference, and a runtime kernel of that name."""

import pytest

from compiler.ops import registered_ops
from runtime.kernels.registry import all_kernels

OPS = sorted(registered_ops())


@pytest.mark.parametrize("name", OPS)
def test_op_is_defined_in_full(name):
    op = registered_ops()[name]
    assert callable(op.shape_rule) and callable(op.reference)
    assert op.kernel in all_kernels(), f"op {name!r} names kernel {op.kernel!r}, which is missing"
    if op.param_spec is not None:
        assert callable(op.param_spec)


def test_kernels_follow_the_calling_convention():
    for name, kernel in all_kernels().items():
        assert callable(kernel.fn) and callable(kernel.scalars), name
