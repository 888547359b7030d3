"""Shared helpers for the Keras interop tests: random non-trivial weights, outputs compared."""

import os

import numpy as np
import pytest

import compiler

ATOL = 1e-4


def keras_module():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def randomize(model, seed=0):
    """Every Keras weight random; variances (BatchNorm) positive."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if hasattr(layer, "layers"):
            randomize(layer, seed + 1)
            continue
        weights = layer.get_weights()
        if weights:
            new = [rng.uniform(0.5, 1.5, w.shape) if "variance" in v.path else
                   rng.normal(0, 0.5, w.shape) for w, v in zip(weights, layer.weights)]
            layer.set_weights([n.astype(w.dtype) for n, w in zip(new, weights)])


def keras_out(keras, model, *xs):
    out = model(list(xs) if len(xs) > 1 else xs[0])
    if isinstance(out, (list, tuple)):
        return [keras.ops.convert_to_numpy(o) for o in out]
    return keras.ops.convert_to_numpy(out)


def compare(expected, ours, atol=ATOL):
    if isinstance(expected, list):
        assert isinstance(ours, (list, tuple)) and len(expected) == len(ours)
        for e, o in zip(expected, ours):
            compare(e, o, atol)
        return
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=atol, rtol=0)


def deferc_out(model, *xs):
    """deferc's outputs from the NumPy reference executor on the compiled IR. What these tests
    check is the files (configs, weight paths, masks), not the kernels, which are tested
    against this same reference elsewhere; so no model-specific code is jitted here."""
    from compiler import TensorSpec
    from compiler.driver import COMPILE_PIPELINE, build_graph
    from compiler.reference import run_reference

    specs = [TensorSpec((None,) + a.shape[1:], str(a.dtype)) for a in xs]
    graph, _ = build_graph(model, specs, COMPILE_PIPELINE)
    return run_reference(graph, *xs)


def from_keras(keras, kmodel, path, *xs, atol=ATOL):
    """Save with Keras, load with deferc, compare on ``xs``; the deferc model."""
    kmodel.save(path)
    ours = compiler.load_model(path)
    compare(keras_out(keras, kmodel, *xs), deferc_out(ours, *xs), atol)
    return ours


def to_keras(keras, model, path, *xs, atol=ATOL):
    """Save with deferc, load with Keras, compare on ``xs``; the Keras model."""
    model.save(path)
    kmodel = keras.saving.load_model(path)
    compare(keras_out(keras, kmodel, *xs), deferc_out(model, *xs), atol)
    return kmodel


def x(*shape, seed=1, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def tokens(n, t, vocab, seed=2, pad=True):
    """Int32 token ids in ``[1, vocab)``, each row right-padded with zeros (padding 0) to a
    different length when ``pad``."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(n, t)).astype(np.int32)
    if pad:
        for i in range(n):
            ids[i, max(1, t - i):] = 0
    return ids
