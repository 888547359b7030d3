"""fuse_add_norm: Before -> pass -> Expected; outputs unchanged (reference and compiled, vs
the unfused plan and hand-written NumPy); idempotent; what must not fuse."""

import numpy as np
import pytest

from compiler import Input, Model, TensorSpec, compile, layers, lower
from compiler.passes import BUILD_PIPELINE, CompileContext, fuse_add_norm, run_pipeline
from compiler.reference import run_reference


def built_graph(model, *specs):
    g = lower(model, [s.to_type(model.dtype, i) for i, s in enumerate(specs)])
    return run_pipeline(g, BUILD_PIPELINE, CompileContext(seed=0))


def ops(g):
    return [d["op"] for _, d in sorted(g.nodes(data=True)) if d["op"] not in ("input", "param")]


def _post_norm_block(d=8, returned_sum=False, reuse_sum=False, broadcast=False):
    x = Input((None, d))
    other = Input((None, 1 if broadcast else d))
    h = layers.Dense(d)(x)
    total = layers.Add()([other, h]) if not broadcast else layers.Add()([h, other])
    y = layers.LayerNormalization(epsilon=1e-5)(total)
    outs = [y]
    if returned_sum:
        outs.append(total)
    if reuse_sum:
        outs = [layers.Add()([y, total])]
    return Model([x, other], outs if len(outs) > 1 else outs[0])


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.3, 0.5, w.shape) for w in model.get_weights()])


def _inputs(d=8, broadcast=False, dtype=np.float32):
    rng = np.random.default_rng(1)
    return (rng.normal(size=(2, 5, d)).astype(dtype),
            rng.normal(size=(2, 5, 1 if broadcast else d)).astype(dtype))


def test_residual_add_folds_into_the_norm():
    model = _post_norm_block()
    _randomize(model)
    g = built_graph(model, TensorSpec((None, None, 8)), TensorSpec((None, None, 8)))
    x, r = _inputs()
    before = run_reference(g, x, r)
    assert ops(g) == ["dense", "add", "layer_norm"]
    fuse_add_norm(g, CompileContext())
    assert ops(g) == ["dense", "add_layer_norm"]
    np.testing.assert_array_equal(run_reference(g, x, r), before)
    snapshot = [(n, dict(d)) for n, d in sorted(g.nodes(data=True))]
    fuse_add_norm(g, CompileContext())  # a second run changes nothing
    assert [(n, dict(d)) for n, d in sorted(g.nodes(data=True))] == snapshot


@pytest.mark.parametrize("kind", ["returned_sum", "reuse_sum", "broadcast"])
def test_what_does_not_fold(kind):
    model = _post_norm_block(**{kind: True})
    d2 = 1 if kind == "broadcast" else 8
    g = built_graph(model, TensorSpec((None, None, 8)), TensorSpec((None, None, d2)))
    fuse_add_norm(g, CompileContext())
    assert "add_layer_norm" not in ops(g) and "layer_norm" in ops(g)


def test_compiled_matches_unfused_and_numpy():
    model = _post_norm_block(d=40)
    _randomize(model, 3)
    specs = (TensorSpec((None, None, 40)), TensorSpec((None, None, 40)))
    fused = compile(model, *specs, tier="jit")
    plain = compile(model, *specs, tier="jit", disabled=("fuse_add_norm",))
    assert "add_layer_norm" in ops(fused.graph) and "add_layer_norm" not in ops(plain.graph)
    for n, t in ((1, 1), (3, 70), (0, 4)):  # 3 x 70 x 40 elements: the threaded path
        rng = np.random.default_rng(n + t)
        x = rng.normal(size=(n, t, 40)).astype(np.float32)
        r = rng.normal(size=(n, t, 40)).astype(np.float32)
        got = fused(x, r)
        np.testing.assert_allclose(got, plain(x, r), rtol=1e-5, atol=1e-5)
        kernel, bias, gamma, beta = (np.asarray(w, np.float64) for w in model.get_weights())
        s = (r + (x.astype(np.float64) @ kernel + bias).astype(np.float32)).astype(np.float64)
        mu = s.mean(-1, keepdims=True)
        want = (s - mu) / np.sqrt(((s - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * gamma + beta
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_non_finite_rows_stay_non_finite():
    model = _post_norm_block()
    _randomize(model)
    plan = compile(model, TensorSpec((None, None, 8)), TensorSpec((None, None, 8)), tier="jit")
    x, r = _inputs()
    r[0, 2, 3] = np.nan
    got = plan(x, r)
    assert np.isnan(got[0, 2]).all() and np.isfinite(np.delete(got[0], 2, axis=0)).all()


def test_fused_block_exports_to_onnx():
    """The export pipeline fuses too; the emitter writes the sum and the norm back out."""
    ort = pytest.importorskip("onnxruntime")
    from compiler import onnx as conx

    model = _post_norm_block()
    _randomize(model, 5)
    specs = (TensorSpec((None, None, 8)), TensorSpec((None, None, 8)))
    proto = conx.export(model, None, *specs)
    assert any(out.endswith("/sum") for n in proto.graph.node for out in n.output)  # fused
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x, r = _inputs()
    names = [i.name for i in session.get_inputs()]
    (theirs,) = session.run(None, dict(zip(names, (x, r))))
    np.testing.assert_allclose(theirs, compile(model, *specs, tier="jit")(x, r), rtol=1e-4,
                               atol=1e-5)
