"""Audit of issue 9 (IR v2): one small check per bullet of the issue's "Why" list and per item
of "What to build" (1-10), on small shapes. Prints PASS/FAIL per check; exits 1 on a failure.

    python examples/ir_v2_audit.py

The long fuzz profile is the issue's last "Why" bullet; it runs separately:
``HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py -x -q``.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler import Input, Model, Sequential, compile, initializers, layers, ops  # noqa: E402
from compiler.errors import CompilerError, ShapeError  # noqa: E402
from compiler.ir import verify  # noqa: E402

RESULTS: list[tuple[str, bool, str]] = []
RNG = np.random.default_rng(0)


def check(name: str):
    def run(fn):
        try:
            fn()
            RESULTS.append((name, True, ""))
        except Exception as e:  # an audit reports every failure, then goes on
            RESULTS.append((name, False, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
        return fn
    return run


def data(*shape, dtype=np.float32):
    return RNG.normal(size=shape).astype(dtype)


# -- "Why" ----------------------------------------------------------------------------------------
@check("why: Conv2D + BatchNormalization on a first call (deferred init, folded)")
def _():
    net = Sequential([layers.Conv2D(4, 3), layers.BatchNormalization()])
    x = data(2, 6, 6, 3)
    y = net(x)
    assert y.shape == (2, 4, 4, 4) and np.isfinite(y).all()


@check("why: a layer used twice in a Sequential (tying) runs, weights listed once")
def _():
    shared = layers.Dense(8, activation="relu")
    net = Sequential([layers.Flatten(), shared, shared, layers.Dense(1)])
    x = data(3, 2, 4)
    y = net(x)
    w = net.get_weights()
    assert len(w) == 4 and y.shape == (3, 1)
    h = np.maximum(x.reshape(3, 8) @ w[0] + w[1], 0)
    h = np.maximum(h @ w[0] + w[1], 0)
    np.testing.assert_allclose(y, h @ w[2] + w[3], rtol=1e-5, atol=1e-5)


@check("why: nested Sequential and a Model called inside another model")
def _():
    block = Sequential([layers.Dense(4, activation="relu"), layers.Dense(4)])
    net = Sequential([block, layers.Dense(2)])
    assert net(data(2, 3)).shape == (2, 2)
    inp = Input((3,))
    inner = Model(inp, layers.Dense(5)(inp))
    outer_in = Input((3,))
    outer = Model(outer_in, layers.Dense(1)(inner(outer_in)))
    assert outer(data(2, 3)).shape == (2, 1)


@check("why: Add broadcasts (N, 4) + (N, 1); Multiply (N, H, W, C) * (N, 1, 1, C)")
def _():
    a, b = Input((4,)), Input((1,))
    m = Model([a, b], layers.Add()([a, b]))
    x, y = data(2, 4), data(2, 1)
    np.testing.assert_allclose(m(x, y), x + y, rtol=1e-6)
    f, s = Input((3, 3, 2)), Input((1, 1, 2))
    se = Model([f, s], layers.Multiply()([f, s]))
    x, y = data(2, 3, 3, 2), data(2, 1, 1, 2)
    np.testing.assert_allclose(se(x, y), x * y, rtol=1e-6)


@check("why: Conv2D(8, 3)(a, b) is refused")
def _():
    a, b = Input((5, 5, 3)), Input((5, 5, 8))
    try:
        layers.Conv2D(8, 3)(a, b)
    except (CompilerError, TypeError, ShapeError):
        return
    raise AssertionError("accepted")


@check("why: integer inputs keep their dtype (token ids, masks)")
def _():
    ids = Input((4,), dtype="int32")
    m = Model(ids, [ids + 1, ids > 2, layers.Embedding(10, 3)(ids)])
    x = RNG.integers(0, 10, size=(2, 4)).astype(np.int32)
    plus, mask, emb = m(x)
    assert plus.dtype == np.int32 and mask.dtype == bool and emb.shape == (2, 4, 3)
    np.testing.assert_array_equal(plus, x + 1)


_CHILD = """
import pickle, sys
plan, x = pickle.loads(sys.stdin.buffer.read())
sys.stdout.buffer.write(pickle.dumps(plan(x)))
"""


@check("why: a Plan pickles and runs in another process, bit for bit")
def _():
    net = Sequential([layers.Dense(4, activation="relu"), layers.Dense(2)])
    plan = compile(net, (None, 3))
    x = data(2, 3)
    done = subprocess.run([sys.executable, "-c", _CHILD], input=pickle.dumps((plan, x)),
                          capture_output=True, timeout=600, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    np.testing.assert_array_equal(pickle.loads(done.stdout), plan(x))


# -- "What to build" ------------------------------------------------------------------------------
@check("1: weights by name; set_weights after compile is seen by the plan")
def _():
    net = Sequential([layers.Dense(3, name="dense_a"), layers.Dense(1, name="dense_b")])
    plan = compile(net, (None, 2))
    assert [w.name for w in net.weights] == ["dense_a/kernel", "dense_a/bias", "dense_b/kernel",
                                             "dense_b/bias"]
    net.set_weights([np.ones_like(w) for w in net.get_weights()])
    np.testing.assert_allclose(plan(np.ones((1, 2), np.float32)), [[10.0]])  # (2+1)*3+1


@check("2: composite layers: nested keys prefixed, conflicting tying is a ShapeError")
def _():
    block = Sequential([layers.Dense(2, name="d")], name="block")
    net = Sequential([block, layers.Dense(1, name="top")])
    net.build((None, 3))
    assert [w.name for w in net.weights][:2] == ["block/d/kernel", "block/d/bias"]
    shared = layers.Dense(4)
    try:
        Sequential([shared, layers.Dense(3), shared]).build((None, 5))
    except ShapeError as e:
        assert "dense" in str(e)
        return
    raise AssertionError("conflicting tied uses accepted")


class MyDense(layers.Layer):
    def __init__(self, units, **kw):
        super().__init__(**kw)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(name="w", shape=(input_shape[-1], self.units),
                                 initializer=initializers.RandomNormal(0.0, 0.1))
        self.b = self.add_weight(name="b", shape=(self.units,),
                                 initializer=initializers.Constant(0.5))

    def call(self, x):
        return ops.relu(ops.matmul(x, self.w) + self.b)


class Twos(initializers.Initializer):
    def __call__(self, shape, dtype=None):
        return np.full(shape, 2.0, dtype or np.float32)


class Branchy(layers.Layer):
    def call(self, x):
        if x > 0:  # needs a value: cannot be traced
            return x
        return -x


class Net(Model):
    def __init__(self):
        super().__init__()
        self.body = [MyDense(4), layers.Dense(2, kernel_initializer=Twos())]

    def call(self, x):
        return self.body[1](self.body[0](x))


@check("3: custom layers (deferred build), subclassed Model, initializers, variables")
def _():
    net = Net()
    x = data(2, 3)
    y = net(x)
    w = {v.name: v.numpy() for v in net.weights}
    k = [n for n in w if n.endswith("/w")][0]
    h = np.maximum(x @ w[k] + 0.5, 0)
    np.testing.assert_allclose(y, h @ np.full((4, 2), 2.0) + 0, rtol=1e-5, atol=1e-5)
    var = net.weights[0]
    var.assign(np.zeros(var.shape, np.float32))
    np.testing.assert_allclose(net(x), np.full((2, 2), 0.5 * 4 * 2.0), rtol=1e-6)
    try:
        Sequential([Branchy()]).build((None, 3))
    except CompilerError as e:
        assert "ir_v2_audit.py" in str(e) or "line" in str(e)
        return
    raise AssertionError("value-dependent control flow traced")


@check("4: compiler.ops: every listed name, symbolic broadcasting, operators")
def _():
    names = ("add subtract multiply divide power maximum minimum negative abs exp log sqrt tanh "
             "sigmoid relu gelu erf where equal not_equal greater greater_equal less less_equal "
             "logical_and logical_or logical_not cast matmul transpose reshape expand_dims "
             "squeeze concatenate split stack slice take sum mean max min softmax log_softmax "
             "pad zeros_like ones_like floor_divide mod").split()
    missing = [n for n in names if not callable(getattr(ops, n, None))]
    assert not missing, missing
    a, b = Input((None, 4)), Input((1, 4))
    m = Model([a, b], [ops.sum(a * b - a / (ops.abs(b) + 1), axis=-1), (a @ ops.transpose(b,
                                                                          (0, 2, 1))), -a // 2])
    x, y = data(2, 5, 4), data(2, 1, 4)
    s, mm, fd = m(x, y)
    np.testing.assert_allclose(s, np.sum(x * y - x / (np.abs(y) + 1), axis=-1), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(mm, x @ y.transpose(0, 2, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fd, np.floor_divide(-x, np.float32(2)))


@check("5: trait-driven fusion: the seed MLP is one dense step per layer")
def _():
    net = Sequential([layers.Dense(8, activation="relu"), layers.Dropout(0.5),
                      layers.Dense(8), layers.Activation("relu"), layers.Dense(1)])
    plan = compile(net, (None, 4))
    op_names = [d["op"] for _, d in plan.graph.nodes(data=True) if d["op"] not in ("input",
                                                                                   "param")]
    assert op_names.count("dense") == 3 and "activation" not in op_names \
        and "dropout" not in op_names, op_names


@check("6: dtypes per value: comparisons give bool, ints stay ints, float16 cast")
def _():
    x = Input((3,), dtype="int64")
    m = Model(x, [x * 2, ops.equal(x, 1), ops.cast(x, "float32") / 2])
    v = np.array([[1, 2, 2 ** 60]], np.int64)
    a, b, c = m(v)
    assert a.dtype == np.int64 and b.dtype == bool and c.dtype == np.float32
    assert a[0, 2] == 2 ** 61
    net = Sequential([layers.Dense(2)])
    assert net(np.ones((1, 3), np.float16)).dtype == np.float32


@check("7: compiler/ imports neither runtime nor numba")
def _():
    code = ("import sys, compiler; bad = [m for m in sys.modules if m == 'numba' or "
            "m.startswith('runtime')]; assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=str(ROOT),
                          timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


@check("8: codegen per segment: a CNN plan compiles generated functions")
def _():
    net = Sequential([layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
                      layers.Flatten(), layers.Dense(3), layers.Softmax()])
    plan = compile(net, (None, 8, 8, 1), tier="jit")  # no step-executor tier first
    x = data(2, 8, 8, 1)
    y = plan(x)
    generated, _ = plan.segments
    assert generated >= 1, plan.segments
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=1e-5)


@check("9: verify catches a broken graph (arity, dangling node)")
def _():
    plan = compile(Sequential([layers.Dense(2)]), (None, 3))
    g = plan.graph.copy()  # fresh edge and attribute dicts: the plan's graph stays whole
    verify(g)
    dense = next(n for n, d in g.nodes(data=True) if d["op"] == "dense")
    src = next(iter(g.predecessors(dense)))
    g.remove_edge(src, dense)
    try:
        verify(g)
    except AssertionError:
        return
    raise AssertionError("a dense node without one operand passed verify")


@check("10: to_dot with symbolic shapes on edges")
def _():
    plan = compile(Sequential([layers.Dense(2)]), (None, 3))
    dot = plan.to_dot()
    assert dot.startswith("digraph") and "N" in dot, dot[:200]


def main() -> int:
    width = max(len(n) for n, _, _ in RESULTS)
    for name, ok, detail in RESULTS:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<{width}}")
        if not ok:
            print("      " + detail.replace("\n", "\n      "))
    failed = sum(not ok for _, ok, _ in RESULTS)
    print(f"{len(RESULTS) - failed}/{len(RESULTS)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
