"""Import of ONNX ``RNN``/``LSTM``/``GRU`` onto our Keras-layout recurrent ops.

The inverse of ``export_sequence.py``: weights known at import are re-laid out once (ONNX's
``(gates*units, in)`` transposed; LSTM gates i, o, f, c -> Keras' i, f, c, o; the input and
recurrent biases summed, except GRU with ``linear_before_reset`` which keeps both as Keras'
``reset_after`` bias ``(2, 3u)``); ``X`` is time-major, so it is transposed to ``(N, T, F)``.
Supported: ``direction`` forward/reverse, ``layout`` 0, ``sequence_lens`` (as our step mask with
zero outputs past each row's length, as ONNX defines them); no peepholes, ``clip`` or
``input_forget``; activations tanh/sigmoid/relu. Anything else is refused naming the node.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ops.recurrent import packed_part
from ...symbolic import is_concrete
from .converters import _fail, _input, converter
from .graph import Importer, Tensor
from .run_time_dims import positions

_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
_OP = {"RNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}
_KERAS_FROM_ONNX_LSTM = (0, 2, 3, 1)  # Keras i, f, c, o from ONNX blocks i, o, f, c
_ACTIVATIONS = {"Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu"}


def _keras_gates(w: np.ndarray, kind: str) -> np.ndarray:
    """ONNX gate blocks (last axis) in Keras' order."""
    if kind != "LSTM":
        return w
    u = w.shape[-1] // 4
    return np.concatenate([w[..., g * u:(g + 1) * u] for g in _KERAS_FROM_ONNX_LSTM], axis=-1)


def _activations(imp: Importer, kind: str, attrs: dict) -> dict:
    default = {"RNN": ["Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"],
               "GRU": ["Sigmoid", "Tanh"]}[kind]
    names = [a.decode() if isinstance(a, bytes) else str(a)
             for a in attrs.get("activations", default)]
    if len(names) != len(default) or any(n not in _ACTIVATIONS for n in names):
        raise _fail(imp, f"activations {names} are not supported (one direction; each of "
                         f"{sorted(_ACTIVATIONS)})")
    if kind == "LSTM" and names[1] != names[2]:
        raise _fail(imp, f"LSTM activations g and h must be equal, received {names}")
    if kind == "RNN":
        return {"activation": _ACTIVATIONS[names[0]]}
    return {"recurrent_activation": _ACTIVATIONS[names[0]],
            "activation": _ACTIVATIONS[names[1]]}


@converter("RNN", "LSTM", "GRU")
def _recurrent(imp: Importer, node: Any, attrs: dict) -> list:
    kind = node.op_type
    direction = attrs.get("direction", "forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction not in ("forward", "reverse"):
        raise _fail(imp, f"direction {direction!r} is not supported (forward or reverse)")
    for name in ("clip", "input_forget"):
        if attrs.get(name):
            raise _fail(imp, f"attribute {name} is not supported")
    if int(attrs.get("layout", 0)) != 0:
        raise _fail(imp, "layout=1 (batch-major) is not supported")
    if kind == "LSTM" and _input(imp, node, 7):
        raise _fail(imp, "peepholes are not supported")
    units = int(attrs["hidden_size"])
    g = _GATES[kind]
    w = imp.require_known(node.input[1], "W")
    r = imp.require_known(node.input[2], "R")
    if np.shape(w)[:2] != (1, g * units) or np.shape(r) != (1, g * units, units):
        raise _fail(imp, f"W {np.shape(w)} / R {np.shape(r)} do not fit hidden_size={units} "
                         f"with one direction")
    kernel = _keras_gates(np.asarray(w[0]).T, kind)
    recurrent = _keras_gates(np.asarray(r[0]).T, kind)
    reset_after = bool(int(attrs.get("linear_before_reset", 0))) if kind == "GRU" else None
    params = {"kernel": imp.weight_param(node.input[1], "kernel", np.ascontiguousarray(kernel)),
              "recurrent_kernel": imp.weight_param(node.input[2], "recurrent_kernel",
                                                   np.ascontiguousarray(recurrent))}
    b_name = _input(imp, node, 3)
    if b_name:
        b = np.asarray(imp.require_known(b_name, "B"))[0]
        wb, rb = _keras_gates(b[:g * units], kind), _keras_gates(b[g * units:], kind)
        bias = np.stack([wb, rb]) if reset_after else wb + rb
        params["bias"] = imp.weight_param(b_name, "bias", np.ascontiguousarray(bias))
    elif reset_after:
        b_name = None  # Keras' reset_after bias is (2, 3u): zeros stand for the absent one
        params["bias"] = imp.weight_param("", "bias", np.zeros((2, g * units)))
    x = imp.emit("transpose", [imp.tensor(node.input[0])], {"axes": (1, 0, 2)})  # (N, T, F)
    states = []
    for i in ((5, 6) if kind == "LSTM" else (5,)):
        name = _input(imp, node, i)
        if name:
            states.append(imp.emit("squeeze", [imp.tensor(name)], {"axis": 0}))
    if states and len(states) != (2 if kind == "LSTM" else 1):
        raise _fail(imp, "LSTM needs both initial_h and initial_c, or neither")
    lens = _input(imp, node, 4)
    if lens:
        states.append(_step_mask(imp, node.input[0], lens))
    base = {"units": units, **_activations(imp, kind, attrs), "use_bias": "bias" in params,
            "go_backwards": direction == "reverse", "reverse_output": direction == "reverse"}
    if lens:  # ONNX: steps past a row's length output zeros and leave the state as it was
        base.update(masked=True, zero_output_for_mask=True)
    if kind == "GRU":
        base["reset_after"] = reset_after
    used = [bool(name) and name in getattr(imp, "consumed", {name}) for name in node.output]
    packed = None
    if sum(used) > 1:  # one run for every output read: ``output="all"`` sliced (ops.recurrent)
        packed = imp.emit(_OP[kind], [x] + states,
                          {**base, "output": "all", "return_sequences": used[0]}, params)
    outs = []
    for slot, needed in enumerate(used):
        if not needed:
            outs.append(None)  # an unused output: no node (the IR allows none dangling)
            continue
        if packed is None:
            y = imp.emit(_OP[kind], [x] + states,
                         {**base, "output": ("sequence", "h", "c")[slot],
                          "return_sequences": slot == 0}, params)
        else:
            start, shape, squeeze = packed_part(_OP[kind], ("sequence", "h", "c")[slot], used[0])
            y = imp.emit("slice", [packed], {"start": start, "shape": shape})
            if squeeze:
                y = imp.emit("squeeze", [y], {"axis": 1})
        if slot == 0:  # (N, T, u) -> (T, 1, N, u)
            y = imp.emit("transpose", [y], {"axes": (1, 0, 2)})
            y = imp.emit("expand_dims", [y], {"axis": 1})
        else:          # (N, u) -> (1, N, u)
            y = imp.emit("expand_dims", [y], {"axis": 0})
        outs.append(y)
    return outs


def _step_mask(imp: Importer, x_name: str, lens_name: str) -> Tensor:
    """``sequence_lens (N,)`` as our ``(N, T)`` step mask: ``t < lens[n]`` (post-padded rows,
    ONNX's only form; the model dtype, as Keras masks reach the kernels)."""
    steps = imp.shape(x_name)[0]
    if is_concrete(steps):
        pos = imp.constant(np.arange(int(steps), dtype=np.int64))
    else:
        pos = positions(imp, steps)
        if pos is None:
            raise _fail(imp, f"sequence_lens needs the run-time length {steps} of X")
    lens = imp.tensor(lens_name)
    if lens.type.dtype != np.int64:
        lens = imp.emit("cast", [lens], {"dtype": "int64"})
    keep = imp.emit("less", [imp.emit("expand_dims", [pos], {"axis": 0}),
                             imp.emit("expand_dims", [lens], {"axis": 1})])
    return imp.emit("cast", [keep], {"dtype": imp.dtype.name})
