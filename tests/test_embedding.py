"""Embedding (bounds-checked gather, any index rank, int or float indices), Masking and the
mask-aware 1-D global poolings: against NumPy, the reference executor and Keras 3."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import Input, Model, Sequential, TensorSpec, compile, layers
from compiler.ops.sequence import IndexOutOfRangeError
from compiler.reference import run_reference

os.environ.setdefault("KERAS_BACKEND", "torch")


def _table(layer):
    return layer.get_weights()[0]


@settings(max_examples=10)
@given(n=st.integers(1, 4), t=st.integers(1, 5), k=st.integers(1, 3), vocab=st.integers(1, 9),
       width=st.integers(1, 6))
def test_gather_any_rank_matches_numpy(n, t, k, vocab, width):
    emb = layers.Embedding(vocab, width)
    net = Sequential([Input((None, k)), emb])
    idx = np.random.default_rng(n * t + k).integers(0, vocab, (n, t, k))
    y = net(idx)
    np.testing.assert_array_equal(y, _table(emb)[idx])
    plan = compile(net, TensorSpec((None, None, k)))
    np.testing.assert_array_equal(run_reference(plan.graph, idx.astype(np.float32)), y)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
def test_index_dtypes(dtype):
    emb = layers.Embedding(50, 3)
    idx = np.array([[0, 49, 7], [3, 3, 1]], dtype)
    np.testing.assert_array_equal(emb(idx), _table(emb)[idx.astype(np.int64)])


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
@pytest.mark.parametrize("parallel", [False, True])
def test_kernel_takes_int_or_float_indices(dtype, parallel):
    from runtime.kernels.embedding import embedding, embedding_parallel

    table = np.arange(4 * 3, dtype=np.float32).reshape(4, 3)
    idx = np.array([[3, 0], [1, 1]], dtype)
    out = np.full((2, 2, 3), np.nan, np.float32)
    (embedding_parallel if parallel else embedding)(idx, table, out, 4, "layer 'e'")
    np.testing.assert_array_equal(out, table[idx.astype(np.int64)])
    bad = np.array([[3, 4]], dtype)
    out = np.full((1, 2, 3), -7.0, np.float32)
    with pytest.raises(IndexOutOfRangeError, match=r"layer 'e'.*index 4 .*\(0, 1\).*input_dim=4"):
        (embedding_parallel if parallel else embedding)(bad, table, out, 4, "layer 'e'")
    assert (out == -7.0).all()  # nothing gathered before the check


@pytest.mark.parametrize("bad", [-1, 10, 2.5, np.nan, 1e30, -1e30])
def test_out_of_range_index_names_layer_index_and_input_dim(bad):
    emb = layers.Embedding(10, 4, name="tokens")
    net = Sequential([Input((None,)), emb])
    x = np.array([[1.0, 2.0, bad]])
    with pytest.raises(IndexOutOfRangeError, match=r"layer 'tokens' \(Embedding\): index .* "
                                                   r"at position \(0, 2\).*input_dim=10"):
        net(x)
    plan = compile(net, TensorSpec((None, None)))
    with pytest.raises(IndexOutOfRangeError, match="tokens"):
        run_reference(plan.graph, x)
    np.testing.assert_array_equal(net(np.array([[1, 2, 9]])), _table(emb)[[[1, 2, 9]]])


def test_sizes_and_summary_before_and_after_first_call():
    net = Sequential([layers.Embedding(100, 16), layers.GlobalAveragePooling1D(),
                      layers.Dense(2)])
    assert net.layers[0].get_weights() == []  # the table waits for the model to be built
    before = net.summary(print_fn=lambda s: None)
    assert "embedding" in before
    y = net(np.zeros((3, 7)))
    assert y.shape == (3, 2)
    assert net.layers[0].get_weights()[0].shape == (100, 16)
    assert net.layers[2].get_weights()[0].shape == (16, 2)
    after = net.summary(print_fn=lambda s: None)
    assert "1,600" in after


def test_mask_is_an_ir_value_only_when_consumed():
    plain = Sequential([Input((None,)), layers.Embedding(9, 4, mask_zero=True),
                        layers.Dense(3)])
    ops = [d["op"] for _, d in compile(plain, TensorSpec((None, None))).graph.nodes(data=True)]
    assert "sequence_mask" not in ops
    pooled = Sequential([Input((None,)), layers.Embedding(9, 4, mask_zero=True),
                         layers.Dropout(0.1), layers.Dense(3), layers.GlobalAveragePooling1D()])
    g = compile(pooled, TensorSpec((None, None))).graph
    (mask,) = [n for n, d in g.nodes(data=True) if d["op"] == "sequence_mask"]
    (pool,) = [n for n, d in g.nodes(data=True) if d["op"] == "global_avg_pool1d"]
    assert g.has_edge(mask, pool) and g.nodes[pool]["attrs"]["masked"]


# -- Keras 3 -------------------------------------------------------------------------------------
keras = pytest.importorskip("keras")


def _pair(build):
    import compiler

    ours, theirs = build(compiler), build(keras)
    rng = np.random.default_rng(0)
    ours.set_weights([rng.normal(0, 0.5, w.shape) for w in ours.get_weights()])
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def _keras_out(model, x):
    return np.asarray(model.predict(x, verbose=0))


def test_embedding_pooling_with_mask_matches_keras():
    def build(lib):
        inp = lib.Input((None,))
        e = lib.layers.Embedding(20, 5, mask_zero=True)(inp)
        e = lib.layers.Dense(4)(lib.layers.Dropout(0.3)(e))  # both pass the mask on
        avg = lib.layers.GlobalAveragePooling1D()(e)
        mx = lib.layers.GlobalMaxPooling1D()(e)  # Keras 3 ignores the mask here
        return lib.Model(inp, lib.layers.Concatenate()([avg, mx]))

    ours, theirs = _pair(build)
    x = np.random.default_rng(1).integers(1, 20, (4, 6))
    x[0, 2:] = 0
    x[3, 0] = 0
    np.testing.assert_allclose(ours(x), _keras_out(theirs, x), rtol=1e-5, atol=1e-6)


def test_masking_layer_output_matches_keras():
    def build(lib):
        inp = lib.Input((None, 3))
        return lib.Model(inp, lib.layers.Masking(mask_value=2.0)(inp))

    ours, theirs = _pair(build)
    x = np.random.default_rng(2).normal(size=(2, 4, 3)).astype(np.float32)
    x[0, 1] = 2.0
    x[1, 3, 0] = 2.0  # only one feature: kept
    np.testing.assert_array_equal(ours(x), _keras_out(theirs, x))


def test_all_masked_average_is_nan_like_keras():
    net = Model(*(lambda i: (i, layers.GlobalAveragePooling1D()(
        layers.Embedding(5, 2, mask_zero=True)(i))))(Input((None,))))
    y = net(np.array([[0, 0, 0], [1, 0, 2]]))
    assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()
