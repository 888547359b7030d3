"""sink_transposes: Before -> pass -> Expected graphs built with ``compiler.ops``; outputs
unchanged against the reference executor; idempotent; never adds a transpose."""

import pickle

import numpy as np
import pytest

from compiler import Input, Model, compile, layers, lower, ops
from compiler.ir import data_operands, verify
from compiler.passes import BUILD_PIPELINE, CompileContext, run_pipeline, sink_transposes
from compiler.passes.sink_transposes import count_transposes
from compiler.reference import run_reference

RNG = np.random.default_rng(0)
NCHW = (0, 3, 1, 2)  # NHWC -> NCHW
NHWC = (0, 2, 3, 1)  # NCHW -> NHWC


def built(model):
    g = lower(model, [s.to_type(model.dtype, i) for i, s in enumerate(model._input_specs)])
    return run_pipeline(g, BUILD_PIPELINE, CompileContext(seed=0))


def _norm(v):
    if isinstance(v, np.ndarray):
        return ("array", v.shape, tuple(np.round(v.ravel().astype(np.float64), 6)))
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x) for x in v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def _attrs(op, attrs):
    attrs = dict(attrs)
    axis = attrs.get("axis")
    if op in ("sum", "mean", "max", "min") and isinstance(axis, (int, np.integer)):
        attrs["axis"] = (int(axis),)
    if axis is not None and isinstance(attrs["axis"], (list, tuple)):
        attrs["axis"] = tuple(sorted(attrs["axis"]))
    if op == "transpose":
        attrs["axes"] = tuple(attrs["axes"])
    attrs.pop("expand_after_batch", None)
    return tuple(sorted((k, _norm(v)) for k, v in attrs.items()))


def expr(g, node=None):
    """The graph as nested expressions: comparable whatever the node ids."""
    if node is None:
        return tuple(expr(g, n) for n in g.graph["outputs"])
    data = g.nodes[node]
    if data["op"] == "input":
        return ("input", g.graph["inputs"].index(node))
    if data["op"] == "param":
        return ("param", data["param"])
    if data["op"] == "constant":
        return ("constant", _norm(np.asarray(data["attrs"]["value"])))
    return (data["op"], _attrs(data["op"], data["attrs"]),
            tuple(expr(g, n) for n in data_operands(g, node)))


def inputs(g, batch=2):
    return [RNG.standard_normal([batch if not isinstance(d, int) else d
                                 for d in g.nodes[n]["type"].shape]).astype(np.float32)
            for n in g.graph["inputs"]]


def check_pass(before_model, expected_model, transposes_left=None):
    """Run the pass on Before: Expected's graph, same outputs, idempotent, no transpose added."""
    g = built(before_model)
    xs = inputs(g)
    reference = run_reference(g, *xs)
    before = count_transposes(g)
    g = sink_transposes(g, CompileContext())
    verify(g)
    after = count_transposes(g)
    assert after <= before
    if transposes_left is not None:
        assert after == transposes_left
    for a, b in zip(*((run_reference(g, *xs), reference) if isinstance(reference, list)
                      else ([run_reference(g, *xs)], [reference]))):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    if expected_model is not None:
        assert expr(g) == expr(built(expected_model))
    again = sink_transposes(g, CompileContext())
    assert expr(again) == expr(g)
    return g


def test_a_pair_around_an_elementwise_chain_cancels():
    x = Input((5, 6, 3))
    y = ops.transpose(ops.exp(ops.relu(ops.transpose(x, NCHW))) * 2.0, NHWC)
    x2 = Input((5, 6, 3))
    check_pass(Model(x, y), Model(x2, ops.exp(ops.relu(x2)) * 2.0), transposes_left=0)


def test_binary_op_of_two_transposed_values():
    a, b = Input((4, 5, 3)), Input((4, 5, 3))
    y = ops.transpose(ops.transpose(a, NCHW) - ops.transpose(b, NCHW), NHWC)
    a2, b2 = Input((4, 5, 3)), Input((4, 5, 3))
    check_pass(Model([a, b], y), Model([a2, b2], a2 - b2), transposes_left=0)


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (3, 1, 1)])
def test_a_broadcast_constant_is_laid_out_once(shape):
    bias = RNG.standard_normal(shape).astype(np.float32)
    x = Input((4, 5, 3))
    y = ops.transpose(ops.maximum(ops.transpose(x, NCHW) + bias, 0.5), NHWC)
    x2 = Input((4, 5, 3))
    relaid = bias.reshape(1, 3, 1, 1).transpose(0, 2, 3, 1)  # (1, 1, 1, C)
    check_pass(Model(x, y), Model(x2, ops.maximum(x2 + relaid, 0.5)), transposes_left=0)


def test_transposes_of_constants_fold():
    c = RNG.standard_normal((2, 3)).astype(np.float32)
    x = Input((3, 2))
    y = x * ops.transpose(c, (1, 0))
    x2 = Input((3, 2))
    check_pass(Model(x, y), Model(x2, x2 * np.ascontiguousarray(c.T)), transposes_left=0)


class NCHWBias(layers.Layer):
    """A weight broadcast against a transposed value, as an importer writes it."""

    def build(self, input_shape):
        self.b = self.add_weight(name="b", shape=(input_shape[-1], 1, 1),
                                 initializer="random_normal")

    def call(self, x):
        return ops.transpose(ops.transpose(x, NCHW) * self.b, NHWC)


def test_a_broadcast_weight_is_re_laid_out_and_later_set_weights_are_seen():
    x = Input((4, 5, 3))
    model = Model(x, NCHWBias(name="bias")(x))
    g = check_pass(model, None, transposes_left=0)
    params = [d for _, d in g.nodes(data=True) if d["op"] == "param"]
    assert [p["derived"].kind for p in params] == ["relayout"]
    assert params[0]["type"].shape == (1, 1, 1, 3)
    plan = compile(model)
    assert "transposes left: 0" in plan.describe()
    new = np.arange(3, dtype=np.float32).reshape(3, 1, 1) + 1
    model.set_weights([new])
    xs = RNG.standard_normal((2, 4, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(plan(xs), xs * new.reshape(1, 1, 1, 3), rtol=1e-6)
    copy = pickle.loads(pickle.dumps(plan))  # the derived (re-laid out) weight travels as data
    np.testing.assert_allclose(copy(xs), xs * new.reshape(1, 1, 1, 3), rtol=1e-6)


def test_concatenate_axis_is_remapped():
    a, b = Input((4, 5, 3)), Input((4, 5, 2))
    cat = ops.concatenate([ops.transpose(a, NCHW), ops.transpose(b, NCHW)], axis=1)
    a2, b2 = Input((4, 5, 3)), Input((4, 5, 2))
    check_pass(Model([a, b], ops.transpose(cat, NHWC)),
               Model([a2, b2], ops.concatenate([a2, b2], axis=3)), transposes_left=0)


def test_reductions_and_softmax_axes_are_remapped():
    x = Input((4, 5, 3))
    t = ops.transpose(x, NCHW)
    channel_sum = ops.sum(t, axis=1)  # (N, H, W): no transpose left at all
    spatial = ops.transpose(ops.mean(t, axis=(2, 3), keepdims=True), NHWC)
    soft = ops.transpose(ops.softmax(t, axis=1), NHWC)
    logsoft = ops.transpose(ops.log_softmax(t, axis=2), NHWC)
    x2 = Input((4, 5, 3))
    expected = [ops.sum(x2, axis=3), ops.mean(x2, axis=(1, 2), keepdims=True),
                ops.softmax(x2, axis=3), ops.log_softmax(x2, axis=1)]
    check_pass(Model(x, [channel_sum, spatial, soft, logsoft]), Model(x2, expected),
               transposes_left=0)


def test_a_reduction_that_keeps_a_permuted_order_keeps_one_transpose():
    x = Input((4, 5, 3))
    y = ops.max(ops.transpose(x, NCHW), axis=2)  # (N, C, W) from NHWC: (N, W, C) then swap
    x2 = Input((4, 5, 3))
    check_pass(Model(x, y), Model(x2, ops.transpose(ops.max(x2, axis=1), (0, 2, 1))),
               transposes_left=1)


def test_pad_and_slice_attrs_are_permuted():
    x = Input((4, 5, 3))
    t = ops.transpose(x, NCHW)
    p = ops.pad(t, ((0, 0), (0, 1), (2, 0), (1, 1)))
    s = ops.slice(p, (0, 1, 0, 1), (-1, 2, 3, 4))
    x2 = Input((4, 5, 3))
    p2 = ops.pad(x2, ((0, 0), (2, 0), (1, 1), (0, 1)))
    s2 = ops.slice(p2, (0, 0, 1, 1), (-1, 3, 4, 2))
    check_pass(Model(x, ops.transpose(s, NHWC)), Model(x2, s2), transposes_left=0)


def test_imported_pooling_chain_keeps_transposes_at_the_ends_only():
    """What the importer writes for NCHW MaxPool -> Relu -> AveragePool -> Add(bias)."""
    x = Input((3, 8, 8))  # NCHW
    h = ops.transpose(layers.MaxPooling2D()(ops.transpose(x, NHWC)), NCHW)
    h = ops.relu(h)
    h = ops.transpose(layers.AveragePooling2D()(ops.transpose(h, NHWC)), NCHW)
    h = h + RNG.standard_normal((3, 1, 1)).astype(np.float32)
    check_pass(Model(x, h), None, transposes_left=2)


def test_imported_conv_block_fuses_after_the_transposes_are_gone():
    """NCHW conv -> relu -> conv + residual -> relu, each conv wrapped as the importer does."""
    x = Input((4, 6, 6))
    a = ops.transpose(layers.Conv2D(4, 3, padding="same", name="c1")(ops.transpose(x, NHWC)),
                      NCHW)
    a = ops.relu(a)
    b = ops.transpose(layers.Conv2D(4, 3, padding="same", name="c2")(ops.transpose(a, NHWC)),
                      NCHW)
    y = ops.relu(b + x)
    model = Model(x, y)
    check_pass(model, None, transposes_left=2)
    plan = compile(model)
    assert "transposes left: 2" in plan.describe()
    convs = [d for _, d in plan.graph.nodes(data=True) if d["op"] == "conv2d"]
    assert sorted((d["attrs"]["activation"], bool(d["attrs"].get("residual"))) for d in convs) \
        == [("relu", False), ("relu", True)]
    xs = RNG.standard_normal((2, 4, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(plan(xs), model.predict(xs) if hasattr(model, "predict")
                               else model(xs), rtol=1e-5, atol=1e-5)


def test_a_shared_transpose_is_not_duplicated():
    x = Input((4, 5, 3))
    t = ops.transpose(x, NCHW)
    model = Model(x, [ops.relu(t), ops.exp(t)])  # sinking would need two transposes
    g = check_pass(model, None, transposes_left=1)
    (t_node,) = [n for n, d in g.nodes(data=True) if d["op"] == "transpose"]
    assert sorted(g.nodes[u]["op"] for u in g.successors(t_node)) == ["activation", "exp"]


def test_graphs_without_transposes_are_returned_as_they_are():
    x = Input((3,))
    g = built(Model(x, ops.relu(x)))
    assert sink_transposes(g, CompileContext()) is g


# -- property: random chains of transposes and layout-agnostic ops ------------------------------
PERMS = [NCHW, NHWC, (0, 2, 1, 3), (3, 2, 1, 0), (0, 1, 3, 2)]


def _step(h, kind, arg):
    rank_perm = PERMS[arg % len(PERMS)]
    if kind == "transpose":
        return ops.transpose(h, rank_perm)
    if kind == "tanh":
        return ops.tanh(h)
    if kind == "bias":  # a constant broadcast along one axis
        axis = arg % 4
        shape = [1, 1, 1, 1]
        shape[axis] = h.shape[axis] if isinstance(h.shape[axis], int) else 1
        return h + np.linspace(-1, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    if kind == "sum":
        return ops.sum(h, axis=arg % 4, keepdims=True)
    if kind == "softmax":
        return ops.softmax(h, axis=arg % 4)
    if kind == "concat":
        return ops.concatenate([h, ops.exp(h)], axis=1 + arg % 3)
    if kind == "pad":
        widths = [(0, 0)] * 4
        widths[1 + arg % 3] = (1, 0)
        return ops.pad(h, widths)
    raise AssertionError(kind)


def test_random_chains_keep_outputs_and_never_add_transposes():
    from hypothesis import given
    from hypothesis import strategies as st

    kinds = st.sampled_from(["transpose", "transpose", "tanh", "bias", "sum", "softmax",
                             "concat", "pad"])

    @given(st.lists(st.tuples(kinds, st.integers(0, 11)), min_size=1, max_size=8),
           st.booleans())
    def run(steps, second_output):
        x = Input((3, 4, 2))
        h = x
        outs = []
        for i, (kind, arg) in enumerate(steps):
            h = _step(h, kind, arg)
            if second_output and i == len(steps) // 2:
                outs.append(h)
        check_pass(Model(x, [h, *outs] if outs else h), None)

    run()


def _nchw(layer):
    """A layer called the way the importer calls an NCHW op: transposes in and out."""
    return lambda x: ops.transpose(layer(ops.transpose(x, NHWC)), NCHW)


def test_imported_style_resnet_keeps_one_transpose_and_folds_and_fuses_everything():
    x = Input((3, 12, 12))  # NCHW
    h = ops.relu(_nchw(layers.BatchNormalization())(_nchw(layers.Conv2D(8, 3, padding="same",
                                                                         use_bias=False))(x)))
    h = _nchw(layers.MaxPooling2D(2))(h)
    for width, stride in ((8, 1), (16, 2)):
        r = _nchw(layers.Conv2D(width, 3, strides=stride, padding="same"))(h)
        r = ops.relu(_nchw(layers.BatchNormalization())(r))
        r = _nchw(layers.Conv2D(width, 3, padding="same"))(r)
        short = h if stride == 1 else _nchw(layers.Conv2D(width, 1, strides=stride))(h)
        h = ops.relu(r + short)
    pooled = layers.GlobalAveragePooling2D()(ops.transpose(h, NHWC))  # (N, C): no way back
    model = Model(x, layers.Dense(5)(pooled))
    g = built(model)
    assert count_transposes(g) == 21  # two per wrapped op, one before the pooling
    check_pass(model, None, transposes_left=1)
    plan = compile(model)
    assert "transposes left: 1" in plan.describe()
    final = [d["op"] for _, d in plan.graph.nodes(data=True) if d["op"] not in ("input", "param")]
    assert "batch_norm" not in final and "activation" not in final and "add" not in final, final
    xs = RNG.standard_normal((2, 3, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(plan(xs), run_reference(g, xs), rtol=1e-4, atol=1e-5)
