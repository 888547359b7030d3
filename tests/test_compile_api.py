"""compile-then-run: specs, samples, the plan's IR and report, summary before/after build."""

import numpy as np
import pytest

from compiler import CompilerError, Sequential, TensorSpec, compile, layers


def test_compile_accepts_specs_shapes_and_samples():
    net = Sequential([layers.Dense(4)])
    for spec in (TensorSpec((None, 3)), (None, 3), np.zeros((5, 3), np.float32)):
        plan = compile(net, spec)
        assert plan(np.ones((2, 3))).shape == (2, 4)


def test_plan_reports_passes_and_final_ir():
    net = Sequential([layers.Dense(4, activation="relu"), layers.Dense(2)])
    plan = compile(net, TensorSpec((None, 3)), dump_ir=True)
    names = [r.name for r in plan.report]
    assert names[:3] == ["propagate_shapes", "validate", "initialize"]
    assert all(r.seconds >= 0 and r.ir for r in plan.report)
    assert "dense[units=4" in plan.ir and ": (N, 2) float32" in plan.ir
    assert "propagate_shapes" in plan.describe()


def test_compile_without_any_signature_explains():
    with pytest.raises(CompilerError, match=r"needs input specs"):
        compile(Sequential([layers.Dense(4)]))


def test_summary_before_and_after_build():
    net = Sequential([layers.Dense(256, activation="relu"), layers.Dense(10)])
    before = net.summary(print_fn=None)
    assert "(N, 256)" in before and "kernel (?, 256)" in before and "not initialized" in before
    assert "Total params: ? (266 known so far)" in before
    net.build((None, 20))
    after = net.summary(print_fn=None)
    assert "5,376" in after and "2,570" in after and "Total params: 7,946" in after
    assert "kernel (20, 256)" in after
