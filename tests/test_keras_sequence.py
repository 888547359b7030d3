"""Keras interop for sequence models: files written by Keras 3 (torch backend) load in deferc
with the same outputs, and ours load in Keras. Token inputs are int32 and right-padded with
zeros, so ``mask_zero`` masks really skip steps. Each model goes both ways in one test (the
deferc model loaded from Keras' file is saved again and read by Keras), which keeps the number
of Keras models small; deferc's outputs come from the NumPy reference executor on the compiled
IR (``keras_helpers.deferc_out``), except where the first call itself is under test (the
unbuilt LSTM), so these tests jit little model-specific code.
"""

import json
import zipfile

import numpy as np
import pytest
from keras_helpers import (
    compare,
    deferc_out,
    from_keras,
    keras_module,
    keras_out,
    randomize,
    to_keras,
)
from keras_helpers import tokens as _tokens
from keras_helpers import x as _x

import compiler
from compiler import CompilerError, Input, Model, Sequential, layers

pytest.importorskip("h5py")

VOCAB = 20


@pytest.fixture(scope="module")
def keras():
    return keras_module()


def both_ways(keras, kmodel, tmp_path, *xs):
    """Keras -> deferc -> Keras, outputs compared at each step; the deferc model."""
    randomize(kmodel)
    ours = from_keras(keras, kmodel, tmp_path / "keras.keras", *xs)
    to_keras(keras, ours, tmp_path / "ours.keras", *xs)
    return ours


def test_recurrent_stack_with_mask_zero(keras, tmp_path):
    L = keras.layers
    kmodel = keras.Sequential([
        keras.Input((None,), dtype="int32"), L.Embedding(VOCAB, 6, mask_zero=True),
        L.SimpleRNN(5, return_sequences=True),
        L.GRU(4, return_sequences=True, reset_after=False),
        L.GRU(4, return_sequences=True, go_backwards=True),
        L.LSTM(3, go_backwards=True, use_bias=False)])
    ours = both_ways(keras, kmodel, tmp_path, _tokens(4, 7, VOCAB))
    assert np.dtype(ours._input_specs[0].dtype) == np.int32  # token ids stay integers
    gru = ours.layers[2]
    assert isinstance(gru, layers.GRU) and not gru.reset_after
    assert gru.get_weights()[2].shape == (12,)            # reset_after=False: bias (3u,)
    assert ours.layers[3].get_weights()[2].shape == (2, 12)


def test_text_classifier_embedding_bilstm_dense(keras, tmp_path):
    """d2l's sentiment model: Embedding -> Bidirectional(LSTM) -> Dense, functional (Keras
    writes the mask as NotEqual nodes passed as mask=), then the same built in deferc."""
    L = keras.layers
    ids = _tokens(5, 9, VOCAB)
    t = keras.Input((None,), dtype="int32")
    h = L.Embedding(VOCAB, 8, mask_zero=True)(t)
    h = L.Bidirectional(L.LSTM(6))(h)
    kmodel = keras.Model(t, L.Dense(2)(h))
    both_ways(keras, kmodel, tmp_path, ids)

    net = Sequential([layers.Embedding(VOCAB, 8, mask_zero=True),
                      layers.Bidirectional(layers.LSTM(6)), layers.Dense(2)])
    net.build((None, None))                               # deferred until now
    to_keras(keras, net, tmp_path / "net.keras", ids)


def test_bidirectional_merge_modes_and_states(keras, tmp_path):
    L = keras.layers
    x = keras.Input((6, 3))
    outs = [L.Bidirectional(L.GRU(3, reset_after=False, return_sequences=True))(x),
            L.Bidirectional(L.GRU(3), merge_mode="sum")(x),
            L.Bidirectional(L.SimpleRNN(3), merge_mode="mul")(x),
            L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="ave")(x)]
    fwd, bwd, h_f, c_f, h_b, c_b = L.Bidirectional(L.LSTM(2, return_state=True),
                                                   merge_mode=None)(x)
    kmodel = keras.Model(x, outs + [fwd, bwd, h_f, c_b])
    ours = both_ways(keras, kmodel, tmp_path, _x(3, 6, 3))
    bi = [layer for layer in ours.layers if isinstance(layer, layers.Bidirectional)]
    assert [b.merge_mode for b in bi] == ["concat", "sum", "mul", "ave", None]


def test_attention_and_rnn_call_keywords(keras, tmp_path):
    """MultiHeadAttention with key= and attention_mask=, causal without biases; an LSTM with
    initial_state= and return_state (outputs ``[name, 0, 1]``...)."""
    L = keras.layers
    q, v, m = keras.Input((5, 8)), keras.Input((6, 8)), keras.Input((5, 6))
    h0, c0 = keras.Input((3,)), keras.Input((3,))
    a = L.MultiHeadAttention(2, 4, value_dim=3, output_shape=5)(q, v, key=v, attention_mask=m)
    b = L.MultiHeadAttention(2, 4, use_bias=False)(q, q, use_causal_mask=True)
    s, h, c = L.LSTM(3, return_state=True)(q, initial_state=[h0, c0])
    kmodel = keras.Model([q, v, m, h0, c0], [a, b, s, h, c])
    mask = (np.random.default_rng(0).uniform(size=(2, 5, 6)) > 0.3).astype(np.float32)
    both_ways(keras, kmodel, tmp_path, _x(2, 5, 8), _x(2, 6, 8, seed=3), mask,
              _x(2, 3, seed=4), _x(2, 3, seed=5))


def _encoder_block(api, x, heads=2, key_dim=4, ff=16):
    """Post-norm transformer encoder block (MHA + LayerNorm + FFN, residuals)."""
    L = api.layers
    width = x.shape[-1]
    h = L.LayerNormalization(epsilon=1e-5)(L.Add()([x, L.MultiHeadAttention(heads, key_dim)(
        x, x)]))
    f = L.Dense(width)(L.Dense(ff, activation="relu")(h))
    return L.LayerNormalization(epsilon=1e-5)(L.Add()([h, f]))


def test_transformer_encoder_block(keras, tmp_path):
    t = keras.Input((None, 8))
    kmodel = keras.Model(t, _encoder_block(keras, t))
    xs = _x(2, 7, 8)
    both_ways(keras, kmodel, tmp_path, xs)

    import compiler as api
    s = Input((None, 8))
    model = Model(s, _encoder_block(api, s))
    model.build((None, None, 8))
    to_keras(keras, model, tmp_path / "block.keras", xs)


def test_conv1d_family_time_distributed_masking(keras, tmp_path):
    L = keras.layers
    kmodel = keras.Sequential([
        keras.Input((12, 3)), L.TimeDistributed(L.Dense(4)),
        L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu"),
        L.Conv1D(6, 3, padding="same", groups=2), L.Conv1D(4, 2, strides=2),
        L.UpSampling1D(), L.Cropping1D((1, 2)), L.ZeroPadding1D(2), L.MaxPooling1D(),
        L.AveragePooling1D(2, strides=1, padding="same"), L.LayerNormalization(),
        L.Masking(0.5), L.GlobalAveragePooling1D()])
    both_ways(keras, kmodel, tmp_path, _x(3, 12, 3))
    kmodel = keras.Sequential([keras.Input((5, 4)), L.GlobalMaxPooling1D(keepdims=True)])
    both_ways(keras, kmodel, tmp_path, _x(2, 5, 4))


def test_masking_with_return_state(keras, tmp_path):
    """Keras writes Masking's mask as NotEqual + Any nodes; the LSTM skips the masked steps."""
    L = keras.layers
    x = keras.Input((5, 3))
    seq, h, c = L.LSTM(4, return_sequences=True, return_state=True)(L.Masking()(x))
    kmodel = keras.Model(x, [L.GlobalAveragePooling1D()(seq), h, c])
    xs = _x(3, 5, 3)
    xs[0, 3:] = 0
    xs[1, :2] = 0
    both_ways(keras, kmodel, tmp_path, xs)


def test_unbuilt_keras_lstm_loads_deferred(keras, tmp_path):
    L = keras.layers
    kmodel = keras.Sequential([L.Embedding(VOCAB, 4), L.LSTM(5), L.Dense(2)])
    path = tmp_path / "unbuilt.keras"
    with pytest.warns(UserWarning):
        kmodel.save(path)
    ours = compiler.load_model(path)
    assert [layer.get_weights() for layer in ours.layers] == [[], [], []]
    ids = _tokens(3, 6, VOCAB)
    y = ours(ids)                                         # the first call initializes, jitted
    np.testing.assert_allclose(y, deferc_out(ours, ids), atol=1e-5)
    assert [w.shape for w in ours.get_weights()] == [(VOCAB, 4), (4, 20), (5, 20), (20,),
                                                     (5, 2), (2,)]
    bias = ours.layers[1].get_weights()[2]
    np.testing.assert_array_equal(bias[5:10], 1.0)        # unit_forget_bias survived


def test_deferred_sequence_model_saves_unbuilt(keras, tmp_path):
    net = Sequential([layers.Embedding(VOCAB, 4, mask_zero=True),
                      layers.Bidirectional(layers.GRU(3)), layers.Dense(2)])
    path = tmp_path / "deferred.keras"
    net.save(path)
    kmodel = keras.saving.load_model(path)
    assert not kmodel.weights                             # Keras sees an unbuilt model
    ids = _tokens(2, 5, VOCAB)
    assert keras_out(keras, kmodel, ids).shape == (2, 2)  # and builds it on its first call
    again = compiler.load_model(path)
    assert [layer.get_weights() for layer in again.layers] == [[], [], []]


# -- initializers -------------------------------------------------------------------------------

def test_every_builtin_initializer_initializes_an_unbuilt_model(keras, tmp_path):
    L, init = keras.layers, keras.initializers
    # Keras' Identity does not save its gain: a reload (Keras' too) has gain 1
    inits = [init.Orthogonal(gain=2.0), init.Identity(), init.TruncatedNormal(stddev=0.1),
             init.VarianceScaling(2.0, "fan_out", "uniform"), init.HeNormal(), init.LecunUniform(),
             init.Constant(0.5), init.RandomNormal()]
    kmodel = keras.Sequential([L.Dense(6, kernel_initializer=i) for i in inits])
    path = tmp_path / "inits.keras"
    with pytest.warns(UserWarning):
        kmodel.save(path)
    ours = compiler.load_model(path)
    ours.build((None, 6))
    kernels = [layer.get_weights()[0] for layer in ours.layers]
    np.testing.assert_allclose(kernels[0] @ kernels[0].T, 4 * np.eye(6), atol=1e-5)
    np.testing.assert_array_equal(kernels[1], np.eye(6))
    assert np.abs(kernels[2]).max() <= 0.2
    np.testing.assert_array_equal(kernels[6], 0.5)
    again = tmp_path / "again.keras"
    ours.save(again)
    with zipfile.ZipFile(again) as zf:
        saved = json.loads(zf.read("config.json"))["config"]["layers"]
    names = [entry["config"]["kernel_initializer"]["class_name"] for entry in saved[1:]]
    assert names == ["Orthogonal", "Identity", "TruncatedNormal", "VarianceScaling",
                     "HeNormal", "LecunUniform", "Constant", "RandomNormal"]


def test_unknown_initializer_loads_with_weights_and_resaves_faithfully(keras, tmp_path):
    @keras.saving.register_keras_serializable(package="mine")
    class Halves(keras.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return keras.ops.full(shape, 0.5, dtype=dtype)

    L = keras.layers
    kmodel = keras.Sequential([keras.Input((3,)), L.Dense(2, kernel_initializer=Halves())])
    randomize(kmodel)
    ours = from_keras(keras, kmodel, tmp_path / "custom_init.keras", _x(4, 3))
    ours.save(tmp_path / "again.keras")
    with zipfile.ZipFile(tmp_path / "again.keras") as zf:
        entry = json.loads(zf.read("config.json"))["config"]["layers"][1]
    assert entry["config"]["kernel_initializer"]["registered_name"] == "mine>Halves"
    unbuilt = keras.Sequential([L.Dense(2, kernel_initializer=Halves(), name="halved")])
    with pytest.warns(UserWarning):
        unbuilt.save(tmp_path / "unbuilt.keras")
    with pytest.raises(CompilerError, match=r"layer 'halved' \(Dense\): weight kernel has no "
                                            r"value in the file and its initializer 'Halves'"):
        compiler.load_model(tmp_path / "unbuilt.keras")


# -- refusals -----------------------------------------------------------------------------------

def test_explicit_mask_tensor_is_refused(keras, tmp_path):
    L = keras.layers
    x, m = keras.Input((5, 3)), keras.Input((5,), dtype="bool")
    kmodel = keras.Model([x, m], L.LSTM(2)(x, mask=m))
    kmodel.save(tmp_path / "mask.keras")
    with pytest.raises(CompilerError, match=r"layer 'lstm.*': mask= is a tensor computed by "
                                            r"layers; deferc takes masks from Embedding"):
        compiler.load_model(tmp_path / "mask.keras")


def test_unsupported_recurrent_options_are_refused(keras, tmp_path):
    L = keras.layers
    cases = [(L.LSTM(2, recurrent_activation="hard_sigmoid"),
              r"\(LSTM\): recurrent_activation 'hard_sigmoid' is not supported"),
             (L.GRU(2, stateful=True), r"\(GRU\): stateful=True is not supported")]
    for i, (layer, message) in enumerate(cases):
        kmodel = keras.Sequential([keras.Input((4, 3), batch_size=2), layer])
        kmodel.save(tmp_path / f"m{i}.keras")
        with pytest.raises(CompilerError, match=message):
            compiler.load_model(tmp_path / f"m{i}.keras")


# -- legacy .h5 (Keras 3 still writes it; Keras 2's layout differs in names only) ----------------

def _legacy_models(keras):
    L = keras.layers
    mlp = keras.Sequential([keras.Input((6,)), L.Dense(5, activation="relu"),
                            L.BatchNormalization(), L.Dense(3)])
    x = keras.Input((8, 8, 2))
    h = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    h = L.Add()([h, L.Conv2D(4, 1)(x)])
    cnn = keras.Model(x, L.Dense(3)(L.GlobalAveragePooling2D()(L.MaxPooling2D()(h))))
    lstm = keras.Sequential([keras.Input((None,), dtype="int32"),
                             L.Embedding(VOCAB, 4, mask_zero=True),
                             L.Bidirectional(L.GRU(3, return_sequences=True)),
                             L.TimeDistributed(L.Dense(4)), L.LSTM(5), L.Dense(2)])
    q = keras.Input((5, 4))
    mha = keras.Model(q, L.MultiHeadAttention(2, 3)(q, q))
    return [(mlp, _x(3, 6)), (cnn, _x(2, 8, 8, 2)), (lstm, _tokens(3, 6, VOCAB)),
            (mha, _x(2, 5, 4))]


def _as_keras2(path):
    """Rewrite a Keras 3 legacy file the way Keras 2 wrote it: ``kernel:0`` dataset names,
    ``keras_version`` 2.x, Keras 2's call nodes, InputLayer ``batch_input_shape`` (in a
    Sequential: on its first layer, ``Dense(5, input_shape=(6,))``)."""
    import h5py

    with h5py.File(path, "r+") as f:
        f.attrs["keras_version"] = "2.15.0"
        config = json.loads(f.attrs["model_config"])
        for entry in config["config"]["layers"]:
            cfg = entry["config"]
            if entry["class_name"] == "InputLayer":
                cfg["batch_input_shape"] = cfg.pop("batch_shape")
                if config["class_name"] == "Sequential":  # declared by the first layer
                    first_layer_declares = cfg["batch_input_shape"]
            if entry["class_name"] == "LSTM":
                cfg.update(time_major=False, implementation=2)
            if entry["class_name"] == "Embedding":
                cfg["input_length"] = None
            if entry["class_name"] == "MultiHeadAttention":  # value= as a keyword
                cfg.update(query_shape=[None, 5, 4], value_shape=[None, 5, 4], key_shape=None)
                node = entry["inbound_nodes"][0]["args"]
                entry["inbound_nodes"] = [[[*node[0]["config"]["keras_history"],
                                            {"value": node[1]["config"]["keras_history"]}]]]
            elif "inbound_nodes" in entry:
                entry["inbound_nodes"] = [
                    [[*a["config"]["keras_history"], {}] for a in _flat(node["args"])]
                    for node in entry["inbound_nodes"]]
        if config["class_name"] == "Sequential":
            config["config"]["layers"].pop(0)
            config["config"]["layers"][0]["config"]["batch_input_shape"] = first_layer_declares
        f.attrs["model_config"] = json.dumps(config)
        weights = f["model_weights"]
        for name in list(weights):
            group = weights[name]
            names = [n.decode() if isinstance(n, bytes) else n
                     for n in group.attrs.get("weight_names", [])]
            for n in names:
                group.move(n, n + ":0")
            if names:
                group.attrs["weight_names"] = [(n + ":0").encode() for n in names]


def _flat(args):
    return [t for a in args for t in _flat(a)] if isinstance(args, list) else [args]


def test_legacy_h5_mlp_cnn_lstm(keras, tmp_path):
    for i, (kmodel, xs) in enumerate(_legacy_models(keras)):
        randomize(kmodel, seed=i)
        expected = keras_out(keras, kmodel, xs)
        path = tmp_path / f"m{i}.h5"
        kmodel.save(path)
        compare(expected, deferc_out(compiler.load_model(path), xs))
        _as_keras2(path)
        compare(expected, deferc_out(compiler.load_model(path), xs))


# -- keras-hub's PositionEmbedding (keras-hub is not installed: checked against NumPy) ----------

def test_position_embedding_keras_hub_entry(tmp_path):
    t = Input((None,), dtype="int32")
    tok = layers.Embedding(VOCAB, 4, name="tok")(t)
    pos = layers.PositionEmbedding(8, name="pos")(tok)
    model = Model(t, layers.Add()([tok, pos]))
    ids = _tokens(2, 6, VOCAB, pad=False)
    model.build((None, None))
    expected = deferc_out(model, ids)
    table_, positions = model.get_weights()
    np.testing.assert_allclose(expected, table_[ids] + positions[:6], atol=1e-6)
    path = tmp_path / "hub.keras"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
    entry = next(e for e in config["config"]["layers"] if e["class_name"] == "PositionEmbedding")
    assert entry["registered_name"] == "keras_hub>PositionEmbedding"
    assert entry["config"]["sequence_length"] == 8
    np.testing.assert_array_equal(deferc_out(compiler.load_model(path), ids), expected)

    entry["registered_name"] = "mine>PositionEmbedding"
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["config.json"] = json.dumps(config)
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(CompilerError, match=r"'pos' \(PositionEmbedding\) is registered as "
                                            r"'mine>PositionEmbedding'; deferc knows "
                                            r"PositionEmbedding only as 'keras_hub>"):
        compiler.load_model(tmp_path / "other.keras")


def _edit_config(path, out, edit):
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    edit(config["config"]["layers"])
    members["config.json"] = json.dumps(config)
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def test_mask_ops_other_than_masks_are_refused(keras, tmp_path):
    L = keras.layers
    x = keras.Input((4, 3))
    kmodel = keras.Model(x, L.LSTM(2)(L.Masking(name="masked")(x)))
    kmodel.save(tmp_path / "m.keras")
    by_class = {}

    def index(entries):
        by_class.update({e["class_name"]: e for e in entries})

    _edit_config(tmp_path / "m.keras", tmp_path / "same.keras", index)
    assert {"NotEqual", "Any"} <= set(by_class)          # how Keras 3.15 writes the mask

    def other_axis(entries):
        next(e for e in entries if e["class_name"] == "Any")["config"]["axis"] = 1

    def as_data(entries):
        lstm = next(e for e in entries if e["class_name"] == "LSTM")
        lstm["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = \
            lstm["inbound_nodes"][0]["kwargs"]["mask"]["config"]["keras_history"]

    with pytest.raises(CompilerError, match=r"op 'any.*' is not a mask computation"):
        compiler.load_model(_edit_config(tmp_path / "m.keras", tmp_path / "a.keras", other_axis))
    with pytest.raises(CompilerError, match=r"takes a mask op's output as data"):
        compiler.load_model(_edit_config(tmp_path / "m.keras", tmp_path / "b.keras", as_data))


def test_every_layer_class_maps_to_keras():
    """Each class ``compiler.layers`` exports has a table entry (a new layer needs one)."""
    from compiler import kerasfile

    classes = {getattr(layers, name) for name in layers.__all__} - {layers.Input, layers.Layer}
    missing = sorted(c.__name__ for c in classes if c not in kerasfile.table.KERAS_NAME)
    assert missing == []
    assert kerasfile.PENDING == ()
