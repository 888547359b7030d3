"""MultiHeadAttention, PositionEmbedding and Transformer blocks against NumPy, Keras and PyTorch.

The NumPy reference here is written from Keras' formulas (per head, with loops), independent
of the op's own reference; PyTorch's ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer``
get the same weights converted from Keras' layout.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import CompilerError, Input, Model, ShapeError, TensorSpec, compile, layers
from compiler.reference import run_reference

os.environ.setdefault("KERAS_BACKEND", "torch")
RTOL, ATOL = 1e-4, 2e-5


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _normal(rng, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def numpy_mha(query, value, weights, heads, key_dim, key=None, mask=None, causal=False):
    """Keras MultiHeadAttention.call at inference, written out per head in float64."""
    key = value if key is None else key
    wq, bq, wk, bk, wv, bv, wo, bo = (w.astype(np.float64) for w in weights)
    n, tq, _ = query.shape
    tv = value.shape[1]
    out = np.zeros((n, tq, wo.shape[2]))
    for b in range(n):
        for h in range(heads):
            q = query[b] @ wq[:, h] + bq[h]
            k = key[b] @ wk[:, h] + bk[h]
            v = value[b] @ wv[:, h] + bv[h]
            scores = (q / np.sqrt(key_dim)) @ k.T
            keep = np.ones((tq, tv), bool)
            if mask is not None:
                keep &= mask[b] > 0.5
            if causal:
                keep &= np.arange(tq)[:, None] >= np.arange(tv)[None, :]
            scores = np.where(keep, scores, -1e9)
            p = np.exp(scores - scores.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            out[b] += (p @ v) @ wo[h]
    return out + bo


# -- against NumPy -------------------------------------------------------------------------------
def test_weights_are_deferred_and_keras_shaped():
    mha = layers.MultiHeadAttention(num_heads=3, key_dim=5, value_dim=4)
    assert mha.get_weights() == []
    rng = _rng()
    q, v, k = _normal(rng, 2, 6, 7), _normal(rng, 2, 9, 11), _normal(rng, 2, 9, 13)
    mha(q, v, key=k)
    assert [w.shape for w in mha.get_weights()] == [
        (7, 3, 5), (3, 5), (13, 3, 5), (3, 5), (11, 3, 4), (3, 4), (3, 4, 7), (7,)]


@pytest.mark.parametrize("form", ["self", "cross_key", "mask", "causal", "mask_causal",
                                  "no_bias_output_shape"])
def test_mha_matches_numpy(form):
    rng = _rng(1)
    heads, key_dim = 2, 4
    q, v = _normal(rng, 3, 5, 6), _normal(rng, 3, 8, 10)
    k = _normal(rng, 3, 8, 9) if form == "cross_key" else None
    mask = (rng.random((3, 5, 8)) > 0.4).astype(np.float32) if "mask" in form else None
    causal = "causal" in form
    if form in ("self", "causal", "mask_causal"):
        v = q
        if mask is not None:
            mask = mask[:, :, :5]
    kwargs = {"use_bias": False, "output_shape": 3} if form == "no_bias_output_shape" else {}
    mha = layers.MultiHeadAttention(heads, key_dim, **kwargs)
    y = mha(q, v, key=k, attention_mask=mask, use_causal_mask=causal)
    weights = mha.get_weights()
    if form == "no_bias_output_shape":
        assert y.shape == (3, 5, 3) and len(weights) == 4
        wq, wk, wv, wo = weights
        weights = [wq, np.zeros((heads, key_dim)), wk, np.zeros((heads, key_dim)), wv,
                   np.zeros((heads, key_dim)), wo, np.zeros(3)]
    expected = numpy_mha(q, v, weights, heads, key_dim, key=k, mask=mask, causal=causal)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)


def test_fully_masked_rows_average_the_values_as_keras_does():
    rng = _rng(2)
    q = _normal(rng, 1, 4, 6)
    mask = np.ones((1, 4, 4), np.float32)
    mask[0, 2] = 0.0  # query 2 may attend nothing: Keras' -1e9 makes its softmax uniform
    mha = layers.MultiHeadAttention(2, 3)
    y = mha(q, q, attention_mask=mask)
    expected = numpy_mha(q, q, mha.get_weights(), 2, 3, mask=mask)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)


def test_nan_in_one_sample_stays_in_that_sample():
    rng = _rng(9)
    q = _normal(rng, 3, 70, 6)  # two blocks of query rows
    q[1, 5, 2] = np.nan
    mha = layers.MultiHeadAttention(2, 3)
    y = mha(q, q)
    expected = numpy_mha(q, q, mha.get_weights(), 2, 3)
    assert np.isnan(y[1]).any() and not np.isnan(y[[0, 2]]).any()
    np.testing.assert_allclose(y[[0, 2]], expected[[0, 2]], rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))


@settings(max_examples=12)
@given(n=st.integers(1, 3), tq=st.integers(1, 70), tv=st.integers(1, 70),
       heads=st.integers(1, 3), key_dim=st.integers(1, 6), causal=st.booleans(),
       masked=st.booleans(), seed=st.integers(0, 1000))
def test_attention_matches_numpy_over_shapes(n, tq, tv, heads, key_dim, causal, masked, seed):
    """Across block boundaries (64 query rows), Tq != Tv, masks and causal masking."""
    rng = _rng(seed)
    q, v = _normal(rng, n, tq, 5), _normal(rng, n, tv, 4)
    mask = (rng.random((n, tq, tv)) > 0.3).astype(np.float32) if masked else None
    x_q, x_v = Input((None, 5)), Input((None, 4))
    inputs = [x_q, x_v]
    if masked:
        inputs.append(Input((None, None)))
    mha = layers.MultiHeadAttention(heads, key_dim)
    model = Model(inputs, mha(x_q, x_v, attention_mask=inputs[2] if masked else None,
                              use_causal_mask=causal))
    arrays = [q, v] + ([mask] if masked else [])
    plan = compile(model)
    y = plan(*arrays)
    expected = numpy_mha(q, v, mha.get_weights(), heads, key_dim, mask=mask, causal=causal)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(run_reference(plan.graph, *arrays), expected, rtol=RTOL,
                               atol=ATOL)


def test_one_plan_serves_every_length_without_recompiling():
    from numba.core import event

    x = Input((None, 16))
    model = Model(x, layers.MultiHeadAttention(2, 8)(x, x, use_causal_mask=True))
    plan = compile(model, TensorSpec((None, None, 16)))
    rng = _rng(3)
    plan(_normal(rng, 2, 5, 16))
    plan(_normal(rng, 2, 300, 16))  # serial and parallel paths both compiled now
    with event.install_recorder("numba:compile") as recorder:
        for t in (1, 7, 64, 65, 130):
            x_t = _normal(rng, 2, t, 16)
            expected = numpy_mha(x_t, x_t, model.get_weights(), 2, 8, causal=True)
            np.testing.assert_allclose(plan(x_t), expected, rtol=RTOL, atol=ATOL)
    assert recorder.buffer == []


# -- against Keras and PyTorch -------------------------------------------------------------------
def _keras():
    return pytest.importorskip("keras")


def _keras_numpy(keras, y) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(y))


@pytest.mark.parametrize("causal", [False, True])
def test_mha_matches_keras_with_the_same_weights(causal):
    keras = _keras()
    rng = _rng(4)
    q, v = _normal(rng, 2, 6, 12), _normal(rng, 2, 6, 10)
    mha = layers.MultiHeadAttention(3, 4, value_dim=5)
    y = mha(q, v, use_causal_mask=causal)
    ref = keras.layers.MultiHeadAttention(3, 4, value_dim=5)
    ref(q, v)
    assert [w.shape for w in ref.get_weights()] == [w.shape for w in mha.get_weights()]
    ref.set_weights(mha.get_weights())
    np.testing.assert_allclose(y, _keras_numpy(keras, ref(q, v, use_causal_mask=causal)),
                               rtol=RTOL, atol=ATOL)


def test_position_embedding_matches_keras_hub_semantics():
    rng = _rng(5)
    x = _normal(rng, 2, 7, 6)
    pos = layers.PositionEmbedding(sequence_length=10)
    y = pos(x)
    (table,) = pos.get_weights()
    assert table.shape == (10, 6)
    np.testing.assert_array_equal(y, np.broadcast_to(table[:7], x.shape))
    with pytest.raises(ShapeError, match=r"PositionEmbedding.*sequence_length=10.*received 11"):
        pos(_normal(rng, 2, 11, 6))


def _torch():
    return pytest.importorskip("torch")


def _torch_mha_from_keras(torch, weights, heads, key_dim):
    wq, bq, wk, bk, wv, bv, wo, bo = weights
    d = wq.shape[0]
    m = torch.nn.MultiheadAttention(d, heads, batch_first=True)
    with torch.no_grad():
        m.in_proj_weight.copy_(torch.from_numpy(np.concatenate(
            [w.reshape(d, heads * key_dim).T for w in (wq, wk, wv)])))
        m.in_proj_bias.copy_(torch.from_numpy(np.concatenate([b.ravel() for b in (bq, bk, bv)])))
        m.out_proj.weight.copy_(torch.from_numpy(wo.reshape(heads * key_dim, d).T))
        m.out_proj.bias.copy_(torch.from_numpy(bo))
    return m.eval()


@pytest.mark.parametrize("causal", [False, True])
def test_mha_matches_torch_multihead_attention(causal):
    torch = _torch()
    rng = _rng(6)
    d, heads = 16, 4
    x = _normal(rng, 3, 9, d)
    mha = layers.MultiHeadAttention(heads, d // heads)
    y = mha(x, x, use_causal_mask=causal)
    ref = _torch_mha_from_keras(torch, mha.get_weights(), heads, d // heads)
    t = torch.from_numpy(x)
    mask = torch.triu(torch.ones(9, 9, dtype=torch.bool), 1) if causal else None
    with torch.no_grad():
        expected = ref(t, t, t, attn_mask=mask, need_weights=False)[0].numpy()
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)


def encoder_block(d: int, heads: int, ffn: int, activation: str, epsilon: float = 1e-5,
                  name: str = "block") -> Model:
    """A post-norm Transformer encoder block (``nn.TransformerEncoderLayer(norm_first=False)``)."""
    x = Input((None, d))
    attended = layers.MultiHeadAttention(heads, d // heads)(x, x)
    h = layers.LayerNormalization(epsilon=epsilon)(layers.Add()([x, attended]))
    f = layers.Dense(ffn, activation=activation)(h)
    f = layers.Dense(d)(f)
    return Model(x, layers.LayerNormalization(epsilon=epsilon)(layers.Add()([h, f])), name=name)


def torch_encoder_from(torch, block: Model, d: int, heads: int, ffn: int, activation: str):
    """``nn.TransformerEncoderLayer`` holding ``block``'s weights (eval mode)."""
    mha, ln1, dense1, dense2, ln2 = (
        layer for layer in block.layers if layer.get_weights())
    ref = torch.nn.TransformerEncoderLayer(d, heads, ffn, dropout=0.0, activation=activation,
                                           batch_first=True, norm_first=False)
    attn = _torch_mha_from_keras(torch, mha.get_weights(), heads, d // heads)
    with torch.no_grad():
        ref.self_attn.load_state_dict(attn.state_dict())
        for lin, dense in ((ref.linear1, dense1), (ref.linear2, dense2)):
            kernel, bias = dense.get_weights()
            lin.weight.copy_(torch.from_numpy(kernel.T))
            lin.bias.copy_(torch.from_numpy(bias))
        for norm, ln in ((ref.norm1, ln1), (ref.norm2, ln2)):
            gamma, beta = ln.get_weights()
            norm.weight.copy_(torch.from_numpy(gamma))
            norm.bias.copy_(torch.from_numpy(beta))
    return ref.eval()


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_block_matches_torch_transformer_encoder_layer(activation):
    torch = _torch()
    d, heads, ffn = 32, 4, 64
    block = encoder_block(d, heads, ffn, activation)
    rng = _rng(7)
    x = _normal(rng, 2, 13, d)
    y = block(x)
    ref = torch_encoder_from(torch, block, d, heads, ffn, activation)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    # the same plan for another length
    x2 = _normal(rng, 1, 40, d)
    with torch.no_grad():
        np.testing.assert_allclose(block(x2), ref(torch.from_numpy(x2)).numpy(), rtol=1e-4,
                                   atol=1e-4)


# -- errors --------------------------------------------------------------------------------------
def test_feature_size_mismatch_after_first_call_names_the_layer():
    mha = layers.MultiHeadAttention(2, 4, name="attn")
    x6 = np.zeros((1, 3, 6), np.float32)
    mha(x6, x6)  # the width is deferred to this first call
    x7 = np.zeros((1, 3, 7), np.float32)
    with pytest.raises(ShapeError, match=r"layer 'attn'.*\(6, 2, 4\)"):
        mha(x7, x7)
    assert mha.get_weights()[0].shape == (6, 2, 4)  # a failed call leaves the layer as it was
    np.testing.assert_array_equal(mha(x6, x6), mha(x6, x6))


def test_eager_calls_serve_every_length_and_mask_shape():
    mha = layers.MultiHeadAttention(2, 3)
    rng = _rng(8)
    for tq, tv in ((3, 4), (6, 2), (1, 9)):
        q, v = _normal(rng, 2, tq, 5), _normal(rng, 2, tv, 5)
        mask = (rng.random((2, tq, tv)) > 0.5).astype(np.float32)
        y = mha(q, v, attention_mask=mask)
        expected = numpy_mha(q, v, mha.get_weights(), 2, 3, mask=mask)
        np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)
    assert len(mha.__dict__["_eager_models"]) == 1


def test_mha_with_fixed_width_refuses_another_width_in_a_new_model():
    mha = layers.MultiHeadAttention(2, 4, name="attn2")
    mha(np.zeros((1, 3, 6), np.float32), np.zeros((1, 3, 6), np.float32))
    x = Input((None, 5))
    with pytest.raises(ShapeError, match=r"attn2"):
        mha(x, x)


def test_call_form_is_fixed_and_unsupported_options_are_refused():
    mha = layers.MultiHeadAttention(2, 4, name="attn3")
    x = Input((None, 6))
    mha(x, x)
    with pytest.raises(CompilerError, match=r"attn3.*use_causal_mask=False.*use_causal_mask=True"):
        mha(x, x, use_causal_mask=True)
    with pytest.raises(CompilerError, match=r"attn3.*return_attention_scores=False, now with "
                                            r"True"):
        mha(x, x, return_attention_scores=True)
    with pytest.raises(CompilerError, match=r"num_heads"):
        layers.MultiHeadAttention(0, 4)


def test_mismatched_sequence_lengths_are_a_shape_error():
    q, v, k = Input((4, 6)), Input((5, 6)), Input((6, 6))
    with pytest.raises(ShapeError, match=r"multi_head_attention.*key axis 1"):
        layers.MultiHeadAttention(2, 3)(q, v, key=k)
    mask = Input((4, 7))
    with pytest.raises(ShapeError, match=r"attention_mask axis 2"):
        layers.MultiHeadAttention(2, 3)(q, v, attention_mask=mask)


@pytest.mark.parametrize("form", ["key", "mask_causal"])
def test_models_with_attention_round_trip_through_their_config(form):
    q_in, v_in = Input((None, 6)), Input((None, 5))
    inputs = [q_in, v_in]
    mha = layers.MultiHeadAttention(2, 3)
    if form == "key":
        k_in = Input((None, 4))
        inputs.append(k_in)
        out = mha(q_in, v_in, key=k_in)
    else:
        m_in = Input((None, None))
        inputs.append(m_in)
        out = mha(q_in, v_in, attention_mask=m_in, use_causal_mask=True)
    model = Model(inputs, out)
    rng = _rng(10)
    arrays = [_normal(rng, 2, 4, 6), _normal(rng, 2, 4, 5)]
    arrays.append(_normal(rng, 2, 4, 4) if form == "key" else
                  (rng.random((2, 4, 4)) > 0.3).astype(np.float32))
    clone = Model.from_config(model.to_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(*arrays), model(*arrays), rtol=RTOL, atol=ATOL)


def test_empty_sequences_and_boolean_masks():
    rng = _rng(11)
    x, v = Input((None, 6)), Input((None, 6))
    plan = compile(Model([x, v], layers.MultiHeadAttention(2, 3)(x, v)))
    q, empty = _normal(rng, 2, 4, 6), np.zeros((2, 0, 6), np.float32)
    no_keys = plan(q, empty)  # nothing to attend: a zero context, then the output bias
    np.testing.assert_array_equal(no_keys, run_reference(plan.graph, q, empty))
    assert plan(empty, q).shape == (2, 0, 6)
    mha = layers.MultiHeadAttention(2, 3)
    mask = rng.random((2, 4, 4)) > 0.5
    y = mha(q, q, attention_mask=mask)
    np.testing.assert_allclose(y, numpy_mha(q, q, mha.get_weights(), 2, 3, mask=mask),
                               rtol=RTOL, atol=ATOL)
