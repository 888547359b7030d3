"""Keras 3 interop: ``compiler.load_model("x.keras")`` and ``model.save("x.keras")``.

Models are built with real Keras (torch backend) with random, non-trivial weights (BatchNorm
moving statistics too), saved, loaded by deferc and compared (and the other way round). The
refusals are checked on real files where Keras can write them, on hand-made ones otherwise.
Tests that need Keras skip without it; the others need only h5py.
"""

import io
import json
import marshal
import zipfile

import numpy as np
import pytest
from keras_helpers import ATOL, deferc_out, keras_module
from keras_helpers import compare as _compare
from keras_helpers import keras_out as _keras_out
from keras_helpers import randomize as _randomize
from keras_helpers import x as _x

import compiler
from compiler import CompilerError, Input, Model, Sequential, layers

h5py = pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def keras():
    return keras_module()


def _roundtrip_from_keras(keras, kmodel, tmp_path, *xs, atol=ATOL):
    path = tmp_path / "model.keras"
    kmodel.save(path)
    ours = compiler.load_model(path)
    _compare(_keras_out(keras, kmodel, *xs), deferc_out(ours, *xs), atol)
    return ours


# -- Keras -> deferc --------------------------------------------------------------------------

def test_mlp_sequential(keras, tmp_path):
    L = keras.layers
    kmodel = keras.Sequential([keras.Input((12,)), L.Dense(16, activation="relu"),
                               L.Dropout(0.3), L.Dense(16, activation="gelu"),
                               L.Dense(8, activation="tanh", use_bias=False),
                               L.Dense(8, activation="sigmoid"), L.Dense(5),
                               L.Softmax()])
    _randomize(kmodel)
    ours = _roundtrip_from_keras(keras, kmodel, tmp_path, _x(7, 12))
    assert isinstance(ours, Sequential)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in kmodel.layers]


def test_cnn_with_residuals_and_batchnorm(keras, tmp_path):
    L = keras.layers
    x = keras.Input((12, 12, 3))
    h = L.ZeroPadding2D(((1, 0), (0, 1)))(x)
    h = L.Conv2D(8, 3, strides=2, padding="same")(h)
    h = L.BatchNormalization()(h)
    h = L.ReLU()(h)
    r = L.Conv2D(8, 3, padding="same", dilation_rate=2, groups=2, activation="relu")(h)
    r = L.BatchNormalization(epsilon=1e-2)(r)
    h = L.Add()([h, r])
    d = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(h)
    d = L.LeakyReLU(0.1)(d)
    d = L.MaxPooling2D(2)(d)
    a = L.AveragePooling2D(2, strides=1)(h)
    a = L.Conv2D(16, 1, use_bias=False)(a)
    g1 = L.GlobalMaxPooling2D()(d)
    g2 = L.GlobalAveragePooling2D()(a)
    merged = L.Concatenate()([L.Subtract()([g1, g2]), L.Multiply()([g1, g2]),
                              L.Maximum()([g1, g2]), L.Minimum()([g1, g2]),
                              L.Average()([g1, g2])])
    merged = L.LayerNormalization()(merged)
    f = L.Flatten()(L.Reshape((8, 10))(merged))
    y = L.Activation("softmax")(L.Dense(10)(f))
    kmodel = keras.Model(x, y)
    _randomize(kmodel)
    ours = _roundtrip_from_keras(keras, kmodel, tmp_path, _x(4, 12, 12, 3))
    kbn = next(layer for layer in kmodel.layers if isinstance(layer, L.BatchNormalization))
    bn = next(layer for layer in ours.layers if layer.name == kbn.name)
    for ours_w, keras_w in zip(bn.get_weights(), kbn.get_weights()):
        np.testing.assert_array_equal(ours_w, keras_w)


def test_nested_and_shared_layers(keras, tmp_path):
    L = keras.layers
    inner_seq = keras.Sequential([keras.Input((6,)), L.Dense(5, activation="relu"),
                                  L.Dense(6)], name="inner_seq")
    i = keras.Input((6,))
    inner_fn = keras.Model(i, L.Dense(6, activation="tanh")(i), name="inner_fn")
    shared = L.Dense(6, name="shared")
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    ha, hb = shared(a), shared(b)                       # one layer, two call sites
    ya = inner_seq(ha)
    yb = inner_seq(inner_fn(hb))                        # a model shared, a functional model
    out = L.Add()([ya, yb])
    kmodel = keras.Model([a, b], [out, ya])
    _randomize(kmodel)
    xa, xb = _x(3, 4, seed=2), _x(3, 4, seed=3)
    ours = _roundtrip_from_keras(keras, kmodel, tmp_path, xa, xb)
    assert sorted(layer.name for layer in ours.layers) == sorted(
        layer.name for layer in kmodel.layers if not isinstance(layer, L.InputLayer))


def test_float64_model(keras, tmp_path):
    L = keras.layers
    kmodel = keras.Sequential([keras.Input((5,), dtype="float64"),
                               L.Dense(7, activation="tanh", dtype="float64"),
                               L.BatchNormalization(dtype="float64"),
                               L.Dense(3, dtype="float64")])
    _randomize(kmodel)
    x = _x(4, 5, dtype=np.float64)
    ours = _roundtrip_from_keras(keras, kmodel, tmp_path, x)
    assert ours.dtype == np.float64 and ours(x).dtype == np.float64
    # Keras' own float64 BatchNorm is off by ~1e-7 (a float32 epsilon); NumPy is exact.
    k, b, gamma, beta, mean, var, k2, b2 = kmodel.get_weights()
    h = np.tanh(x @ k + b)
    expected = ((h - mean) / np.sqrt(var + 1e-3) * gamma + beta) @ k2 + b2
    np.testing.assert_allclose(ours(x), expected, atol=1e-12, rtol=0)


def test_unbuilt_keras_model_loads_deferred(keras, tmp_path):
    L = keras.layers
    kmodel = keras.Sequential([L.Dense(6, activation="relu"), L.Dense(2)])
    path = tmp_path / "unbuilt.keras"
    with pytest.warns(UserWarning):
        kmodel.save(path)
    ours = compiler.load_model(path)
    assert [layer.get_weights() for layer in ours.layers] == [[], []]
    y = ours(_x(3, 9))                                  # the first call initializes
    assert y.shape == (3, 2)
    assert [w.shape for w in ours.get_weights()] == [(9, 6), (6,), (6, 2), (2,)]


def test_legacy_h5_full_model(keras, tmp_path):
    L = keras.layers
    x = keras.Input((6,))
    h = L.BatchNormalization()(L.Dense(4, activation="relu")(x))
    inner = keras.Sequential([keras.Input((4,)), L.Dense(3)], name="inner")
    kmodel = keras.Model(x, L.Add()([inner(h), L.Dense(3)(h)]))
    _randomize(kmodel)
    path = tmp_path / "legacy.h5"
    kmodel.save(path)
    xs = _x(5, 6)
    _compare(_keras_out(keras, kmodel, xs), compiler.load_model(path)(xs))


def test_legacy_h5_keras2_node_format(keras, tmp_path):
    """Keras 2 wrote call nodes as ``[[name, node, tensor, kwargs]]`` and ``alpha`` for
    LeakyReLU; the same table loads them."""
    L = keras.layers
    x = keras.Input((6,))
    h = L.Dense(4)(x)
    kmodel = keras.Model(x, L.Add()([L.LeakyReLU(0.2)(h), h]))
    _randomize(kmodel)
    path = tmp_path / "keras2.h5"
    kmodel.save(path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            layer["inbound_nodes"] = [
                [[*t["config"]["keras_history"], {}] for t in _tensors(node["args"])]
                for node in layer["inbound_nodes"]]
            if layer["class_name"] == "LeakyReLU":
                layer["config"]["alpha"] = layer["config"].pop("negative_slope")
        config["config"]["input_layers"] = [config["config"]["input_layers"]]
        f.attrs["model_config"] = json.dumps(config)
    xs = _x(5, 6)
    _compare(_keras_out(keras, kmodel, xs), compiler.load_model(path)(xs))


def _tensors(args):
    if isinstance(args, list):
        return [t for a in args for t in _tensors(a)]
    return [args]


# -- deferc -> Keras --------------------------------------------------------------------------

def _deferc_cnn():
    x = Input((10, 10, 3))
    h = layers.Conv2D(6, 3, padding="same", activation="relu")(x)
    h = layers.BatchNormalization()(h)
    r = layers.DepthwiseConv2D(3, padding="same")(h)
    h = layers.Add()([h, layers.ReLU()(r)])
    h = layers.MaxPooling2D()(h)
    g = layers.GlobalAveragePooling2D()(h)
    f = layers.Flatten()(layers.AveragePooling2D()(h))
    y = layers.Dense(4, activation="softmax")(layers.Concatenate()([g, layers.Dense(6)(f)]))
    model = Model(x, y)
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if layer.get_weights():
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if "variance" in p else
                               rng.normal(0, 0.5, w.shape)
                               for w, p in zip(layer.get_weights(), layer.param_names)])
    return model


def test_deferc_cnn_loads_in_keras(keras, tmp_path):
    model = _deferc_cnn()
    path = tmp_path / "net.keras"
    model.save(path)
    kmodel = keras.saving.load_model(path)
    x = _x(3, 10, 10, 3)
    _compare(_keras_out(keras, kmodel, x), deferc_out(model, x))
    _compare(model(x), compiler.load_model(path)(x))   # and back, without Keras (jitted)


def test_deferc_nested_shared_multi_io_loads_in_keras(keras, tmp_path):
    block = Sequential([layers.Dense(5, activation="tanh"), layers.Dense(4)], name="block")
    i = Input((4,))
    inner = Model(i, layers.Dense(4, activation="relu")(i), name="inner")
    shared = layers.Dense(4, name="shared")
    a, b = Input((3,), name="a"), Input((3,), name="b")
    ya = block(shared(a))
    yb = block(inner(shared(b)))
    model = Model([a, b], [layers.Subtract()([ya, yb]), ya])
    path = tmp_path / "multi.keras"
    model.save(path)
    kmodel = keras.saving.load_model(path)
    xa, xb = _x(2, 3, seed=4), _x(2, 3, seed=5)
    _compare(_keras_out(keras, kmodel, xa, xb), deferc_out(model, xa, xb))


def test_deferc_float64_sequential_loads_in_keras(keras, tmp_path):
    model = Sequential([Input((6,), dtype="float64"), layers.Dense(5, activation="gelu"),
                        layers.LayerNormalization(), layers.Dense(2)])
    path = tmp_path / "f64.keras"
    model.save(path)
    kmodel = keras.saving.load_model(path)
    x = _x(3, 6, dtype=np.float64)
    assert kmodel.layers[0].dtype == "float64"
    expected = _keras_out(keras, kmodel, x)
    assert expected.dtype == np.float64
    _compare(expected, model(x))


def test_deferred_deferc_model_saves_unbuilt(keras, tmp_path):
    model = Sequential([layers.Dense(8, activation="relu"), layers.Dense(3)])
    path = tmp_path / "deferred.keras"
    model.save(path)
    kmodel = keras.saving.load_model(path)
    assert not kmodel.weights                           # Keras sees an unbuilt model
    again = compiler.load_model(path)
    assert [layer.get_weights() for layer in again.layers] == [[], []]


def test_deferc_roundtrip_without_keras(tmp_path):
    model = Sequential([Input((4,)), layers.Dense(3, activation="relu"), layers.Dropout(0.5),
                        layers.LeakyReLU(0.2), layers.Dense(2)])
    path = tmp_path / "rt.keras"
    model.save(path)
    x = _x(5, 4)
    again = compiler.load_model(path)
    np.testing.assert_array_equal(again(x), model(x))
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]


def test_load_model_reads_our_json_and_npz(tmp_path):
    model = _deferc_cnn()
    (tmp_path / "net.json").write_text(json.dumps(model.to_config()))
    model.save_weights(tmp_path / "net.npz")
    x = _x(2, 10, 10, 3)
    again = compiler.load_model(tmp_path / "net.json", weights=tmp_path / "net.npz")
    np.testing.assert_array_equal(again(x), model(x))


# -- refusals ---------------------------------------------------------------------------------

def _archive(path, config, weights=None, extra=()):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", json.dumps(config))
        if weights is not None:
            zf.writestr("model.weights.h5", weights)
        for name, data in extra:
            zf.writestr(name, data)
    return path


def _sequential_config(*entries):
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": "s", "layers": list(entries)}, "registered_name": None}


def _layer(cls, registered=None, module="keras.layers", **config):
    return {"module": module, "class_name": cls, "config": {"name": cls.lower(), **config},
            "registered_name": registered}


def _files(directory):
    return sorted(p.name for p in directory.rglob("*"))


def test_unknown_layer_class_lists_supported(tmp_path):
    path = _archive(tmp_path / "m.keras", _sequential_config(_layer("Cropping2D")))
    with pytest.raises(CompilerError, match=r"'cropping2d' \(Cropping2D\): unknown layer "
                                            r"class; supported: .*'Dense'"):
        compiler.load_model(path)


def test_lambda_is_refused_and_never_run(keras, tmp_path, monkeypatch):
    L = keras.layers
    kmodel = keras.Sequential([keras.Input((3,)), L.Lambda(lambda x: x * 2)])
    kmodel.save(tmp_path / "lambda.keras")

    def never(*args, **kwargs):
        raise AssertionError("serialized code was unmarshalled")

    with pytest.raises(CompilerError):  # once first: lazy imports unmarshal bytecode too
        compiler.load_model(tmp_path / "lambda.keras")
    monkeypatch.setattr(marshal, "loads", never)  # how a lambda's bytecode would come back
    with pytest.raises(CompilerError, match=r"layer 'lambda' \(Lambda\) holds serialized "
                                            r"Python code .*never deserializes or runs"):
        compiler.load_model(tmp_path / "lambda.keras")


def test_serialized_function_anywhere_is_refused(tmp_path):
    dense = _layer("Dense", units=2, activation={"module": "builtins", "class_name": "function",
                                                  "config": "evil", "registered_name": None})
    path = _archive(tmp_path / "m.keras", _sequential_config(dense))
    with pytest.raises(CompilerError, match="serialized Python code"):
        compiler.load_model(path)


def test_custom_object_is_refused(keras, tmp_path):
    @keras.saving.register_keras_serializable(package="mine")
    class Twice(keras.layers.Layer):
        def call(self, x):
            return x * 2

    kmodel = keras.Sequential([keras.Input((3,)), Twice()])
    kmodel.save(tmp_path / "custom.keras")
    with pytest.raises(CompilerError, match=r"\(Twice\) is a custom object .*registered as "
                                            r"'mine>Twice'"):
        compiler.load_model(tmp_path / "custom.keras")


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_zip_entries_escaping_are_refused(tmp_path, name):
    inside = tmp_path / "inside"
    inside.mkdir()
    path = _archive(inside / "m.keras", _sequential_config(_layer("Dense", units=2)),
                    extra=[(name, "x")])
    before = _files(tmp_path)
    with pytest.raises(CompilerError, match=r"refusing zip entry .*absolute or containing "
                                            r"'\.\.'"):
        compiler.load_model(path)
    assert _files(tmp_path) == before


def _h5(groups):
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for path, arr in groups.items():
            f.create_dataset(path, data=arr)
    return buffer.getvalue()


def test_weight_shape_contradicting_config_names_layer_and_variable(tmp_path):
    config = _sequential_config(
        {"module": "keras.layers", "class_name": "InputLayer",
         "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "in"},
         "registered_name": None},
        _layer("Dense", units=3))
    weights = _h5({"layers/dense/vars/0": np.ones((4, 5), np.float32),
                   "layers/dense/vars/1": np.ones((3,), np.float32)})
    path = _archive(tmp_path / "m.keras", config, weights)
    with pytest.raises(CompilerError, match=r"layer 'dense' \(Dense\): variable kernel "
                                            r"\('layers/dense/vars/0'\) has shape \(4, 5\) in "
                                            r"the weights file, the config implies \(4, 3\)"):
        compiler.load_model(path)


def test_missing_and_extra_variables_are_refused(tmp_path):
    config = _sequential_config(_layer("Dense", units=3))
    only_kernel = _h5({"layers/dense/vars/0": np.ones((4, 3), np.float32)})
    with pytest.raises(CompilerError, match=r"'dense' \(Dense\) has no variable bias"):
        compiler.load_model(_archive(tmp_path / "a.keras", config, only_kernel))
    extra = _h5({"layers/dense/vars/0": np.ones((4, 3), np.float32),
                 "layers/dense/vars/1": np.ones(3, np.float32),
                 "layers/other/vars/0": np.ones(3, np.float32)})
    with pytest.raises(CompilerError, match=r"variables no layer of the config owns: "
                                            r"\['layers/other/vars/0'\]"):
        compiler.load_model(_archive(tmp_path / "b.keras", config, extra))


def _good_file(tmp_path):
    model = Sequential([Input((4,)), layers.Dense(3)])
    path = tmp_path / "good.keras"
    model.save(path)
    return path


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "bad h5", "bad json"])
def test_corrupt_files_are_refused(tmp_path, damage):
    good = _good_file(tmp_path)
    data = good.read_bytes()
    bad = tmp_path / "bad.keras"
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        bad.write_bytes(np.random.default_rng(0).bytes(2048))
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        with zipfile.ZipFile(good) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        if damage == "bad h5":
            members["model.weights.h5"] = members["model.weights.h5"][:300]
        else:
            members["config.json"] = b'{"class_name": "Sequential", '
        with zipfile.ZipFile(bad, "w") as zf:
            for name, value in members.items():
                zf.writestr(name, value)
    with pytest.raises(CompilerError):
        compiler.load_model(bad)


def test_options_that_change_outputs_are_refused(tmp_path):
    cases = [(_layer("ReLU", max_value=6.0), r"'relu' \(ReLU\): max_value=6.0 is not supported"),
             (_layer("Conv2D", filters=2, kernel_size=[3, 3], data_format="channels_first"),
              r"data_format='channels_first' is not supported; only 'channels_last'"),
             (_layer("Dense", units=2, dtype={"module": "keras", "class_name": "DTypePolicy",
                                              "config": {"name": "mixed_float16"}}),
              r"dtype policy 'mixed_float16' \(mixed precision\) is not supported"),
             (_layer("Dense", units=2, activation="leaky_relu"),
              r"activation 'leaky_relu' is not supported"),
             (_layer("Dense", units=2, kernel_initializer={"class_name": "STFT",
                                                          "config": {}}),
              r"'dense' \(Dense\): weight kernel has no value in the file and its initializer "
              r"'STFT' is not supported")]
    for i, (entry, message) in enumerate(cases):
        path = _archive(tmp_path / f"m{i}.keras", _sequential_config(entry))
        with pytest.raises(CompilerError, match=message):
            compiler.load_model(path)


def test_save_refusals_write_nothing(tmp_path):
    class MyLayer(layers.Layer):
        def call(self, x):
            return x * 2

    class Sub(Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(2)

        def call(self, x):
            return self.d(x)

    custom = Sequential([Input((3,)), MyLayer()])
    with pytest.raises(CompilerError, match=r"layer 'my_layer' \(MyLayer\) has no Keras "
                                            r"equivalent"):
        custom.save(tmp_path / "custom.keras")
    with pytest.raises(CompilerError, match="is a subclassed Model"):
        Sub().save(tmp_path / "sub.keras")
    tied = layers.Dense(3)
    with pytest.raises(CompilerError, match="calls a layer twice"):
        Sequential([Input((3,)), tied, tied]).save(tmp_path / "tied.keras")
    with pytest.raises(CompilerError, match=r"must end in '\.keras'"):
        Sequential([layers.Dense(2)]).save(tmp_path / "net.h5")
    assert _files(tmp_path) == []


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(CompilerError, match="does not exist"):
        compiler.load_model(tmp_path / "nope.keras")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(CompilerError, match="neither a .keras zip, an HDF5 model nor JSON"):
        compiler.load_model(tmp_path / "x.txt")


def test_deeply_nested_config_is_refused_not_crashed(tmp_path):
    opening = '{"module": "keras", "class_name": "Sequential", "config": {"layers": ['
    text = opening * 5000 + json.dumps(_layer("Dense", units=2)) + "]}}" * 5000
    path = tmp_path / "deep.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", text)
    with pytest.raises(CompilerError):
        compiler.load_model(path)
