"""Custom layers and subclassed models, the Keras way: ``build`` creates weights with
``add_weight`` from the inferred input shape, ``call`` is traced into primitive ops; subclassed
``Model``s track their layers from attributes. Checked against hand-written NumPy."""

import inspect
import io
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from compiler import (
    CompilerError,
    DeferredInitializationError,
    Input,
    Model,
    Sequential,
    ShapeError,
    TensorSpec,
    compile,
    layers,
    ops,
)
from compiler.reference import run_reference

ROOT = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(0)


class MyDense(layers.Layer):
    """d2l's ``MyDense`` (Keras version), verbatim apart from the imports."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.weight = self.add_weight(name="weight", shape=[input_shape[-1], self.units],
                                      initializer="random_normal")
        self.bias = self.add_weight(name="bias", shape=[self.units], initializer="random_normal")

    def call(self, X):
        linear = ops.matmul(X, self.weight) + self.bias
        return ops.relu(linear)


class CenteredLayer(layers.Layer):
    """d2l's layer without parameters."""

    def call(self, X):
        return X - ops.mean(X, axis=-1, keepdims=True)


def test_my_dense_defers_build_until_the_first_call():
    dense = MyDense(3)
    assert not dense.built and dense.get_weights() == [] and dense.param_names == []
    X = RNG.uniform(size=(2, 5)).astype(np.float32)
    Y = dense(X)
    assert dense.built and dense.name.startswith("my_dense")
    w, b = dense.get_weights()
    assert w.shape == (5, 3) and b.shape == (3,)
    assert np.abs(w).max() > 0 and not np.array_equal(w[:, 0], b)  # random, weight != bias
    np.testing.assert_allclose(Y, np.maximum(X @ w + b, 0), rtol=1e-6)
    np.testing.assert_array_equal(dense.weight.numpy(), w)
    assert dense.weight.name == f"{dense.name}/weight" and dense.weight.shape == (5, 3)


def test_custom_layers_in_a_sequential_compile_and_match_numpy():
    net = Sequential([layers.Dense(8, activation="tanh"), MyDense(4), CenteredLayer(),
                      MyDense(2)])
    X = RNG.normal(size=(6, 5)).astype(np.float32)
    Y = net(X)
    names = [layer.name for layer in net.layers]
    assert names[1:] == ["my_dense", "centered_layer", "my_dense_1"]
    assert list(net.weight_store) == ["dense/kernel", "dense/bias", "my_dense/weight",
                                      "my_dense/bias", "my_dense_1/weight", "my_dense_1/bias"]
    k, kb, w1, b1, w2, b2 = net.get_weights()
    h = np.maximum(np.tanh(X @ k + kb) @ w1 + b1, 0)
    h = h - h.mean(-1, keepdims=True)
    want = np.maximum(h @ w2 + b2, 0)
    np.testing.assert_allclose(Y, want, rtol=1e-5, atol=1e-6)
    plan = compile(net, TensorSpec((None, 5)))
    for n in (1, 7):
        x = RNG.normal(size=(n, 5)).astype(np.float32)
        np.testing.assert_allclose(plan(x), run_reference(plan.graph, x), rtol=1e-5, atol=1e-6)
    ops_in_ir = {d["op"] for _, d in plan.graph.nodes(data=True)}
    assert {"dense", "mean"} <= ops_in_ir and "matmul" not in ops_in_ir  # x @ w + b -> dense
    unfused = compile(net, TensorSpec((None, 5)), disabled={"fuse"})
    ops_in_ir = {d["op"] for _, d in unfused.graph.nodes(data=True)}
    assert {"matmul", "variable", "mean"} <= ops_in_ir  # primitives, not one opaque node


def test_set_weights_after_compiling_is_seen():
    net = Sequential([MyDense(3)])
    X = RNG.normal(size=(4, 2)).astype(np.float32)
    net(X)
    w = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    b = np.array([1, -1, 0.5], np.float32)
    net.set_weights([w, b])
    np.testing.assert_allclose(net(X), np.maximum(X @ w + b, 0), rtol=1e-6)


def test_build_receives_the_inferred_shape_with_none_for_run_time_sizes():
    seen = []

    class Probe(layers.Layer):
        def build(self, input_shape):
            seen.append(input_shape)

        def call(self, x):
            return x * 2.0

    net = Sequential([layers.Dense(7), Probe()])
    net.build((None, 3))
    assert seen == [(None, 7)]
    net(np.ones((2, 3), np.float32))
    assert seen == [(None, 7)]  # build runs once


def test_custom_layer_in_a_functional_model_and_weights_round_trip(tmp_path):
    x = Input((4,))
    layer = MyDense(5, name="mine")
    y = layer(x)
    assert y.shape[1] == 5 and layer.built is False  # declared, created by the model build
    model = Model(x, layers.Dense(2)(y))
    assert layer.built
    X = RNG.normal(size=(3, 4)).astype(np.float32)
    before = model(X)
    model.save_weights(tmp_path / "w.npz")
    other = Model(x2 := Input((4,)), layers.Dense(2)(MyDense(5, name="mine")(x2)))
    other.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(other(X), before)
    assert "mine/weight" in np.load(tmp_path / "w.npz").files


def test_a_shape_error_in_call_names_the_layer_and_the_line():
    class Wrong(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(name="w", shape=(3, 2), initializer="ones")

        def call(self, x):
            return ops.matmul(x, self.w)  # the line the error points at

    line = inspect.getsource(Wrong).splitlines()
    lineno = inspect.getsourcelines(Wrong)[1] + next(
        i for i, t in enumerate(line) if "the line the error" in t)
    with pytest.raises(ShapeError) as info:
        Sequential([Wrong()])(np.ones((2, 4), np.float32))
    message = str(info.value)
    assert "Wrong 'wrong'" in message and "expected 4, received 3" in message
    assert f"{__file__}:{lineno}" in message


def test_a_failed_build_leaves_the_custom_layer_unbuilt():
    dense = MyDense(3)
    with pytest.raises(ShapeError, match="Reshape"):
        Sequential([dense, layers.Reshape((7,))])(np.ones((2, 5), np.float32))
    assert not dense.built and dense.param_names == [] and dense.get_weights() == []
    X = RNG.normal(size=(2, 4)).astype(np.float32)
    w_shape = [w.shape for w in (dense(X), *dense.get_weights())]
    assert w_shape == [(2, 3), (4, 3), (3,)]  # built afresh for the new input width


def test_a_symbolic_weight_shape_is_refused():
    class Spatial(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(name="w", shape=(input_shape[1],), initializer="ones")

        def call(self, x):
            return x

    with pytest.raises(DeferredInitializationError, match=r"weight 'w' needs a concrete shape"):
        compile(Sequential([Spatial()]), TensorSpec((None, None)))


# -- control flow on traced values -----------------------------------------------------------
class Branchy(layers.Layer):
    def call(self, x):
        if ops.sum(x) > 0:  # the branch
            return x
        return -x


class Floaty(layers.Layer):
    def call(self, x):
        return x * float(ops.max(x))


class Loopy(layers.Layer):
    def call(self, x):
        return ops.stack([row for row in x])


@pytest.mark.parametrize("cls, marker, what", [
    (Branchy, "if ops.sum(x) > 0", "bool()"),
    (Floaty, "float(ops.max(x))", "float()"),
    (Loopy, "for row in x", "iterating"),
])
def test_control_flow_on_tensor_values_raises_pointing_at_the_line(cls, marker, what):
    source, first = inspect.getsourcelines(cls)
    lineno = first + next(i for i, t in enumerate(source) if marker in t)
    with pytest.raises(CompilerError) as info:
        Sequential([cls()])(np.ones((2, 3), np.float32))
    message = str(info.value)
    assert f"{__file__}:{lineno}" in message, message
    assert marker in message and what in message
    assert "symbolic tensor" in message and "ops.where" in message


def test_control_flow_in_a_functional_graph_raises_too():
    x = Input((3,))
    with pytest.raises(CompilerError, match="symbolic tensor"):
        if x > 0:
            pass


# -- subclassed models -----------------------------------------------------------------------
class MLP(Model):
    def __init__(self):
        super().__init__()
        self.blocks = [layers.Dense(16, activation="relu"), MyDense(8)]
        self.out = layers.Dense(3)

    def call(self, X):
        for block in self.blocks:
            X = block(X)
        return self.out(X * 0.5 + ops.tanh(X))


def test_subclassed_model_with_a_list_of_layers_matches_numpy():
    net = MLP()
    assert net.name == "mlp"
    with pytest.raises(DeferredInitializationError):
        net.get_weights()
    X = RNG.normal(size=(5, 20)).astype(np.float32)
    Y = net(X)
    assert [layer.name for layer in net.layers] == ["dense", "my_dense", "dense_1"]
    k1, b1, w, b, k2, b2 = net.get_weights()
    h = np.maximum(np.maximum(X @ k1 + b1, 0) @ w + b, 0)
    np.testing.assert_allclose(Y, (h * 0.5 + np.tanh(h)) @ k2 + b2, rtol=1e-5, atol=1e-6)
    assert Y.shape == (5, 3)


def test_subclassed_model_with_two_inputs_and_two_outputs():
    class TwoHeads(Model):
        def __init__(self):
            super().__init__(name="heads")
            self.shared = layers.Dense(4)

        def call(self, a, b):
            return self.shared(a) + self.shared(b), ops.sum(a * b, axis=-1)

    net = TwoHeads()
    a, b = (RNG.normal(size=(3, 6)).astype(np.float32) for _ in range(2))
    y1, y2 = net(a, b)
    k, bias = net.get_weights()
    np.testing.assert_allclose(y1, a @ k + bias + b @ k + bias, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y2, (a * b).sum(-1), rtol=1e-5)


def test_summary_shows_custom_layers_without_building_them():
    net = Sequential([layers.Dense(4), MyDense(3)])
    text = net.summary(print_fn=None)
    assert "my_dense (MyDense)" in text and "Total params: ?" in text
    assert not net.layers[1].built and net.layers[1].param_names == []
    net.build((None, 5))
    text = net.summary(print_fn=None)
    assert "weight (4, 3), bias (3,)" in text and "Total params: 39" in text


def test_configs_refuse_what_they_cannot_rebuild():
    with pytest.raises(CompilerError, match="subclassed Model"):
        MLP().to_config()
    x = Input((3,))
    with pytest.raises(CompilerError, match="compiler.ops calls"):
        Model(x, ops.relu(x) + 1.0).to_config()


def test_model_without_call_is_refused():
    with pytest.raises(CompilerError, match="subclassing form"):
        Model()


# -- pickling --------------------------------------------------------------------------------
def _globals(blob: bytes) -> set:
    """Module names of every class or function the pickle refers to."""
    found: set = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            found.add(module)
            return super().find_class(module, name)

    Recorder(io.BytesIO(blob)).load()
    return found


def test_a_custom_layer_plan_pickles_and_runs_in_a_fresh_process(tmp_path):
    net = Sequential([Input((6,)), MyDense(5), CenteredLayer(), layers.Dense(2)])
    plan = compile(net)
    x = RNG.normal(size=(4, 6)).astype(np.float32)
    expected = plan(x)
    blob = pickle.dumps(plan)
    modules = _globals(blob)
    assert not any(m.startswith("compiler.frontend") for m in modules), modules
    assert "__main__" not in modules and not any(m.startswith("tests") for m in modules)
    (tmp_path / "plan.pkl").write_bytes(blob)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import pickle
        import numpy as np
        plan = pickle.loads(open({str(tmp_path / 'plan.pkl')!r}, 'rb').read())
        np.save({str(tmp_path / 'y.npy')!r}, plan(np.load({str(tmp_path / 'x.npy')!r})))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, env=env, timeout=300)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
