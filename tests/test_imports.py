"""Imports run one way: frontend -> compiler -> runtime. ``compiler`` never loads the runtime."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_building_and_propagating_shapes_loads_neither_runtime_nor_numba():
    script = textwrap.dedent("""
        import sys
        import compiler
        from compiler import Input, Model, Sequential, TensorSpec, layers, lower
        from compiler.passes import CompileContext, propagate_shapes

        net = Sequential([layers.Conv2D(4, 3), layers.BatchNormalization(), layers.Flatten(),
                          layers.Dense(3)])
        net.build((None, 8, 8, 2))
        x = Input((None, None, 3))
        model = Model(x, layers.Dense(2)(layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(x))))
        g = propagate_shapes(lower(model, [TensorSpec((None, 9, 9, 3)).to_type(model.dtype)]),
                             CompileContext())
        net.summary(print_fn=None)
        assert net.built and model.built and g.number_of_nodes() > 0
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("runtime", "numba"))
        print(",".join(loaded))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"compiler loaded: {done.stdout.strip()}"


def test_no_module_under_compiler_imports_runtime():
    offenders = []
    for path in (ROOT / "compiler").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            words = line.strip().split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1 \
                    and words[1].split(".")[0] in ("runtime", "numba"):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, offenders
