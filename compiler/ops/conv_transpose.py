"""``conv2d_transpose``: ONNX ConvTranspose over NHWC input (the gradient of a convolution).

The weight is an *operand* in ONNX's own layout ``(C_in, C_out/groups, kh, kw)`` (so an imported
file's initializer stays a weight under its name, unchanged), and the optional bias a second one.
Output size per spatial axis: ``(H - 1)*s + d*(k - 1) + 1 + output_padding - pad_begin - pad_end``
(symbolic sizes flow through). The NumPy reference is a col2im: one matmul of the input with the
weight gives every kernel tap's contribution, then ``kh*kw`` strided adds scatter them.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..symbolic import add, format_shape, is_concrete, mul
from ..types import TensorType
from .registry import OpDef, register


def _geometry(attrs) -> tuple:
    strides = tuple(int(v) for v in attrs.get("strides", (1, 1)))
    dilations = tuple(int(v) for v in attrs.get("dilations", (1, 1)))
    pads = tuple(tuple(int(v) for v in p) for p in attrs.get("pads", ((0, 0), (0, 0))))
    extra = tuple(int(v) for v in attrs.get("output_padding", (0, 0)))
    return strides, dilations, pads, extra, int(attrs.get("groups", 1))


def _rule(inputs, params, attrs, unify) -> TensorType:
    if len(inputs) > 3:
        raise ShapeError(f"conv2d_transpose: expected x, weight and an optional bias, received "
                         f"{len(inputs)} inputs")
    x, w = inputs[0], inputs[1]
    strides, dilations, pads, extra, groups = _geometry(attrs)
    if w.shape is None or len(w.shape) != 4 or not all(is_concrete(d) for d in w.shape):
        raise ShapeError(f"conv2d_transpose: the weight must have a known shape (C_in, "
                         f"C_out/groups, kh, kw), received {format_shape(w.shape)}")
    if x.shape is None:
        return TensorType(None, x.dtype)
    if len(x.shape) != 4:
        raise ShapeError(f"conv2d_transpose: expected a rank-4 NHWC input, received "
                         f"{format_shape(x.shape)}")
    c = x.shape[3]
    if is_concrete(c) and c != w.shape[0]:
        raise ShapeError(f"conv2d_transpose: input axis 3 (channels): expected {w.shape[0]} "
                         f"(the weight's C_in), received {c}")
    if len(inputs) > 2 and inputs[2].shape is not None and tuple(inputs[2].shape) != (
            w.shape[1] * groups,):
        raise ShapeError(f"conv2d_transpose: bias must have shape ({w.shape[1] * groups},), "
                         f"received {format_shape(inputs[2].shape)}")
    spatial = []
    for i in range(2):
        k = int(w.shape[2 + i])
        span = dilations[i] * (k - 1) + 1 + extra[i] - pads[i][0] - pads[i][1]
        out = add(mul(add(x.shape[1 + i], -1), strides[i]), span)
        if is_concrete(out) and out <= 0:
            raise ShapeError(f"conv2d_transpose: output axis {1 + i} would have size {out} "
                             f"(input {x.shape[1 + i]}, kernel {k}, stride {strides[i]}, pads "
                             f"{pads[i]})")
        spatial.append(out)
    return TensorType((x.shape[0], spatial[0], spatial[1], int(w.shape[1]) * groups), x.dtype)


def reference(inputs, params, attrs) -> np.ndarray:
    x, w = inputs[0], inputs[1]
    (sh, sw), (dh, dw), ((pt, pb), (pl, pr)), (eh, ew), groups = _geometry(attrs)
    n, h, wd, cin = x.shape
    _, cout_g, kh, kw = w.shape
    full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1 + eh, (wd - 1) * sw + dw * (kw - 1) + 1 + ew
    out = np.zeros((n, full_h, full_w, cout_g * groups), dtype=np.result_type(x, w))
    cin_g = cin // groups
    for g in range(groups):
        xg = x[..., g * cin_g:(g + 1) * cin_g]
        # (N, H, W, kh, kw, C_out/g): every input pixel's contribution at every kernel tap
        cols = np.tensordot(xg, w[g * cin_g:(g + 1) * cin_g], axes=([3], [0]))
        cols = cols.transpose(0, 1, 2, 4, 5, 3)
        dst = out[..., g * cout_g:(g + 1) * cout_g]
        for i in range(kh):
            for j in range(kw):
                dst[:, i * dh:i * dh + (h - 1) * sh + 1:sh,
                    j * dw:j * dw + (wd - 1) * sw + 1:sw] += cols[:, :, :, i, j]
    out = out[:, pt:full_h - pb, pl:full_w - pr]
    if len(inputs) > 2:
        out = out + inputs[2]
    return np.ascontiguousarray(out.astype(x.dtype, copy=False))


register(OpDef(
    name="conv2d_transpose", shape_rule=_rule, reference=reference,
    kernel="numpy:conv2d_transpose", num_inputs=None, min_inputs=2,
    doc="ONNX ConvTranspose (NHWC input; weight operand (C_in, C_out/groups, kh, kw), "
        "optional bias operand): strides, dilations, pads, output_padding, groups."))
