"""The recurrent kernels called directly against the ops' NumPy references, serial and
threaded (batch blocks), over cells, flags, masks, initial states and activations; and the
float32 ``tanh``/``sigmoid`` approximations the gates use (accuracy, NaN/inf, vectorization).

Tolerance: the float32 gates are approximations within 3e-7 absolute of the exact functions
(``fastmath``), so kernel outputs are compared at ``rtol=1e-4, atol=2e-5`` after a few dozen
steps — the same bounds as the plan tests in ``test_recurrent.py``.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runtime.threads
from compiler.ops.recurrent import recurrent_reference
from runtime.kernels import recurrent as rk
from runtime.kernels.fastmath import sigmoid_array, tanh_array

CELLS = ("simple_rnn", "lstm", "gru")
STATES = {"simple_rnn": 1, "lstm": 2, "gru": 1}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def _case(rng, op, n, t, f, u, attrs, states, masked, dtype):
    g = GATES[op] * u
    x = rng.normal(size=(n, t, f)).astype(dtype)
    params = {"kernel": rng.normal(0, 0.4, (f, g)).astype(dtype),
              "recurrent_kernel": rng.normal(0, 0.4, (u, g)).astype(dtype)}
    if attrs.get("use_bias", True):
        shape = (2, g) if op == "gru" and attrs.get("reset_after", True) else (g,)
        params["bias"] = rng.normal(0, 0.3, shape).astype(dtype)
    inputs = [x] + [rng.normal(0, 0.5, (n, u)).astype(dtype) for _ in range(states)]
    if masked:
        inputs.append((rng.random((n, t)) > 0.3).astype(dtype))
    return inputs, params


def _run_kernel(op, inputs, params, attrs, parallel):
    want = recurrent_reference(op)(inputs, params, attrs)
    out = np.full(want.shape, np.nan, inputs[0].dtype)
    scalars = rk._scalars_for(rk._CELLS[op])(attrs, [a.shape for a in inputs], out.shape)
    bias = params.get("bias", np.zeros(0, inputs[0].dtype))
    fn = rk.recurrent_parallel if parallel else rk.recurrent
    fn(*inputs, params["kernel"], params["recurrent_kernel"], bias, out, *scalars)
    return out, want


# the monkeypatched thresholds are the same for every example, so sharing the fixture is fine
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op=st.sampled_from(CELLS), n=st.integers(1, 9), t=st.integers(0, 7),
       f=st.integers(0, 5), u=st.integers(1, 9), seqs=st.booleans(), back=st.booleans(),
       reverse=st.booleans(), zero_out=st.booleans(), bias=st.booleans(),
       reset_after=st.booleans(), masked=st.booleans(), states=st.booleans(),
       output=st.sampled_from(["sequence", "h", "c"]), parallel=st.booleans(),
       acts=st.sampled_from([("tanh", "sigmoid"), ("relu", "sigmoid"), ("tanh", "tanh")]),
       float64=st.booleans())
def test_kernel_matches_reference(monkeypatch, op, n, t, f, u, seqs, back, reverse, zero_out,
                                  bias, reset_after, masked, states, output, parallel, acts,
                                  float64):
    if output == "c" and op != "lstm":
        output = "h"
    # every batch row its own block: the threaded path runs even on tiny cases
    monkeypatch.setattr(rk, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(rk, "PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(rk, "MAX_COLUMNS", 3)
    monkeypatch.setattr(runtime.threads, "_DYNAMIC", False)  # threads even on a loaded machine
    attrs = {"units": u, "return_sequences": seqs, "go_backwards": back,
             "reverse_output": reverse, "zero_output_for_mask": zero_out, "use_bias": bias,
             "reset_after": reset_after, "masked": masked, "output": output,
             "activation": acts[0], "recurrent_activation": acts[1]}
    dtype = np.float64 if float64 else np.float32
    rng = np.random.default_rng(n * 1000 + t * 100 + f * 10 + u)
    inputs, params = _case(rng, op, n, t, f, u, attrs, STATES[op] if states else 0, masked,
                           dtype)
    got, want = _run_kernel(op, inputs, params, attrs, parallel)
    tol = dict(rtol=1e-10, atol=1e-12) if float64 else dict(rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(got, want, **tol)


@pytest.mark.parametrize("op", CELLS)
def test_benchmark_shape_threaded_matches_serial_and_reference(monkeypatch, op):
    """A batch wide enough for the real row threshold: blocks of rows on threads."""
    attrs = {"units": 24, "return_sequences": True}
    rng = np.random.default_rng(3)
    inputs, params = _case(rng, op, 40, 30, 16, 24, attrs, 0, False, np.float32)
    monkeypatch.setattr(rk, "PARALLEL_MIN_WORK", 1)
    monkeypatch.setattr(runtime.threads, "_DYNAMIC", False)
    threaded, want = _run_kernel(op, inputs, params, attrs, True)
    serial, _ = _run_kernel(op, inputs, params, attrs, False)
    np.testing.assert_allclose(threaded, want, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(threaded, serial, rtol=1e-4, atol=1e-5)  # BLAS blocks differ


def test_fast_tanh_and_sigmoid_accuracy():
    x = np.concatenate([np.linspace(-30, 30, 200_001), [0.0, 1e-30, -1e-8, 4e-4, 7.9, 8.0]])
    x = x.astype(np.float32)
    exact_t = np.tanh(x.astype(np.float64))
    exact_s = 1 / (1 + np.exp(-x.astype(np.float64)))
    t, s = np.empty_like(x), np.empty_like(x)
    tanh_array(x, t)
    sigmoid_array(x, s)
    assert np.abs(t - exact_t).max() < 3e-7
    assert np.abs(s - exact_s).max() < 3e-7
    ulps = np.abs(t - exact_t) / np.spacing(np.abs(exact_t).astype(np.float32))
    assert ulps.max() <= 5
    assert np.all(np.abs(t) <= 1) and np.all((s >= 0) & (s <= 1))
    assert np.array_equal(np.sign(t), np.sign(x))  # odd: tanh(-x) = -tanh(x), 0 stays 0


def test_fast_tanh_and_sigmoid_special_values():
    x = np.array([np.nan, np.inf, -np.inf], np.float32)
    t, s = np.empty_like(x), np.empty_like(x)
    tanh_array(x, t)
    sigmoid_array(x, s)
    assert np.isnan(t[0]) and np.isnan(s[0])
    np.testing.assert_allclose(t[1:], [1, -1], atol=3e-7)
    np.testing.assert_allclose(s[1:], [1, 0], atol=3e-7)


def test_fast_tanh_vectorizes():
    """The point of the approximation: the loop compiles to packed AVX2 arithmetic."""
    llvm = pytest.importorskip("llvmlite.binding")
    if "+avx2" not in llvm.get_host_cpu_features().flatten():
        pytest.skip("no AVX2 on this machine")
    from numba import njit

    from runtime.kernels.flags import JIT

    fresh = njit(**{**JIT, "cache": False})(tanh_array.py_func)  # cached code has no asm
    x = np.zeros(16, np.float32)
    fresh(x, x.copy())
    asm = "\n".join(fresh.inspect_asm().values())
    assert "vdivps" in asm and "ymm" in asm
