"""Dtypes at run time and in the artefacts: element-wise ops over dtypes and broadcasting
(hypothesis, against NumPy), the byte-addressed arena with mixed itemsizes, pickled int plans in
a subprocess, ``verify``'s dtype checks, ``to_dot``/``summary``/``to_config``."""

import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler import Input, Model, TensorSpec, compile, layers, ops
from compiler.dtypes import promote
from compiler.frontend.saving import model_from_config
from compiler.ir import verify
from compiler.reference import run_reference
from compiler.types import TensorType

DTYPES = ["float32", "int32", "int64", "bool"]
#: name -> (compiler.ops function, NumPy function, result: "promote" | "bool" | "float")
BINARY = {
    "add": (ops.add, np.add, "promote"), "subtract": (ops.subtract, np.subtract, "promote"),
    "multiply": (ops.multiply, np.multiply, "promote"),
    "maximum": (ops.maximum, np.maximum, "promote"),
    "minimum": (ops.minimum, np.minimum, "promote"),
    "divide": (ops.divide, np.divide, "float"), "greater": (ops.greater, np.greater, "bool"),
    "less_equal": (ops.less_equal, np.less_equal, "bool"), "equal": (ops.equal, np.equal, "bool"),
    "logical_and": (ops.logical_and, np.logical_and, "bool"),
    "logical_or": (ops.logical_or, np.logical_or, "bool"),
}
SHAPES = [((3, 4), (3, 4)), ((3, 4), (1, 4)), ((3, 1), (1, 4)), ((1, 4), (3, 1)), ((3, 4), (3, 1))]


def _data(rng, shape, dtype):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int"):
        return rng.integers(-4, 5, size=shape).astype(dtype)
    return rng.integers(-8, 9, size=shape).astype(dtype) / np.float32(2)  # exact halves


@given(st.sampled_from(sorted(BINARY)), st.sampled_from(DTYPES), st.sampled_from(DTYPES),
       st.sampled_from(SHAPES), st.integers(0, 2 ** 16))
def test_elementwise_ops_over_dtypes_and_broadcasting_match_numpy(name, da, db, shapes, seed):
    fn, np_fn, kind = BINARY[name]
    if kind == "promote" and "bool" in (da, db) and name == "subtract":
        return  # NumPy (and Keras) refuse boolean subtraction
    rng = np.random.default_rng(seed)
    a, b = _data(rng, (2,) + shapes[0], da), _data(rng, (2,) + shapes[1], db)
    if name == "divide":
        b = np.where(b == 0, 1, b).astype(b.dtype)
    x, y = Input(shapes[0], dtype=da, name="a"), Input(shapes[1], dtype=db, name="b")
    plan = compile(Model([x, y], fn(x, y)))
    common = promote([a.dtype, b.dtype])
    want = np_fn(a.astype(common), b.astype(common))
    if kind == "float":
        want = want.astype(common if common.kind == "f" else np.float32)
    got = plan(a, b)
    assert got.dtype == want.dtype, (name, da, db, got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_array_equal(run_reference(plan.graph, a, b), got)


def test_arena_reuses_buffers_of_different_itemsizes_safely():
    """A chain whose live values alternate float64, bool, int32, int64 and float32 buffers: the
    byte arena packs them at 64-byte-aligned offsets, never overlapping while both live, and the
    results equal the reference executor's."""
    x = Input((37,), name="x")
    ids = Input((37,), dtype="int32", name="ids")
    wide = ops.cast(x, "float64") * 3.0
    mask = wide > 0.5
    count = ops.cast(mask, "int32") + ids
    big = ops.cast(count, "int64") * ids
    back = ops.where(mask, ops.cast(big, "float32"), x)
    out = ops.sum(ops.cast(ops.logical_not(mask), "float32") + back, axis=-1)
    model = Model([x, ids], [out, big])
    rng = np.random.default_rng(3)
    xv = rng.normal(size=(5, 37)).astype(np.float32)
    iv = rng.integers(-3, 4, size=(5, 37)).astype(np.int32)
    for executor in ("codegen", "steps"):
        plan = compile(model, executor=executor)
        got = plan(xv, iv)
        ref = run_reference(plan.graph, xv, iv)
        for g, r in zip(got, ref):
            assert g.dtype == r.dtype
            np.testing.assert_allclose(g, r, rtol=1e-6)
        layout = plan.layout(xv, iv)
        itemsizes = {b.node: b.itemsize for b in plan.memory.buffers}
        assert len(set(itemsizes.values())) >= 3  # 8-byte, 4-byte and 1-byte buffers share it
        sizes = plan.memory.sizes(plan.signature.bind([xv, iv]))
        index = {s.node: i for i, s in enumerate(plan._steps)}
        spans = {b.node: (int(layout.offsets[index[b.node]]),
                          int(layout.offsets[index[b.node]]) + sizes[b.node], b.first, b.last)
                 for b in plan.memory.buffers}
        for n, (lo, hi, first, last) in spans.items():
            assert lo % 64 == 0 and hi <= layout.arena_bytes
            for m, (lo2, hi2, first2, last2) in spans.items():
                if n < m and first <= last2 and first2 <= last:  # both live at once
                    assert hi <= lo2 or hi2 <= lo, (n, m)
    want_big = ((xv.astype(np.float64) * 3 > 0.5).astype(np.int32) + iv).astype(np.int64) * iv
    np.testing.assert_array_equal(got[1], want_big)


_CHILD = """
import pickle, sys
import numpy as np
plan = pickle.loads(sys.stdin.buffer.read())
ids = np.array([[3, 0, 2], [1, 1, 4]], np.int32)
x = np.array([[0.5, -1.0, 2.0], [0.0, 3.0, -2.0]], np.float32)
outs = plan(ids, x)
sys.stdout.buffer.write(pickle.dumps([plan.executor] + [o for o in outs]))
"""


def test_pickled_int_plan_runs_in_another_process():
    ids, x = Input((3,), dtype="int32", name="ids"), Input((3,), name="x")
    table = np.arange(20, dtype=np.float32).reshape(5, 4)
    model = Model([ids, x], [ops.take(table, ids, axis=0), x > 0.0, ids * 2])
    plan = compile(model)
    blob = pickle.dumps(plan)
    done = subprocess.run([sys.executable, "-c", _CHILD], input=blob, capture_output=True,
                          timeout=600, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    executor, *outs = pickle.loads(done.stdout)
    iv = np.array([[3, 0, 2], [1, 1, 4]], np.int32)
    xv = np.array([[0.5, -1.0, 2.0], [0.0, 3.0, -2.0]], np.float32)
    here = plan(iv, xv)
    assert executor == plan.executor
    for theirs, ours in zip(outs, here):
        assert theirs.dtype == ours.dtype
        np.testing.assert_array_equal(theirs, ours)
    assert [o.dtype for o in here] == [np.float32, np.bool_, np.int32]
    assert pickle.loads(blob).signature.types[0].dtype == np.int32


# -- verify -------------------------------------------------------------------------------
def test_verify_names_node_op_and_dtype_an_op_does_not_accept():
    ids = Input((3,), dtype="int32", name="ids")
    plan = compile(Model(ids, ops.take(np.zeros((4, 2), np.float32), ids, axis=0)))
    g = plan.graph.copy()
    node = g.graph["inputs"][0]
    g.nodes[node]["type"] = TensorType(g.nodes[node]["type"].shape, np.dtype(np.float32))
    with pytest.raises(AssertionError, match=r"take.*does not accept operand dtypes "
                                             r"\['float32', 'float32'\]"):
        verify(g)


def test_verify_catches_a_node_whose_dtype_disagrees_with_its_op():
    x = Input((3,), name="x")
    plan = compile(Model(x, [x > 0.0, x * 2.0]))
    g = plan.graph.copy()
    cmp = next(n for n, d in g.nodes(data=True) if d["op"] == "greater")
    g.nodes[cmp]["type"] = TensorType(g.nodes[cmp]["type"].shape, np.dtype(np.float32))
    with pytest.raises(AssertionError, match=r"op greater on operand dtypes .* gives bool, the "
                                             r"node says float32"):
        verify(g)
    g.nodes[cmp]["type"] = TensorType(g.nodes[cmp]["type"].shape, np.dtype(np.float16))
    with pytest.raises(AssertionError, match="dtype float16 is not one of"):
        verify(g)


# -- artefacts -------------------------------------------------------------------------------
def _int_model():
    ids, x = Input((3,), dtype="int64", name="ids"), Input((3,), name="x")
    return Model([ids, x], [ops.cast(ids, "float32") + x, x > 1.0], name="typed")


def test_to_dot_and_summary_show_dtypes_that_are_not_the_model_dtype():
    model = _int_model()
    dot = compile(model).to_dot()
    edges = [line for line in dot.splitlines() if "->" in line]
    assert any("int64" in e for e in edges) and any(re.search(r"\(N1?, 3\) bool", e)
                                                     for e in edges)
    assert not any("float32" in e for e in edges)  # the model dtype is implied
    text = model.summary()
    assert re.search(r"\(N1?, 3\) int64", text) and re.search(r"\(N1?, 3\) bool", text)


def test_config_round_trip_keeps_input_dtypes():
    ids = Input((3,), dtype="int64", name="ids")
    model = Model(ids, [layers.Dense(2)(ids), layers.Flatten()(ids)], name="typed_layers")
    clone = model_from_config(model.to_config())
    clone.set_weights(model.get_weights())
    iv = np.array([[1, 2, 3]], np.int64)
    for a, b in zip(model(iv), clone(iv)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert [o.dtype for o in clone(iv)] == [np.float32, np.int64]
    assert compile(clone).signature.types[0].dtype == np.int64


def test_dask_predict_keeps_each_outputs_dtype():
    da = pytest.importorskip("dask.array")
    from runtime.dask import predict

    ids = Input((3,), dtype="int32", name="ids")
    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    model = Model(ids, [ops.take(table, ids, axis=0), ids > 2, ids * 3])
    iv = np.random.default_rng(4).integers(0, 6, size=(9, 3)).astype(np.int32)
    outs = predict(compile(model), da.from_array(iv, chunks=4))
    assert [o.dtype for o in outs] == [np.float32, np.bool_, np.int32]
    for lazy, want in zip(outs, compile(model)(iv)):
        got = lazy.compute(scheduler="threads")
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_compile_with_a_dtype_free_spec_keeps_the_declared_int_input():
    ids = Input((3,), dtype="int64", name="ids")
    plan = compile(Model(ids, ops.take(np.eye(4, dtype=np.float32), ids, axis=0)),
                   TensorSpec((None, 3)))
    assert plan.signature.types[0].dtype == np.int64
