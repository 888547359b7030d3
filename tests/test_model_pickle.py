"""Models pickle, as Keras 3's do: Dask, multiprocessing and joblib ship a model to another
process this way. Weights, names, tying and deferred state travel; locks and compiled plans are
rebuilt on the other side, which then computes the same numbers bit for bit."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_custom_layers import MLP, MyDense

from compiler import (
    DeferredInitializationError,
    Input,
    Model,
    Sequential,
    TensorSpec,
    compile,
    layers,
)

ROOT = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(11)


def seed_mlp():
    return Sequential([layers.Dense(256, activation="relu"), layers.Dense(10)])


def tied():
    shared = layers.Dense(8, activation="relu")
    return Sequential([layers.Flatten(), shared, shared, layers.Dense(1)])


def nested_bn_cnn():
    block = Sequential([layers.Conv2D(4, 3), layers.BatchNormalization(), layers.ReLU()],
                       name="block")
    return Sequential([block, layers.GlobalAveragePooling2D(), layers.Dense(2)])


def functional_broadcast():
    x = Input((6,))
    gate = layers.Dense(1, activation="sigmoid")(x)
    return Model(x, layers.Dense(3)(layers.Multiply()([layers.Dense(6)(x), gate])))


def subclassed():
    return MLP()


def custom_layer():
    return Sequential([MyDense(5), layers.Dense(2)])


CASES = {  # builder, input shape
    "seed_mlp": (seed_mlp, (3, 20)),
    "tied": (tied, (4, 2, 4)),
    "nested_bn_cnn": (nested_bn_cnn, (2, 8, 8, 3)),
    "functional_broadcast": (functional_broadcast, (5, 6)),
    "subclassed": (subclassed, (4, 7)),
    "custom_layer": (custom_layer, (3, 4)),
}

_CHILD = """
import pickle, sys
import numpy as np
for path in sys.argv[1:]:
    model = pickle.loads(open(path + ".pkl", "rb").read())
    np.save(path + ".out.npy", np.asarray(model(np.load(path + ".x.npy"))))
"""


def _built(name: str):
    make, shape = CASES[name]
    model = make()
    x = RNG.standard_normal(shape).astype(np.float32)
    if name == "nested_bn_cnn":  # non-trivial statistics, so folding them shows
        model(x)
        bn = model.layers[0].layers[1]
        bn.set_weights([RNG.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in
                        bn.get_weights()])
    return model, x


def test_built_models_compute_the_same_in_a_fresh_process(tmp_path):
    expected, paths = {}, []
    for name in CASES:
        model, x = _built(name)
        expected[name] = np.asarray(model(x))  # built (and compiled) before pickling
        path = str(tmp_path / name)
        Path(path + ".pkl").write_bytes(pickle.dumps(model))
        np.save(path + ".x.npy", x)
        paths.append(path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
           "DEFERC_QUIET": "1"}
    done = subprocess.run([sys.executable, "-c", _CHILD, *paths], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    for name, path in zip(CASES, paths):
        got = np.load(path + ".out.npy")
        assert got.dtype == expected[name].dtype and got.shape == expected[name].shape, name
        np.testing.assert_array_equal(got, expected[name], err_msg=name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_copy_keeps_names_and_weights_and_is_independent(name):
    model, x = _built(name)
    before = np.asarray(model(x))
    copy = pickle.loads(pickle.dumps(model))
    assert [v.name for v in copy.weights] == [v.name for v in model.weights]
    for a, b in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(copy(x)), before)
    copy.set_weights([w * 0.5 + 0.25 for w in copy.get_weights()])
    assert not np.array_equal(np.asarray(copy(x)), before)
    np.testing.assert_array_equal(np.asarray(model(x)), before)  # the original is untouched


def test_an_unbuilt_model_pickles_and_defers_in_the_copy():
    model = seed_mlp()
    copy = pickle.loads(pickle.dumps(model))
    with pytest.raises(DeferredInitializationError):
        copy.get_weights()
    y = copy(np.ones((2, 20), np.float32))
    assert y.shape == (2, 10) and [w.shape for w in copy.get_weights()] == \
        [(20, 256), (256,), (256, 10), (10,)]
    with pytest.raises(DeferredInitializationError):  # building the copy left the original
        model.get_weights()


def test_tied_layers_stay_tied_in_the_copy():
    model, x = _built("tied")
    model(x)
    copy = pickle.loads(pickle.dumps(model))
    assert len(copy.weights) == len(model.weights) == 4  # the shared Dense counted once
    assert [layer.name for layer in copy.layers] == [layer.name for layer in model.layers]
    shared = copy.layers[1]  # Keras lists a shared layer once
    kernel, bias = shared.get_weights()
    shared.set_weights([np.zeros_like(kernel), bias + 1.0])
    got = np.asarray(copy(x))
    h = np.maximum(bias + 1.0, 0)  # both uses of the shared layer see the zero kernel
    head = copy.layers[2].get_weights()
    np.testing.assert_allclose(got, np.broadcast_to(h @ head[0] + head[1], got.shape),
                               rtol=1e-6, atol=1e-6)


def test_a_compiled_plan_of_the_original_still_runs_after_pickling_the_model():
    model, x = _built("seed_mlp")
    plan = compile(model, TensorSpec((None, 20)))
    before = plan(x)
    pickle.loads(pickle.dumps(model)).set_weights([np.zeros_like(w) for w in
                                                   model.get_weights()])
    np.testing.assert_array_equal(plan(x), before)
