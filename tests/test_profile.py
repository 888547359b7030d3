"""plan.profile: one row per kernel call, with the work each step should do."""

import numpy as np
import pytest

from compiler import Sequential, TensorSpec, compile, layers
from compiler.cost import step_flops


@pytest.fixture(scope="module")
def mlp_plan():
    net = Sequential([layers.Dense(16, activation="relu"), layers.Flatten(), layers.Dense(3)])
    return compile(net, TensorSpec((None, 5)))


def test_profile_has_a_row_per_kernel_call_with_product_flops(mlp_plan):
    x = np.random.default_rng(0).standard_normal((4, 5), dtype=np.float32)
    profile = mlp_plan.profile(x, repeat=3)
    assert [s.op for s in profile.steps] == ["dense", "dense"]
    assert [s.shape for s in profile.steps] == [(4, 16), (4, 3)]
    assert [s.flops for s in profile.steps] == [2 * 4 * 5 * 16, 2 * 4 * 16 * 3]
    assert all(s.seconds > 0 for s in profile.steps)
    table = profile.table()
    assert "'dense_1'" in table and "GFLOP/s" in table
    assert table.count("\n") == len(profile.steps) + 1


def test_profile_does_not_disturb_the_plan(mlp_plan):
    x = np.random.default_rng(1).standard_normal((3, 5), dtype=np.float32)
    before = mlp_plan(x)
    mlp_plan.profile(x, repeat=1)
    np.testing.assert_array_equal(mlp_plan(x), before)


def test_profile_rejects_bad_arguments(mlp_plan):
    with pytest.raises(ValueError, match="repeat"):
        mlp_plan.profile(np.zeros((2, 5), np.float32), repeat=0)
    with pytest.raises(Exception, match="axis|5|size"):
        mlp_plan.profile(np.zeros((2, 7), np.float32))


def test_conv_flops_count_the_window():
    assert step_flops("conv2d", [(1, 8, 8, 3)], (1, 6, 6, 4), {"kernel": (3, 3, 3, 4)}) == \
        2 * 6 * 6 * 4 * 27
    assert step_flops("depthwise_conv2d", [(1, 8, 8, 3)], (1, 6, 6, 3),
                      {"kernel": (3, 3, 3, 1)}) == 2 * 6 * 6 * 3 * 9
    assert step_flops("reshape", [(2, 3)], (6,), {}) == 0
    assert step_flops("add", [(2, 3), (2, 3)], (2, 3), {}) == 6
