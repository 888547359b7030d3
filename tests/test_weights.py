"""Weights by name: the store, pending weights in a pipeline run, plans that watch versions."""

import numpy as np
import pytest

import compiler.frontend.layers as frontend_layers
from compiler import Input, Model, Sequential, TensorSpec, compile, layers
from compiler.driver import build_graph
from compiler.frontend.layers import Layer
from compiler.passes import BUILD_PIPELINE, COMPILE_PIPELINE
from compiler.reference import run_reference
from compiler.weights import PendingWeights, Variable, WeightStore


def reference(model, x):
    """The unfolded, unfused IR run by the NumPy reference executor on the model's weights."""
    graph, _ = build_graph(model, [TensorSpec.from_array(x)], BUILD_PIPELINE)
    return run_reference(graph, x)


def assert_close(actual, expected, **tol):
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(actual, expected, **tol)


def reference_with_default_bn(model, x):
    """The reference output with every BatchNorm reset to its initial (identity-like) state."""
    saved = [layer.get_weights() for layer in model.layers]
    try:
        for layer in model.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.set_weights([np.zeros_like(w) if p in ("beta", "moving_mean")
                                   else np.ones_like(w)
                                   for p, w in zip(layer.param_names, layer.get_weights())])
        return reference(model, x)
    finally:
        for layer, w in zip(model.layers, saved):
            layer.set_weights(w)


def randomize_batch_norms(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape)
                               if p in ("gamma", "moving_variance") else
                               rng.normal(0, 0.2, w.shape)
                               for p, w in zip(layer.param_names, layer.get_weights())])


# -- the store ----------------------------------------------------------------------------------

def test_variable_versions_count_changes_and_notify_watchers():
    class Watcher:
        calls = 0

        def weights_changed(self):
            self.calls += 1

    var, w = Variable("dense/kernel"), Watcher()
    var.watch(w)
    assert var.version == 0 and var.shape is None
    var.replace(np.ones((2, 3), np.float32))
    var.assign(np.zeros((2, 3), np.float32))
    assert var.version == 2 and w.calls == 2 and var.numpy().sum() == 0


def test_pending_weights_shadow_the_store_until_commit():
    store = WeightStore({"d/kernel": Variable("kernel", np.zeros(2, np.float32))})
    pending = PendingWeights(store)
    pending.put("d/kernel", np.ones(2, np.float32))
    assert pending.get("d/kernel").sum() == 2 and store.value("d/kernel").sum() == 0
    pending.commit()
    assert store.value("d/kernel").sum() == 2 and store.version("d/kernel") == 1


def test_model_store_is_keyed_by_layer_and_param_and_lists_tied_weights_once():
    shared = layers.Dense(3, name="shared")
    x = Input((3,))
    model = Model(x, layers.Dense(2, name="head")(shared(shared(x))))
    assert list(model.weight_store) == ["shared/kernel", "shared/bias", "head/kernel",
                                        "head/bias"]
    assert model.weight_store["shared/kernel"] is shared.variable("kernel")


def test_ir_param_nodes_hold_keys_and_no_layer_objects():
    net = Sequential([layers.Dense(4), layers.BatchNormalization(), layers.Dense(2)])
    graph, _ = build_graph(net, [TensorSpec((None, 3))], COMPILE_PIPELINE)
    params = [d for _, d in graph.nodes(data=True) if d["op"] == "param"]
    # prepare_dense adds each small layer's transposed kernel as a prepared (derived) param
    assert {d["key"] for d in params if d.get("prepared")} == {
        "dense/kernel+batch_normalization+packed", "dense_1/kernel+packed"}
    assert {d["key"] for d in params if not d.get("prepared")} == {
        "dense/kernel+batch_normalization", "dense/bias+batch_normalization", "dense_1/kernel",
        "dense_1/bias"}
    for _, data in graph.nodes(data=True):
        assert not any(isinstance(v, Layer) for v in data.values()), data
    assert not hasattr(frontend_layers, "_weights_epoch")


# -- first calls: every pass sees the weights created in the same run ----------------------------

@pytest.mark.parametrize("make, shape", [
    (lambda: Sequential([layers.Conv2D(4, 3), layers.BatchNormalization()]), (2, 6, 6, 3)),
    (lambda: Sequential([layers.Conv2D(4, 3, use_bias=False),
                         layers.BatchNormalization(center=False)]), (2, 6, 6, 3)),
    (lambda: Sequential([layers.DepthwiseConv2D(3), layers.BatchNormalization(scale=False)]),
     (2, 6, 6, 3)),
    (lambda: Sequential([layers.Dense(5), layers.BatchNormalization()]), (2, 7)),
    (lambda: Sequential([layers.Dense(5), layers.Dropout(0.5), layers.BatchNormalization()]),
     (2, 7)),
], ids=["conv", "conv-no-bias", "depthwise", "dense", "dense-dropout"])
def test_batch_norm_folds_on_a_first_call_and_matches_the_reference(make, shape):
    net = make()
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    y = net(x)  # never built before: weights are created, folded and committed in one run
    assert net.built
    randomize_batch_norms(net)
    assert_close(net(x), reference(net, x), rtol=1e-5, atol=1e-5)
    assert_close(y, reference_with_default_bn(net, x), rtol=1e-5, atol=1e-5)
    (plan,) = net._plans.values()
    assert not any(d["op"] in ("batch_norm", "identity") for _, d in plan.graph.nodes(data=True))


def test_first_call_with_a_failing_build_leaves_the_model_untouched():
    net = Sequential([layers.Conv2D(4, 3), layers.BatchNormalization(), layers.Flatten(),
                      layers.Dense(2)])
    with pytest.raises(Exception, match="too small|conv2d"):
        net(np.zeros((1, 2, 2, 3), np.float32))
    assert not net.built and all(v.value is None for v in net.weight_store.values())


# -- plans watch versions ------------------------------------------------------------------------

@pytest.mark.parametrize("executor", ["codegen", "steps"])
def test_plan_sees_set_weights_after_compile(executor):
    net = Sequential([layers.Dense(3, activation="relu"), layers.Dense(2)])
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    plan = compile(net, TensorSpec((None, 5)), executor=executor)
    before = plan(x)
    net.set_weights([w * 2 for w in net.get_weights()])
    after = plan(x)
    assert not np.allclose(before, after)
    assert_close(after, reference(net, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("executor", ["codegen", "steps"])
def test_plan_recomputes_folded_weights_when_a_source_changes(executor):
    net = Sequential([Input((6, 6, 2)), layers.Conv2D(3, 3), layers.BatchNormalization(),
                      layers.Flatten(), layers.Dense(2)])
    x = np.random.default_rng(2).normal(size=(2, 6, 6, 2)).astype(np.float32)
    plan = compile(net, executor=executor)
    plan(x)
    randomize_batch_norms(net, seed=3)       # a BatchNorm weight: the folded kernel changes
    assert_close(plan(x), reference(net, x), rtol=1e-4, atol=1e-5)
    conv = net.layers[0]
    conv.set_weights([w + 0.5 for w in conv.get_weights()])  # the conv's own weight
    assert_close(plan(x), reference(net, x), rtol=1e-4, atol=1e-5)


def test_plan_sees_load_weights_after_compile(tmp_path):
    src = Sequential([layers.Dense(4), layers.Dense(2)])
    dst = Sequential([layers.Dense(4), layers.Dense(2)])
    x = np.random.default_rng(4).normal(size=(3, 5)).astype(np.float32)
    src(x)
    plan = compile(dst, TensorSpec((None, 5)))
    src.save_weights(tmp_path / "w.npz")
    dst.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(plan(x), src(x))


def test_tied_layer_shared_by_two_models_updates_both_plans():
    shared = layers.Dense(3)
    a = Sequential([Input((4,)), shared, layers.Dense(1)])
    b = Sequential([Input((4,)), shared])
    pa, pb = compile(a), compile(b)
    x = np.ones((2, 4), np.float32)
    pa(x), pb(x)
    shared.set_weights([np.full((4, 3), 0.5), np.zeros(3)])
    assert_close(pb(x), np.full((2, 3), 2.0))
    assert_close(pa(x), reference(a, x), rtol=1e-6)


@pytest.mark.parametrize("executor", ["codegen", "steps"])
@pytest.mark.parametrize("conv", [lambda: layers.Conv2D(3, 3, name="conv"),
                                  lambda: layers.DepthwiseConv2D(1, depth_multiplier=2,
                                                                 name="conv")],
                         ids=["conv", "depthwise"])  # the long fuzz profile found the latter
def test_two_batch_norms_fold_into_one_conv_and_follow_either_one(executor, conv):
    net = Sequential([conv(), layers.BatchNormalization(),
                      layers.BatchNormalization(), layers.Flatten(), layers.Dense(2)])
    x = np.random.default_rng(6).normal(size=(2, 5, 5, 2)).astype(np.float32)
    net(x)  # first call: both fold, nested
    plan = compile(net, TensorSpec((None, 5, 5, 2)), executor=executor)
    assert [d["op"] for _, d in plan.graph.nodes(data=True)].count("batch_norm") == 0
    keys = sorted(d["key"] for _, d in plan.graph.nodes(data=True) if d["op"] == "param")
    assert "conv/kernel+batch_normalization+batch_normalization_1" in keys
    assert_close(plan(x[:0]), reference(net, x[:0]))  # an empty batch, as the fuzzer tried
    randomize_batch_norms(net, seed=7)  # changes both BatchNorms, including the outer one
    assert_close(plan(x), reference(net, x), rtol=1e-4, atol=1e-5)
    bn = net.layers[2]
    bn.set_weights([w * 1.5 for w in bn.get_weights()])
    assert_close(plan(x), reference(net, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("executor", ["codegen", "steps"])
def test_set_weights_while_other_threads_call_the_plan_settles_on_the_last_weights(executor):
    import threading

    net = Sequential([Input((6,)), layers.Dense(8, activation="relu"), layers.Dense(3)])
    plan = compile(net, executor=executor)
    x = np.random.default_rng(8).normal(size=(4, 6)).astype(np.float32)
    errors: list = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                assert plan(x).shape == (4, 3)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    rng = np.random.default_rng(9)
    for _ in range(30):
        net.set_weights([rng.normal(size=w.shape) for w in net.get_weights()])
    stop.set()
    for t in readers:
        t.join(timeout=120)
    assert not errors, errors
    np.testing.assert_allclose(plan(x), reference(net, x), rtol=1e-5, atol=1e-5)


def test_a_new_plan_takes_the_weights_compile_derived_and_rereads_later_changes(monkeypatch):
    import compiler.driver
    import runtime.plan
    from runtime import Plan

    net = Sequential([Input((6, 6, 2)), layers.Conv2D(3, 3), layers.BatchNormalization(),
                      layers.Flatten(), layers.Dense(2)])
    x = np.random.default_rng(4).normal(size=(2, 6, 6, 2)).astype(np.float32)
    calls = []

    def counting(spec, get):
        calls.append(spec.kind)
        return derive(spec, get)

    derive = runtime.plan.derive
    monkeypatch.setattr(runtime.plan, "derive", counting)
    plan = compile(net, executor="steps")
    assert calls == []  # the folded kernel and bias come from compile, not computed again
    assert_close(plan(x), reference(net, x), rtol=1e-4, atol=1e-5)

    def changed_before_the_plan(graph, *args, **kwargs):  # a set_weights racing compile
        randomize_batch_norms(net, seed=5)
        return Plan(graph, *args, **kwargs)

    monkeypatch.setattr(compiler.driver, "runtime_factory", lambda: changed_before_the_plan)
    plan = compile(net, executor="steps")
    assert "fold_batch_norm" in calls  # the changed BatchNorm is folded again
    assert_close(plan(x), reference(net, x), rtol=1e-4, atol=1e-5)
