"""Floating-point work per op, for profiles and GFLOP/s: what a step *should* cost.

Only products dominate a network's arithmetic, so they are counted exactly (2 flops per
multiply-add, from the weight's shape); every other step is counted as one flop per output
element, and steps that only re-view their input as zero. Rough on purpose: the number answers
"is this step running near the machine's speed", not "how many instructions ran".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: ops whose cost is 2 * output elements * (weight elements per output element)
_PRODUCTS = {"dense", "conv2d", "depthwise_conv2d"}
_VIEWS = {"reshape", "identity", "flatten"}


def step_flops(op: str, input_shapes: Sequence[tuple], output_shape: tuple,
               param_shapes: dict) -> int:
    """Flops of one op on concrete shapes (``param_shapes``: param name -> shape)."""
    out = math.prod(output_shape)
    if op in _VIEWS:
        return 0
    kernel = param_shapes.get("kernel")
    if op in _PRODUCTS and kernel:
        if op == "dense":
            per_output = kernel[0]
        elif op == "conv2d":
            per_output = kernel[0] * kernel[1] * kernel[2]
        else:  # depthwise: one filter window per output channel
            per_output = kernel[0] * kernel[1]
        return 2 * out * per_output
    if op == "matmul" and input_shapes and input_shapes[0]:
        return 2 * out * input_shapes[0][-1]
    return out
