"""runtime.dask.predict: one compiled plan over dask arrays, threaded and on a 2-process cluster.

Equality: each chunk runs the same plan code on the same rows, so the dask result is compared
bit for bit with ``plan`` applied chunk by chunk, and within 1e-6 relative with ``plan(x)`` on
all rows at once (a kernel may pick another BLAS blocking or its threaded path for more rows).
"""

import os
import signal
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from compiler import Input, Model, Sequential, TensorSpec, compile, layers  # noqa: E402
from compiler.applications import lenet5  # noqa: E402
from compiler.errors import DTypeError, ShapeError  # noqa: E402
from compiler.reference import run_reference  # noqa: E402
from runtime.dask import deserialization_count, predict  # noqa: E402

TIMEOUT = 60  # seconds: every compute on the cluster is bounded


def mlp():
    return Sequential([layers.Dense(16, activation="relu"), layers.Dropout(0.1),
                       layers.Dense(8, activation="tanh"), layers.Dense(3)], name="mlp")


def small_cnn():
    return Sequential([Input((None, None, 3)), layers.Conv2D(4, 3, activation="relu"),
                       layers.MaxPooling2D(), layers.Conv2D(6, 3, padding="same"),
                       layers.GlobalAveragePooling2D(), layers.Dense(5)], name="small_cnn")


def two_inputs():
    a, b = Input((5,), name="a"), Input((3,), name="b")
    h = layers.Concatenate()([layers.Dense(4)(a), b])
    return Model([a, b], layers.Dense(2)(h), name="two_in")


def data(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def per_chunk(plan, x, rows):
    bounds = np.cumsum((0, *rows))
    return np.concatenate([plan(x[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])


@pytest.fixture(scope="module")
def client():
    """One 2-worker cluster of processes for the module, reached by address like a real one."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as cluster:
        with distributed.Client(cluster.scheduler_address, timeout=TIMEOUT) as c:
            c.wait_for_workers(2, timeout=TIMEOUT)
            yield c


# -- threaded scheduler (no client) -------------------------------------------------------------

def test_uneven_and_split_chunks_threads_bit_identical():
    net = mlp()
    plan = compile(net, TensorSpec((None, 7)))
    x = data((103, 7))
    dx = da.from_array(x, chunks=((40, 30, 33), (3, 4)))  # also split along the width
    y = predict(plan, dx)
    # exact without computing
    assert y.shape == (103, 3) and y.dtype == np.float32
    assert y.chunks == ((40, 30, 33), (3,))
    assert type(y._meta) is np.ndarray and y._meta.shape == (0, 0)
    got = y.compute(scheduler="threads")
    np.testing.assert_array_equal(got, per_chunk(plan, x, (40, 30, 33)))
    np.testing.assert_allclose(got, plan(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got, run_reference(plan.graph, x), rtol=1e-5, atol=1e-6)


def test_uninitialized_model_is_built_on_the_client_from_x():
    net = mlp()
    assert [layer.get_weights() for layer in net.layers] == [[], [], [], []]
    x = data((50, 6), 1)
    y = predict(net, da.from_array(x, chunks=20))  # builds here: dtype and width from x
    assert [w.shape for w in net.get_weights()][:2] == [(6, 16), (16,)]
    weights = [w.copy() for w in net.get_weights()]
    got = y.compute(scheduler="threads")
    np.testing.assert_array_equal(got, per_chunk(compile(net), x, (20, 20, 10)))
    assert all(np.array_equal(a, b) for a, b in zip(weights, net.get_weights()))


def test_cnn_threads():
    plan = compile(small_cnn())
    x = data((23, 9, 10, 3), 6)
    y = predict(plan, da.from_array(x, chunks=(8, 9, 5, 3)))
    assert y.chunks == ((8, 8, 7), (5,))
    got = y.compute(scheduler="threads")
    np.testing.assert_array_equal(got, per_chunk(plan, x, (8, 8, 7)))
    np.testing.assert_allclose(got, plan(x), rtol=1e-6, atol=1e-6)


def test_nan_and_inf_rows_propagate_as_locally():
    plan = compile(mlp(), TensorSpec((None, 4)))
    x = data((30, 4), 2)
    x[3, 1], x[17, 0], x[25, 2] = np.nan, np.inf, -np.inf
    got = predict(plan, da.from_array(x, chunks=10)).compute(scheduler="threads")
    np.testing.assert_array_equal(got, per_chunk(plan, x, (10, 10, 10)))  # NaN == NaN here
    assert np.isnan(got[3]).all() and not np.isnan(got[4]).any()


def test_unknown_row_chunks():
    plan = compile(mlp(), TensorSpec((None, 4)))
    x = data((60, 4), 3)
    dx = da.from_array(x, chunks=25)
    kept = dx[dx[:, 0] > 0]  # row counts unknown until computed
    y = predict(plan, kept)
    assert np.isnan(y.shape[0]) and y.shape[1:] == (3,)
    got = y.compute(scheduler="threads")
    np.testing.assert_allclose(got, plan(x[x[:, 0] > 0]), rtol=1e-6, atol=1e-7)


def test_multi_input_row_aligned_with_different_chunks():
    net = two_inputs()
    a, b = data((41, 5), 4), data((41, 3), 5)
    y = predict(net, [da.from_array(a, chunks=(15, 5)), da.from_array(b, chunks=(10, 2))])
    assert y.chunks == ((15, 15, 11), (2,))  # rows follow the first input
    plan = compile(net)
    expected = np.concatenate([plan(a[s], b[s]) for s in
                               (slice(0, 15), slice(15, 30), slice(30, 41))])
    np.testing.assert_array_equal(y.compute(scheduler="threads"), expected)


def test_wrong_width_is_refused_at_graph_construction():
    plan = compile(mlp(), TensorSpec((None, 7)))
    with pytest.raises(ValueError, match=r"model 'mlp'.*axis 1 expected size 7, received 6"):
        predict(plan, da.zeros((10, 6), chunks=5, dtype=np.float32))
    with pytest.raises(ShapeError, match=r"model 'two_in'.*expected 20 rows.*received 19"):
        predict(two_inputs(), [da.zeros((20, 5), chunks=5), da.zeros((19, 3), chunks=5)])


@pytest.mark.parametrize("dtype", [np.complex64, "U3", object])
def test_wrong_dtype_is_refused_at_graph_construction(dtype):
    plan = compile(mlp(), TensorSpec((None, 2)))
    with pytest.raises(DTypeError, match=r"model 'mlp'.*input .*dtype"):
        predict(plan, da.zeros((4, 2), chunks=2, dtype=dtype))


def test_unknown_width_is_checked_per_chunk_at_compute():
    plan = compile(mlp(), TensorSpec((None, 7)))
    dx = da.from_array(data((12, 8)), chunks=(4, 8))
    narrow = dx.map_blocks(lambda b: b[:, :6], chunks=((np.nan,) * 3, (np.nan,)))
    y = predict(plan, narrow)
    with pytest.raises(ValueError, match=r"model 'mlp'.*chunk of 4 rows.*axis 1 expected size "
                                         r"7, received 6"):
        y.compute(scheduler="threads")


def test_several_outputs_threads():
    a = Input((4,), name="a")
    h = layers.Dense(6, activation="relu")(a)
    net = Model(a, [layers.Dense(2)(h), layers.Dense(3)(h)], name="two_out")
    plan = compile(net)
    x = data((25, 4), 10)
    y1, y2 = predict(plan, da.from_array(x, chunks=10))
    assert (y1.shape, y2.shape) == ((25, 2), (25, 3)) and y2.chunks == ((10, 10, 5), (3,))
    r1, r2 = zip(*(plan(x[s]) for s in (slice(0, 10), slice(10, 20), slice(20, 25))))
    np.testing.assert_array_equal(y1.compute(scheduler="threads"), np.concatenate(r1))
    np.testing.assert_array_equal(y2.compute(scheduler="threads"), np.concatenate(r2))


def test_scale_out_benchmarks_are_registered():
    from benchmarks.workloads import WORKLOADS

    assert "2,000,000 rows in chunks of 100,000" in WORKLOADS["D1"].title
    assert "50,000 rows" in WORKLOADS["D2"].title and "LeNet-5" in WORKLOADS["D2"].title


# -- a 2-process cluster ------------------------------------------------------------------------

def test_uninitialized_lenet_on_the_cluster(client):
    net = lenet5()
    x = data((30, 28, 28, 1), 7)
    got = client.compute(predict(net, da.from_array(x, chunks=12))).result(timeout=TIMEOUT)
    np.testing.assert_array_equal(got, per_chunk(compile(net), x, (12, 12, 6)))


def test_plan_travels_once_per_worker(client, monkeypatch):
    plan = compile(mlp(), TensorSpec((None, 5)))
    x = data((90, 5), 8)
    scatters = []
    real = client.scatter
    monkeypatch.setattr(client, "scatter", lambda *a, **k: scatters.append(1) or real(*a, **k))
    y1 = predict(plan, da.from_array(x, chunks=10))  # 9 tasks, one scatter
    first = client.compute(y1).result(timeout=TIMEOUT)
    token = _plan_token(plan)
    counts = client.run(deserialization_count, token)
    assert sorted(counts.values()) == [1, 1], counts  # each worker unpickled it exactly once
    y2 = predict(plan, da.from_array(x, chunks=15))  # same plan again: nothing new is sent
    second = client.compute(y2).result(timeout=TIMEOUT)
    assert len(scatters) == 1
    assert client.run(deserialization_count, token) == counts
    np.testing.assert_array_equal(first, per_chunk(plan, x, (10,) * 9))
    np.testing.assert_array_equal(second, per_chunk(plan, x, (15,) * 6))


def _plan_token(plan):
    from runtime.dask import ShippedPlan

    return ShippedPlan.of(plan).token


def test_bad_chunk_on_the_cluster_raises_on_the_client(client):
    plan = compile(mlp(), TensorSpec((None, 7)))
    dx = da.from_array(data((12, 8)), chunks=(4, 8))
    narrow = dx.map_blocks(lambda b: b[:, :6], chunks=((np.nan,) * 3, (np.nan,)))
    future = client.compute(predict(plan, narrow))
    with pytest.raises(ValueError, match=r"model 'mlp'.*axis 1 expected size 7, received 6"):
        future.result(timeout=TIMEOUT)


def _slow_rows(block):
    time.sleep(0.15)  # keeps tasks in flight long enough to kill a worker among them
    return block


def test_killed_worker_result_is_complete_and_equal(client):
    """Runs last: it kills one worker process (the nanny restarts it)."""
    plan = compile(mlp(), TensorSpec((None, 6)))
    x = data((400, 6), 9)
    slow = da.from_array(x, chunks=20).map_blocks(_slow_rows, dtype=np.float32)
    future = client.compute(predict(plan, slow))
    pids = client.run(os.getpid)
    deadline = time.monotonic() + TIMEOUT
    while not any(t for t in client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert future.status == "pending"  # killed mid-computation
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    got = future.result(timeout=TIMEOUT)
    np.testing.assert_array_equal(got, per_chunk(plan, x, (20,) * 20))

