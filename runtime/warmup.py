"""Warm-up for deployments: compile the kernels a model needs into the on-disk cache, ahead of time.

    python -m runtime.warmup --model resnet18          # one built-in model
    python -m runtime.warmup --model seed --model lenet5 --batch 1 --batch 64
    python -m runtime.warmup --model mypkg.models:build # a function returning a model
    python -m runtime.warmup --all                     # every built-in model

Run it in a Docker image build or a cluster worker's setup with the same ``DEFERC_CACHE_DIR``
(and the same machine type: the cache is keyed by CPU and thread count, see ``runtime.cache``)
as the service: a fresh process then loads machine code instead of compiling it. Each model is
compiled with ``tier="jit"`` and called once on zeros per batch size (calls compile the kernels
launched from Python, such as convolutions, for the shapes' serial or threaded variants).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from numba.core import event

#: name -> (builder, input shape without the batch axis)
MODELS: dict[str, tuple[Callable[[], Any], tuple]] = {}


def _seed() -> Any:
    from compiler import Sequential, layers

    return Sequential([layers.Dense(256, activation="relu"), layers.Dense(10)], name="seed")


def _application(name: str, **kwargs: Any) -> Callable[[], Any]:
    def build() -> Any:
        from compiler import applications

        return getattr(applications, name)(**kwargs)
    return build


MODELS.update({
    "seed": (_seed, (20,)),
    "lenet5": (_application("lenet5"), (28, 28, 1)),
    "vgg_small": (_application("vgg_small"), (32, 32, 3)),
    "resnet18": (_application("resnet18", stem="imagenet"), (224, 224, 3)),
    "resnet18_cifar": (_application("resnet18", stem="cifar"), (32, 32, 3)),
})


class _Counter(event.Listener):
    def __init__(self) -> None:
        self.count = 0

    def on_start(self, ev: event.Event) -> None:
        self.count += 1

    def on_end(self, ev: event.Event) -> None:
        pass


@contextlib.contextmanager
def counting_compilations() -> Iterator[_Counter]:
    """Count numba compilations (every function and specialization) inside the block."""
    counter = _Counter()
    with event.install_listener("numba:compile", counter):
        yield counter


def resolve(name: str) -> tuple[Any, tuple | None]:
    """A built-in model by name, or ``module:function`` returning a model (or ``(model,
    input_shape)``); the shape excludes the batch axis (``None``: the model's own)."""
    if name in MODELS:
        build, shape = MODELS[name]
        return build(), shape
    if ":" not in name:
        raise SystemExit(f"runtime.warmup: unknown model {name!r}; built-in: {sorted(MODELS)}, "
                         "or give module:function")
    module, _, attr = name.partition(":")
    made = getattr(importlib.import_module(module), attr)()
    return made if isinstance(made, tuple) else (made, None)


def warm(model: Any, input_shape: Sequence[int] | None, batches: Sequence[int] = (1,)
         ) -> int:
    """Compile ``model`` and call it once per batch size on zeros; returns the number of numba
    compilations it took (0 when everything came from the cache)."""
    from compiler import TensorSpec, compile

    with counting_compilations() as counter:
        if input_shape is None:
            plan = compile(model, tier="jit")
            types = plan.signature.types
            if len(types) != 1 or not all(isinstance(d, int) for d in types[0].shape[1:]):
                raise SystemExit(f"runtime.warmup: model '{model.name}' needs an input shape "
                                 f"(its input is {types[0]}): return (model, shape)")
            input_shape = tuple(types[0].shape[1:])
        else:
            plan = compile(model, TensorSpec((None, *input_shape)), tier="jit")
        for batch in batches:
            plan(np.zeros((batch, *input_shape), plan.signature.types[0].dtype))
    return counter.count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.warmup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[],
                        help=f"built-in ({', '.join(MODELS)}) or module:function; repeatable")
    parser.add_argument("--all", action="store_true", help="every built-in model")
    parser.add_argument("--batch", action="append", type=int, default=[],
                        help="batch size(s) to run (default 1)")
    args = parser.parse_args(argv)
    names = list(MODELS) if args.all else args.model
    if not names:
        parser.error("give --model NAME (repeatable) or --all")
    from .cache import cache_dir

    for name in names:
        model, shape = resolve(name)
        start = time.perf_counter()
        compiled = warm(model, shape, args.batch or (1,))
        print(f"warmed {name}: {compiled} numba compilation(s) in "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    print(f"cache: {cache_dir()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
