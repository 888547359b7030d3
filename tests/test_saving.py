"""Saving and loading weights (``.npz``) and architectures (``to_config``/``from_config``)."""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from compiler import (
    CompilerError,
    DeferredInitializationError,
    DTypeError,
    Input,
    Model,
    Sequential,
    ShapeError,
    TensorSpec,
    applications,
    compile,
    layers,
)
from compiler.frontend import saving

# -- example models ------------------------------------------------------------------------------
# (id, factory, input shapes without the batch axis). Add new layer types here as they appear.


def _mlp():
    return Sequential([layers.Dense(256, activation="relu"), layers.Dense(10)])


def _declared():
    return Sequential([Input((20,), name="features"), layers.Dense(32, activation="tanh"),
                       layers.Dropout(0.3), layers.Dense(4, use_bias=False), layers.Softmax()])


def _input_dim():
    return Sequential([layers.Dense(16, input_dim=12, activation="sigmoid"),
                       layers.LeakyReLU(0.1), layers.Dense(3, activation="gelu")])


def _reshapes():
    return Sequential([layers.Reshape((3, 4)), layers.Dense(5, activation="relu"),
                       layers.Flatten(), layers.Activation("tanh"), layers.ReLU(),
                       layers.Dense(2, kernel_initializer="he_normal", bias_initializer="ones")])


def _float64():
    return Sequential([layers.Dense(8, activation="leaky_relu"), layers.Dense(2)], dtype="float64")


def _sequence():
    return Sequential([layers.Dense(6), layers.Dense(3, activation="softmax")])


def _functional_shared():
    a, b = Input((5,), name="left"), Input((5,), name="right")
    shared = layers.Dense(5, activation="tanh", name="shared")
    head = layers.Dense(2, name="head")
    left, right = shared(a), shared(b)
    return Model([a, b], [head(shared(left)), layers.Dropout(0.5)(right)], name="siamese")


def _functional_single():
    x = Input((3, 4))
    h = layers.Flatten()(x)
    h = layers.Dense(7, activation="relu")(h)
    return Model(x, layers.Reshape((7, 1))(h))


def _broadcast_merges():
    x = Input((None, None, 4))
    s = layers.GlobalAveragePooling2D()(x)
    s = layers.Reshape((1, 1, 4))(layers.Dense(4, activation="sigmoid")(s))
    h = layers.Multiply()([x, s])
    h = layers.Average()([layers.Maximum()([h, s]), layers.Minimum()([h, x]),
                          layers.Subtract()([h, s])])
    return Model(x, layers.Add()([h, s]))


EXAMPLES = [
    ("mlp", _mlp, [(20,)]),
    ("declared input", _declared, [(20,)]),
    ("input_dim", _input_dim, [(12,)]),
    ("reshape/flatten/activations", _reshapes, [(12,)]),
    ("float64", _float64, [(9,)]),
    ("rank-3 input", _sequence, [(4, 11)]),
    ("functional shared layers", _functional_shared, [(5,), (5,)]),
    ("functional single", _functional_single, [(3, 4)]),
    ("broadcasting merges", _broadcast_merges, [(5, 6, 4)]),
    ("lenet5", applications.lenet5, [(28, 28, 1)]),
    ("resnet18", applications.resnet18, [(16, 16, 3)]),
]


def _inputs(shapes, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch,) + s).astype(np.float32) for s in shapes]


def _as_list(y):
    return y if isinstance(y, list) else [y]


def _assert_same_weights(m1, m2):
    w1, w2 = m1.get_weights(), m2.get_weights()
    assert len(w1) == len(w2)
    for a, b in zip(w1, w2):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def _snapshot(model):
    return [layer.get_weights() for layer in model.layers], model.built


def _assert_unchanged(model, snapshot):
    weights, built = snapshot
    assert model.built == built
    for layer, before in zip(model.layers, weights):
        after = layer.get_weights()
        assert len(after) == len(before)
        assert all(np.array_equal(a, b) for a, b in zip(before, after))


# -- round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, factory, shapes", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_config_and_weights_round_trip_bit_for_bit(tmp_path, name, factory, shapes):
    model = factory()
    xs = _inputs(shapes)
    expected = _as_list(model(*xs))
    path = tmp_path / "weights.npz"
    model.save_weights(path)
    config = json.loads(json.dumps(model.to_config()))  # JSON-serializable

    clone = Model.from_config(config)
    assert json.loads(json.dumps(clone.to_config())) == config
    clone.load_weights(path)
    _assert_same_weights(model, clone)
    for y, y2 in zip(expected, _as_list(clone(*xs))):
        assert y.dtype == y2.dtype and np.array_equal(y, y2)


FRESH = [e for e in EXAMPLES if e[0] != "resnet18"]  # functional: built at construction anyway


@pytest.mark.parametrize("name, factory, shapes", FRESH, ids=[e[0] for e in FRESH])
def test_loading_into_a_fresh_copy_built_or_not(tmp_path, name, factory, shapes):
    model = factory()
    xs = _inputs(shapes, batch=4, seed=1)
    expected = _as_list(model(*xs))
    model.save_weights(tmp_path / "w.npz")
    fresh = factory()  # uninitialized unless the architecture declares its input
    fresh.load_weights(tmp_path / "w.npz")
    assert fresh.built
    _assert_same_weights(model, fresh)
    for y, y2 in zip(expected, _as_list(fresh(*xs))):
        assert np.array_equal(y, y2)


def test_keys_name_layer_and_parameter(tmp_path):
    net = _mlp()
    net.build((None, 20))
    net.save_weights(tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz", allow_pickle=False) as f:
        assert sorted(f.files) == ["dense/bias", "dense/kernel", "dense_1/bias", "dense_1/kernel"]
        assert f["dense/kernel"].shape == (20, 256)


def test_functional_config_keeps_shared_layers_shared():
    model = _functional_shared()
    config = model.to_config()["config"]
    assert [c["config"]["name"] for c in config["layers"]] == ["shared", "head", "dropout"]
    assert [c["layer"] for c in config["calls"]].count("shared") == 3
    clone = Model.from_config(json.loads(json.dumps(model.to_config())))
    assert len(clone.layers) == 3
    assert clone.input_names == ["left", "right"]


def test_loading_an_uninitialized_model_infers_shapes_and_signature(tmp_path):
    net = _mlp()
    net.build((None, 20))
    net.save_weights(tmp_path / "w.npz")
    fresh = _mlp()
    assert not fresh.built
    fresh.load_weights(tmp_path / "w.npz")
    assert [layer.param_shapes["kernel"] for layer in fresh.layers] == [(20, 256), (256, 10)]
    assert "Total params: 7,946" in fresh.summary(print_fn=None)
    plan = compile(fresh)  # the inferred signature (N, 20) is the model's now
    x = np.ones((2, 20), np.float32)
    assert np.array_equal(plan(x), net(x))


def test_loading_into_a_built_model_updates_compiled_plans(tmp_path):
    src, dst = _mlp(), _mlp()
    src.build((None, 20))
    dst.build((None, 20))
    x = np.random.default_rng(0).standard_normal((3, 20)).astype(np.float32)
    plan = compile(dst, TensorSpec((None, 20)))
    cached = dst(x)
    src.save_weights(tmp_path / "w.npz")
    dst.load_weights(tmp_path / "w.npz")
    assert not np.array_equal(cached, dst(x))
    assert np.array_equal(plan(x), src(x)) and np.array_equal(dst(x), src(x))


def test_mapping_is_by_name_and_float64_files_are_cast(tmp_path):
    net = _mlp()
    net.build((None, 3))
    arrays = {f"{layer.name}/{p}": np.random.default_rng(1).standard_normal(w.shape)
              for layer in reversed(net.layers) for p, w in zip(layer.param_names,
                                                                layer.get_weights())}
    np.savez(tmp_path / "w.npz", **arrays)
    net.load_weights(tmp_path / "w.npz")
    assert net.layers[0].get_weights()[0].dtype == np.float32
    np.testing.assert_array_equal(net.layers[1].get_weights()[0],
                                  arrays["dense_1/kernel"].astype(np.float32))


# -- contradictions ---------------------------------------------------------------------------

def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _mlp_arrays(width=20, hidden=256, out=10, **override):
    arrays = {"dense/kernel": np.zeros((width, hidden), np.float32),
              "dense/bias": np.zeros((hidden,), np.float32),
              "dense_1/kernel": np.zeros((hidden, out), np.float32),
              "dense_1/bias": np.zeros((out,), np.float32)}
    arrays.update(override)
    return arrays


@pytest.mark.parametrize("built", [False, True], ids=["uninitialized", "built"])
@pytest.mark.parametrize("arrays, exc, match", [
    (_mlp_arrays(hidden=128), ShapeError, r"layer 'dense'.*kernel"),
    (_mlp_arrays(out=11), ShapeError, r"layer 'dense_1'.*(kernel|bias)"),
    (_mlp_arrays(**{"dense_1/kernel": np.zeros((255, 10), np.float32)}), ShapeError,
     r"layer 'dense_1'.*kernel.*\(255, 10\)"),
    (_mlp_arrays(**{"dense/bias": np.zeros((256, 1), np.float32)}), ShapeError,
     r"layer 'dense'.*bias"),
    (_mlp_arrays(**{"dense/kernel": np.zeros((20, 256, 1), np.float32)}), ShapeError,
     r"layer 'dense'.*kernel"),
    ({k: v for k, v in _mlp_arrays().items() if k != "dense_1/bias"}, CompilerError,
     r"missing \['dense_1/bias'\]"),
    (_mlp_arrays(**{"dense_2/kernel": np.zeros((1, 1), np.float32)}), CompilerError,
     r"unexpected \['dense_2/kernel'\]"),
    ({"kernel": np.zeros((20, 256))}, CompilerError,
     r"missing \['dense/bias', 'dense/kernel', 'dense_1/bias', 'dense_1/kernel'\].*unexpected"),
    (_mlp_arrays(**{"dense/bias": np.zeros(256, bool)}), DTypeError, r"dense/bias.*bool"),
    (_mlp_arrays(**{"dense/bias": np.array(["x"] * 256)}), DTypeError, r"dense/bias"),
    (_mlp_arrays(**{"dense/bias": np.zeros(256, np.complex64)}), DTypeError, r"complex"),
], ids=["hidden width", "output units", "chain", "bias rank", "kernel rank", "missing", "extra",
        "foreign keys", "bool", "strings", "complex"])
def test_contradicting_files_raise_and_change_nothing(tmp_path, arrays, exc, match, built):
    net = _mlp()
    if built:
        net.build((None, 20))
    before = _snapshot(net)
    with pytest.raises(exc, match=match):
        net.load_weights(_write(tmp_path / "w.npz", **arrays))
    _assert_unchanged(net, before)
    if not built:
        with pytest.raises(DeferredInitializationError):
            net.get_weights()
    net.load_weights(_write(tmp_path / "good.npz", **_mlp_arrays()))  # still loadable
    assert net.built


def test_built_model_rejects_a_file_of_another_input_width(tmp_path):
    net = _mlp()
    net.build((None, 20))
    before = _snapshot(net)
    with pytest.raises(ShapeError, match=r"layer 'dense'.*kernel.*\(20, 256\).*\(21, 256\)"):
        net.load_weights(_write(tmp_path / "w.npz", **_mlp_arrays(width=21)))
    _assert_unchanged(net, before)


def test_declared_input_contradicting_the_file(tmp_path):
    net = Sequential([Input((20,)), layers.Dense(256), layers.Dense(10)])
    before = _snapshot(net)
    with pytest.raises(ShapeError, match=r"kernel"):
        net.load_weights(_write(tmp_path / "w.npz", **_mlp_arrays(width=19)))
    _assert_unchanged(net, before)


# -- unreadable files --------------------------------------------------------------------------

def _good_file(tmp_path):
    net = _mlp()
    net.build((None, 20))
    path = tmp_path / "good.npz"
    net.save_weights(path)
    return path.read_bytes()


def _corrupt_member(data: bytes) -> bytes:
    """Flip bytes inside the first member's data, so its CRC no longer matches."""
    raw = bytearray(data)
    raw[200:260] = bytes(b ^ 0xFF for b in raw[200:260])
    return bytes(raw)


BAD_FILES = {
    "empty": lambda good: b"",
    "truncated half": lambda good: good[: len(good) // 2],
    "truncated tail": lambda good: good[:-10],
    "random bytes": lambda good: np.random.default_rng(0).bytes(4096),
    "text": lambda good: b"dense/kernel = [[1, 2], [3, 4]]\n",
    "json": lambda good: json.dumps({"dense/kernel": [[1.0]]}).encode(),
    "pickle": lambda good: pickle.dumps({"dense/kernel": np.zeros((20, 256))}),
    "corrupted member": _corrupt_member,
}


@pytest.mark.parametrize("built", [False, True], ids=["uninitialized", "built"])
@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_unreadable_files_raise_compiler_error_and_change_nothing(tmp_path, kind, built):
    good = _good_file(tmp_path)
    path = tmp_path / "bad.npz"
    path.write_bytes(BAD_FILES[kind](good))
    net = _mlp()
    if built:
        net.build((None, 20))
    before = _snapshot(net)
    with pytest.raises(CompilerError, match=r"weights file .*bad\.npz"):
        net.load_weights(path)
    _assert_unchanged(net, before)


def _npy(tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, np.zeros((20, 256)))
    return path, r"single ndarray"


def _pickled_objects(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, **{"dense/kernel": np.array([object()] * 3)})
    return path, r"dense/kernel.*(corrupt|unreadable)"


def _zip_of_text(tmp_path):
    path = tmp_path / "text.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("dense/kernel.txt", "1 2 3")
    return path, r"not an array"


def _missing(tmp_path):
    return tmp_path / "nope.npz", r"does not exist"


def _directory(tmp_path):
    return tmp_path, r"not a readable"


@pytest.mark.parametrize("make", [_npy, _pickled_objects, _zip_of_text, _missing, _directory],
                         ids=["npy", "pickled objects", "zip of text", "missing", "directory"])
def test_wrong_format_files(tmp_path, make):
    net = _mlp()
    net.build((None, 20))
    before = _snapshot(net)
    path, match = make(tmp_path)
    with pytest.raises(CompilerError, match=match):
        net.load_weights(path)
    _assert_unchanged(net, before)


# -- atomic saves ------------------------------------------------------------------------------

def test_a_crash_mid_save_keeps_the_previous_file(tmp_path, monkeypatch):
    net = _mlp()
    net.build((None, 20))
    path = tmp_path / "w.npz"
    net.save_weights(path)
    good = path.read_bytes()
    other = _mlp()
    other.build((None, 20))

    def crash(file, **arrays):
        file.write(b"PK\x03\x04 partial archive")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(saving.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        other.save_weights(path)
    assert path.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["w.npz"]  # no temporary file left behind


def test_save_writes_a_temporary_file_in_the_same_directory(tmp_path, monkeypatch):
    net = _mlp()
    net.build((None, 20))
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((os.path.dirname(os.path.abspath(src)), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(saving.os, "replace", spy)
    net.save_weights(tmp_path / "w.npz")
    assert seen == [(str(tmp_path), str(tmp_path / "w.npz"))]


def test_saving_an_uninitialized_model_explains_and_writes_nothing(tmp_path):
    with pytest.raises(DeferredInitializationError, match=r"no weights yet"):
        _mlp().save_weights(tmp_path / "w.npz")
    assert os.listdir(tmp_path) == []


# -- configs -----------------------------------------------------------------------------------

@saving.register_layer
class ScaledDense(layers.Dense):
    """A custom layer: loadable once registered (or merely imported)."""


def test_custom_layer_classes_round_trip():
    net = Sequential([ScaledDense(3, name="custom"), layers.Dense(2)])
    clone = Model.from_config(json.loads(json.dumps(net.to_config())))
    assert type(clone.layers[0]) is ScaledDense and clone.layers[0].name == "custom"


@pytest.mark.parametrize("config, match", [
    (None, r"class_name"),
    ({"class_name": "Sequential"}, r"class_name"),
    ({"class_name": "Graph", "config": {"name": "g", "dtype": "float32", "layers": []}},
     r"unknown model class 'Graph'"),
    ({"class_name": "Sequential", "config": {"name": "s", "dtype": "float32",
                                              "layers": [{"class_name": "Conv9D", "config": {}}]}},
     r"unknown layer class 'Conv9D'"),
    ({"class_name": "Sequential", "config": {"name": "s", "dtype": "float32",
                                              "layers": [{"class_name": "Dense",
                                                          "config": {"units": -1}}]}},
     r"units.*-1"),
    ({"class_name": "Sequential", "config": {"name": "s"}}, r"malformed Sequential"),
    ({"class_name": "Model", "config": {"name": "m", "dtype": "float32", "layers": [],
                                         "inputs": [], "calls": [{"layer": "x", "args": []}],
                                         "outputs": [], "single_output": True}},
     r"malformed Model"),
], ids=["not a dict", "no config", "unknown model", "unknown layer", "bad layer config",
        "missing keys", "dangling call"])
def test_malformed_configs_raise_compiler_error(config, match):
    with pytest.raises(CompilerError, match=match):
        Model.from_config(config)
