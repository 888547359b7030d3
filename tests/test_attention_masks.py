"""``MultiHeadAttention`` with propagated masks, broadcastable ``attention_mask`` and
``return_attention_scores``: compared with Keras 3 (torch backend) on the same weights."""

from __future__ import annotations

import os

import numpy as np
import pytest

from compiler import Input, Model, layers
from compiler.errors import CompilerError

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

RNG = np.random.default_rng(11)
TOL = {"rtol": 1e-4, "atol": 1e-5}


def _np(t) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(t))


def padded_ids(batch=3, steps=6, vocab=20):
    ids = RNG.integers(1, vocab, size=(batch, steps)).astype(np.int32)
    ids[1, steps - 2:] = 0
    ids[-1, 2:] = 0
    return ids


def _copy(ours, theirs):
    theirs.set_weights(ours.get_weights())


def test_self_attention_over_a_padded_embedding_matches_keras():
    ids = padded_ids()
    x = Input((None,), dtype="int32")
    emb, att = layers.Embedding(20, 8, mask_zero=True), layers.MultiHeadAttention(2, 4)
    h = emb(x)
    pooled = layers.GlobalAveragePooling1D()(att(h, h))  # the output carries the query mask
    model = Model(x, pooled)
    ours = model(ids)

    kx = keras.Input((None,), dtype="int32")
    kemb, katt = keras.layers.Embedding(20, 8, mask_zero=True), keras.layers.MultiHeadAttention(
        2, 4)
    kh = kemb(kx)
    kmodel = keras.Model(kx, keras.layers.GlobalAveragePooling1D()(katt(kh, kh)))
    _copy(emb, kemb)
    _copy(att, katt)
    np.testing.assert_allclose(ours, _np(kmodel(ids)), **TOL)


def test_cross_attention_with_key_and_value_masks_matches_keras():
    q_ids, kv_ids = padded_ids(3, 5), padded_ids(3, 7)
    values = RNG.normal(size=(3, 7, 4)).astype(np.float32)
    values[0, 5:] = 0.0  # masked by Masking
    qi, ki, vi = Input((None,), dtype="int32"), Input((None,), dtype="int32"), Input((None, 4))
    q_emb, k_emb = layers.Embedding(20, 6, mask_zero=True), layers.Embedding(20, 5,
                                                                             mask_zero=True)
    att = layers.MultiHeadAttention(2, 3, value_dim=4)
    out = att(q_emb(qi), layers.Masking()(vi), key=k_emb(ki))
    model = Model([qi, ki, vi], out)
    ours = model([q_ids, kv_ids, values])

    kq, kk, kv = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32"), \
        keras.Input((None, 4))
    kq_emb, kk_emb = keras.layers.Embedding(20, 6, mask_zero=True), keras.layers.Embedding(
        20, 5, mask_zero=True)
    katt = keras.layers.MultiHeadAttention(2, 3, value_dim=4)
    kmodel = keras.Model([kq, kk, kv], katt(kq_emb(kq), keras.layers.Masking()(kv),
                                             key=kk_emb(kk)))
    _copy(q_emb, kq_emb)
    _copy(k_emb, kk_emb)
    _copy(att, katt)
    expected = _np(kmodel([q_ids, kv_ids, values]))
    keep = q_ids != 0  # padded query rows: Keras' inference path averages every value there
    np.testing.assert_allclose(ours[keep], expected[keep], **TOL)


@pytest.mark.parametrize("causal", [False, True])
def test_broadcast_attention_mask_with_a_propagated_mask_and_scores_match_keras(causal):
    ids = padded_ids(2, 5)
    user = (RNG.random((2, 1, 5)) > 0.3).astype(np.float32)  # (N, 1, Tv): broadcast over Tq
    user[:, :, 0] = 1.0
    x, m = Input((None,), dtype="int32"), Input((1, None))
    emb, att = layers.Embedding(20, 6, mask_zero=True), layers.MultiHeadAttention(2, 3)
    h = emb(x)
    out, scores = att(h, h, attention_mask=m, use_causal_mask=causal,
                      return_attention_scores=True)
    model = Model([x, m], [out, scores])
    ours_out, ours_scores = model([ids, user])
    assert ours_scores.shape == (2, 2, 5, 5)

    kx, km = keras.Input((None,), dtype="int32"), keras.Input((1, None))
    kemb, katt = keras.layers.Embedding(20, 6, mask_zero=True), keras.layers.MultiHeadAttention(
        2, 3)
    kh = kemb(kx)
    kout, kscores = katt(kh, kh, attention_mask=km, use_causal_mask=causal,
                         return_attention_scores=True)
    kmodel = keras.Model([kx, km], [kout, kscores])
    _copy(emb, kemb)
    _copy(att, katt)
    expected_out, expected_scores = (_np(t) for t in kmodel([ids, user]))
    np.testing.assert_allclose(ours_scores, expected_scores, **TOL)
    np.testing.assert_allclose(ours_out, expected_out, **TOL)


def test_eager_scores_and_nonzero_mask_values_keep_as_keras():
    q, v = RNG.normal(size=(2, 4, 6)).astype(np.float32), RNG.normal(size=(2, 3, 5)).astype(
        np.float32)
    mask = np.array([[[0.3, 0.0, 1.0]] * 4, [[0.0, 0.7, 0.0]] * 4], np.float32)  # 0.3: kept
    mha = layers.MultiHeadAttention(3, 2)
    out, scores = mha(q, v, attention_mask=mask, return_attention_scores=True)
    ref = keras.layers.MultiHeadAttention(3, 2)
    ref(q, v)
    _copy(mha, ref)
    kout, kscores = ref(q, v, attention_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(scores, _np(kscores), **TOL)
    np.testing.assert_allclose(out, _np(kout), **TOL)
    assert scores[0, :, :, 0].min() > 0  # a 0.3 entry is attended


def test_scores_composition_matches_the_layer_without_scores():
    q = RNG.normal(size=(2, 5, 6)).astype(np.float32)
    fused = layers.MultiHeadAttention(2, 3)
    y = fused(q, q, use_causal_mask=True)
    composed = layers.MultiHeadAttention(2, 3)
    composed(q, q, use_causal_mask=True, return_attention_scores=True)
    composed.set_weights(fused.get_weights())
    out, scores = composed(q, q, use_causal_mask=True, return_attention_scores=True)
    np.testing.assert_allclose(out, y, **TOL)
    np.testing.assert_allclose(np.triu(scores, 1), 0.0)  # causal: nothing above the diagonal
    np.testing.assert_allclose(scores.sum(-1), 1.0, rtol=1e-5)


def _token_mask(batch, steps, seed):
    mask = np.random.default_rng(seed).random((batch, steps)) > 0.3
    mask[:, 0] = True  # every row attends something: both Keras paths agree there
    return mask


@pytest.mark.parametrize("scores", [False, True])
def test_explicit_value_and_key_masks_match_keras(scores):
    """An explicit value_mask replaces the value's propagated mask; key_mask masks too."""
    q_ids, kv_ids = padded_ids(3, 5), padded_ids(3, 6)
    keys = RNG.normal(size=(3, 6, 5)).astype(np.float32)
    vmask, kmask = _token_mask(3, 6, 1), _token_mask(3, 6, 2)

    def build(lib):
        qi, vi, ki = lib.Input((None,), dtype="int32"), lib.Input((None,), dtype="int32"), \
            lib.Input((None, 5))
        vm, km = lib.Input((None,), dtype="bool"), lib.Input((None,), dtype="bool")
        q_emb = lib.layers.Embedding(20, 6, mask_zero=True)
        v_emb = lib.layers.Embedding(20, 4, mask_zero=True)
        att = lib.layers.MultiHeadAttention(2, 3)
        out = att(q_emb(qi), v_emb(vi), key=ki, value_mask=vm, key_mask=km,
                  return_attention_scores=scores)
        return lib.Model([qi, vi, ki, vm, km], list(out) if scores else out)

    import compiler
    ours, theirs = build(compiler), build(keras)
    theirs.set_weights(ours.get_weights())
    args = [q_ids, kv_ids, keys, vmask, kmask]
    got, want = ours(args), kmodel_out(theirs, args)
    keep = q_ids != 0  # padded query rows: Keras' two paths differ there (module docstring)
    for a, b in zip(got if scores else [got], want if scores else [want]):
        np.testing.assert_allclose(a[keep] if a.ndim == 3 else a.transpose(0, 2, 1, 3)[keep],
                                   b[keep] if b.ndim == 3 else b.transpose(0, 2, 1, 3)[keep],
                                   **TOL)


def kmodel_out(model, args):
    y = model(args)
    return [_np(t) for t in y] if isinstance(y, (list, tuple)) else _np(y)


def test_eager_explicit_masks_match_keras_and_query_mask_is_dropped_as_keras_does():
    q, v = RNG.normal(size=(2, 4, 6)).astype(np.float32), RNG.normal(size=(2, 5, 3)).astype(
        np.float32)
    vmask, kmask = _token_mask(2, 5, 3), _token_mask(2, 5, 4)
    qmask = np.zeros((2, 4), bool)  # Keras 3 ignores it (call() reads query's own mask)
    mha = layers.MultiHeadAttention(2, 3)
    out = mha(q, v, query_mask=qmask, value_mask=vmask, key_mask=kmask)
    ref = keras.layers.MultiHeadAttention(2, 3)
    ref(q, v)
    _copy(mha, ref)
    expected = _np(ref(q, v, query_mask=qmask, value_mask=vmask, key_mask=kmask))
    np.testing.assert_allclose(out, expected, **TOL)
    unmasked = layers.MultiHeadAttention(2, 3)
    unmasked(q, v)
    unmasked.set_weights(mha.get_weights())
    assert not np.allclose(out, unmasked(q, v), **TOL)  # the masks did something
    for i in range(2):  # and what they did is attention over the kept positions only
        kept = vmask[i] & kmask[i]
        single = layers.MultiHeadAttention(2, 3)
        single(q[i:i + 1], v[i:i + 1, kept])
        single.set_weights(mha.get_weights())
        np.testing.assert_allclose(out[i], single(q[i:i + 1], v[i:i + 1, kept])[0], **TOL)


def test_changing_explicit_masks_or_the_scores_flag_are_clear_errors():
    q = RNG.normal(size=(1, 3, 4)).astype(np.float32)
    mha = layers.MultiHeadAttention(2, 2, name="att")
    mha(q, q, value_mask=np.ones((1, 3), bool))
    with pytest.raises(CompilerError, match=r"'att'.*value_mask=given.*now with.*"
                                            r"value_mask=None"):
        mha(q, q)
    mha = layers.MultiHeadAttention(2, 2, name="att")
    mha(q, q)
    with pytest.raises(CompilerError, match=r"'att'.*return_attention_scores=False, now with "
                                            r"True"):
        mha(q, q, return_attention_scores=True)
