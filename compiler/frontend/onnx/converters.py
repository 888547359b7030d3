"""ONNX op -> IR: one small function per ONNX op (or family), registered in ``CONVERTERS``.

A converter reads its operands through the ``Importer`` (run-time tensors, in the layout it
wants, or values known at import) and returns one value per ONNX output. NCHW ops (Conv, pooling,
BatchNormalization) run as our NHWC kernels: they ask for their input channels-last and return a
channels-last result; layout-agnostic ops (element-wise, Concat/Split/Reduce/Softmax over the
channel axis) keep whatever layout their inputs have. Ops without a kernel of their own are
compositions of primitives (HardSigmoid, HardSwish, Mish, Elu, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import CompilerError
from .graph import TO_NHWC, Importer, Tensor

Converter = Callable[[Importer, Any, dict], list]
CONVERTERS: dict[str, Converter] = {}
#: values an ONNX op's output is when the op is omitted (Identity-like ops)
INT_MAX = 2 ** 62


def converter(*names: str) -> Callable[[Converter], Converter]:
    def register(fn: Converter) -> Converter:
        for name in names:
            CONVERTERS[name] = fn
        return fn
    return register


def _fail(imp: Importer, message: str) -> CompilerError:
    return CompilerError(f"ONNX node '{imp.origin.name}' ({imp.origin.kind}): {message}")


def _scalar(imp: Importer, value: float) -> Tensor:
    return imp.constant(np.asarray(value, dtype=imp.dtype))


def _ew(imp: Importer, op: str, *operands: Any, attrs: dict | None = None) -> Tensor:
    """An element-wise op on tensors in one layout and Python scalars."""
    tensors = [x if isinstance(x, Tensor) else _scalar(imp, x) for x in operands]
    nhwc = any(t.nhwc for t in tensors)
    return imp.emit(op, tensors, attrs, nhwc=nhwc)


def _act(imp: Importer, x: Tensor, name: str, alpha: float | None = None) -> Tensor:
    attrs = {"activation": name}
    if alpha is not None:
        attrs["alpha"] = float(alpha)
    return imp.emit("activation", [x], attrs, nhwc=x.nhwc)


def _input(imp: Importer, node: Any, i: int) -> str:
    return node.input[i] if len(node.input) > i else ""


def _same_layout(imp: Importer, names: list[str]) -> tuple[list[Tensor], bool]:
    """Operands of a broadcasting op in one layout: channels-last when every run-time operand is
    a channels-last rank-4 tensor (constants are re-laid out), else the ONNX layout."""
    values = [imp.values[n] for n in names]
    runtime = [v for v in values if isinstance(v, Tensor)]
    nhwc = bool(runtime) and all(v.nhwc for v in runtime) and all(
        np.ndim(v) <= 4 for v in values if not isinstance(v, Tensor))
    out = []
    for name, v in zip(names, values):
        if isinstance(v, Tensor):
            out.append(imp.tensor(name, nhwc if v.type.rank == 4 else None))
        elif nhwc and np.ndim(v) > 1:
            def layout(a: np.ndarray) -> np.ndarray:
                return np.asarray(a).reshape((1,) * (4 - np.ndim(a)) + np.shape(a)).transpose(
                    TO_NHWC)
            out.append(imp.constant(layout(v), name, layout))  # a weight stays one
        else:
            out.append(imp.tensor(name))
    return out, nhwc


def _broadcast(imp: Importer, op: str, names: list[str], attrs: dict | None = None) -> Tensor:
    operands, nhwc = _same_layout(imp, names)
    if op in ("add", "subtract", "multiply", "maximum", "minimum", "average"):
        dtypes = {t.type.dtype for t in operands}
        if len(dtypes) > 1:
            operands = [t if t.type.dtype == imp.dtype else
                        imp.emit("cast", [t], {"dtype": imp.dtype.name}, nhwc=t.nhwc)
                        for t in operands]
    out = imp.emit(op, operands, attrs)
    out.nhwc = nhwc and out.type.rank == 4
    return out


# -- element-wise ---------------------------------------------------------------------------------
_BINARY = {"Add": "add", "Sub": "subtract", "Mul": "multiply", "Div": "divide", "Pow": "power",
           "Equal": "equal", "Less": "less", "Greater": "greater", "LessOrEqual": "less_equal",
           "GreaterOrEqual": "greater_equal", "And": "logical_and", "Or": "logical_or"}
_VARIADIC = {"Sum": "add", "Max": "maximum", "Min": "minimum", "Mean": "average"}


@converter(*_BINARY)
def _binary(imp: Importer, node: Any, attrs: dict) -> list:
    names = list(node.input[:2])
    if imp.opset < 7 and attrs.get("broadcast", 0) and attrs.get("axis") is not None:
        # opset-6 broadcast: B's dims align with A's from ``axis``, not from the right
        b = imp.require_known(names[1], "B of a legacy broadcast")
        rank_a = imp.rank(names[0])
        axis = attrs["axis"] % rank_a
        imp.values[names[1] + "#aligned"] = np.asarray(b).reshape(
            np.shape(b) + (1,) * (rank_a - axis - np.ndim(b)))
        names[1] = names[1] + "#aligned"
    return [_broadcast(imp, _BINARY[node.op_type], names)]


@converter(*_VARIADIC)
def _variadic(imp: Importer, node: Any, attrs: dict) -> list:
    names = [n for n in node.input if n]
    if len(names) == 1:
        return [imp.values[names[0]]]
    return [_broadcast(imp, _VARIADIC[node.op_type], names)]


@converter("Where")
def _where(imp: Importer, node: Any, attrs: dict) -> list:
    return [_broadcast(imp, "where", list(node.input[:3]))]


_UNARY = {"Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Abs": "abs", "Neg": "negative",
          "Erf": "erf", "Not": "logical_not"}
_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}


@converter(*_UNARY)
def _unary(imp: Importer, node: Any, attrs: dict) -> list:
    x = imp.tensor(node.input[0], None)
    return [imp.emit(_UNARY[node.op_type], [x], nhwc=x.nhwc)]


@converter(*_ACTIVATIONS)
def _activation(imp: Importer, node: Any, attrs: dict) -> list:
    return [_act(imp, imp.tensor(node.input[0], None), _ACTIVATIONS[node.op_type])]


@converter("LeakyRelu")
def _leaky_relu(imp: Importer, node: Any, attrs: dict) -> list:
    return [_act(imp, imp.tensor(node.input[0], None), "leaky_relu", attrs.get("alpha", 0.01))]


@converter("Gelu")
def _gelu(imp: Importer, node: Any, attrs: dict) -> list:
    x = imp.tensor(node.input[0], None)
    if attrs.get("approximate", "none") != "none":
        inner = _ew(imp, "multiply", _ew(imp, "add", x, _ew(imp, "multiply", 0.044715,
                                                            _ew(imp, "power", x, 3.0))),
                    math.sqrt(2 / math.pi))
        return [_ew(imp, "multiply", _ew(imp, "multiply", x, 0.5),
                    _ew(imp, "add", _act(imp, inner, "tanh"), 1.0))]
    return [_act(imp, x, "gelu")]


@converter("Reciprocal")
def _reciprocal(imp: Importer, node: Any, attrs: dict) -> list:
    return [_ew(imp, "divide", 1.0, imp.tensor(node.input[0], None))]


def _hard_sigmoid(imp: Importer, x: Tensor, alpha: float, beta: float) -> Tensor:
    y = _ew(imp, "add", _ew(imp, "multiply", x, alpha), beta)
    return _ew(imp, "minimum", _act(imp, y, "relu"), 1.0)


@converter("HardSigmoid")
def _hardsigmoid(imp: Importer, node: Any, attrs: dict) -> list:
    return [_hard_sigmoid(imp, imp.tensor(node.input[0], None), attrs.get("alpha", 0.2),
                          attrs.get("beta", 0.5))]


@converter("HardSwish")
def _hardswish(imp: Importer, node: Any, attrs: dict) -> list:
    x = imp.tensor(node.input[0], None)
    return [_ew(imp, "multiply", x, _hard_sigmoid(imp, x, 1 / 6, 0.5))]


def _softplus(imp: Importer, x: Tensor) -> Tensor:
    # log(1 + exp(x)) without overflow: relu(x) + log(1 + exp(-|x|))
    tail = _ew(imp, "log", _ew(imp, "add", _ew(imp, "exp", _ew(imp, "negative",
                                                                 _ew(imp, "abs", x))), 1.0))
    return _ew(imp, "add", _act(imp, x, "relu"), tail)


@converter("Softplus")
def _softplus_op(imp: Importer, node: Any, attrs: dict) -> list:
    return [_softplus(imp, imp.tensor(node.input[0], None))]


@converter("Softsign")
def _softsign(imp: Importer, node: Any, attrs: dict) -> list:
    x = imp.tensor(node.input[0], None)
    return [_ew(imp, "divide", x, _ew(imp, "add", _ew(imp, "abs", x), 1.0))]


@converter("Mish")
def _mish(imp: Importer, node: Any, attrs: dict) -> list:
    x = imp.tensor(node.input[0], None)
    return [_ew(imp, "multiply", x, _act(imp, _softplus(imp, x), "tanh"))]


def _exp_linear(imp: Importer, x: Tensor, alpha: float, scale: float = 1.0,
                divisor: float = 1.0) -> Tensor:
    """``scale * (x if x > 0 else alpha * (exp(x / divisor) - 1))`` (Elu, Selu, Celu)."""
    arg = x if divisor == 1.0 else _ew(imp, "divide", x, divisor)
    neg = _ew(imp, "multiply", _ew(imp, "subtract", _ew(imp, "exp", arg), 1.0), alpha)
    y = _ew(imp, "where", _ew(imp, "greater", x, 0.0), x, neg)
    return y if scale == 1.0 else _ew(imp, "multiply", y, scale)


@converter("Elu")
def _elu(imp: Importer, node: Any, attrs: dict) -> list:
    return [_exp_linear(imp, imp.tensor(node.input[0], None), attrs.get("alpha", 1.0))]


@converter("Selu")
def _selu(imp: Importer, node: Any, attrs: dict) -> list:
    return [_exp_linear(imp, imp.tensor(node.input[0], None),
                        attrs.get("alpha", 1.67326319217681884765625),
                        attrs.get("gamma", 1.05070102214813232421875))]


@converter("Celu")
def _celu(imp: Importer, node: Any, attrs: dict) -> list:
    alpha = attrs.get("alpha", 1.0)
    return [_exp_linear(imp, imp.tensor(node.input[0], None), alpha, divisor=alpha)]


@converter("PRelu")
def _prelu(imp: Importer, node: Any, attrs: dict) -> list:
    x, slope = _same_layout(imp, list(node.input[:2]))[0]
    neg = _ew(imp, "multiply", x, slope)
    out = imp.emit("where", [_ew(imp, "less", x, 0.0), neg, x])
    out.nhwc = x.nhwc and out.type.rank == 4
    return [out]


@converter("Clip")
def _clip(imp: Importer, node: Any, attrs: dict) -> list:
    x = imp.tensor(node.input[0], None)
    if imp.opset < 11:
        lo, hi = attrs.get("min"), attrs.get("max")
    else:
        lo = imp.require_known(node.input[1], "min") if _input(imp, node, 1) else None
        hi = imp.require_known(node.input[2], "max") if _input(imp, node, 2) else None
    lo = None if lo is None else float(np.asarray(lo))
    hi = None if hi is None else float(np.asarray(hi))
    if lo == 0.0 and hi == 6.0:
        return [_act(imp, x, "relu6")]
    if lo == 0.0:
        x = _act(imp, x, "relu")
    elif lo is not None:
        x = _ew(imp, "maximum", x, lo)
    if hi is not None:
        x = _ew(imp, "minimum", x, hi)
    return [x]


@converter("Identity", "Dropout")
def _identity(imp: Importer, node: Any, attrs: dict) -> list:
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        raise _fail(imp, "the mask output of Dropout is not supported (inference only)")
    return [imp.values[node.input[0]]]


@converter("Cast")
def _cast(imp: Importer, node: Any, attrs: dict) -> list:
    from .reader import _np_dtype

    x = imp.tensor(node.input[0], None)
    dtype = _np_dtype(attrs["to"], node.output[0])
    if dtype == x.type.dtype:
        return [x]
    return [imp.emit("cast", [x], {"dtype": dtype.name}, nhwc=x.nhwc)]
