"""Weight initializers by Keras name (``glorot_uniform`` kernels and ``zeros`` biases by default).

Randomness comes from a NumPy ``Generator`` seeded per parameter, so with a seed the same model
gets bit-for-bit the same weights regardless of which other layers exist or their order.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import CompilerError


def _fans(shape: tuple) -> tuple[int, int]:
    """Keras' fan computation: dense ``(in, out)``, conv ``(kh, kw, in, out)``."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Callable ``(shape, dtype, rng) -> ndarray``; subclasses define ``sample``."""

    name = "initializer"

    def __init__(self, seed: int | None = None):
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)):
            raise CompilerError(f"{type(self).__name__}: seed must be an int, received {seed!r}")
        self.seed = seed

    def __call__(self, shape: tuple, dtype, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(self.sample(tuple(shape), rng), dtype=dtype)

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"seed": self.seed}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


class Zeros(Initializer):
    name = "zeros"

    def sample(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    name = "ones"

    def sample(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    name = "constant"

    def __init__(self, value: float = 0.0, seed: int | None = None):
        super().__init__(seed)
        self.value = float(value)

    def sample(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    name = "normal"

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def sample(self, shape, rng):
        return rng.normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    name = "uniform"

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def sample(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class VarianceScaling(Initializer):
    """The family behind glorot/he/lecun: variance ``scale / fan`` (truncated normal or uniform)."""

    def __init__(self, scale: float, mode: str, distribution: str, seed: int | None = None):
        super().__init__(seed)
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def sample(self, shape, rng):
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape)
        # Keras' truncated normal: cut at two stddevs, stddev corrected for the truncation.
        stddev = math.sqrt(variance) / 0.87962566103423978
        out = rng.normal(0.0, stddev, shape)
        bad = np.abs(out) > 2 * stddev
        while bad.any():
            out[bad] = rng.normal(0.0, stddev, int(bad.sum()))
            bad = np.abs(out) > 2 * stddev
        return out

    def get_config(self):
        return {"seed": self.seed}


def _variance_scaling(name: str, scale: float, mode: str, distribution: str) -> type:
    def __init__(self, seed: int | None = None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    return type(name, (VarianceScaling,), {"__init__": __init__, "name": _snake(name)})


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out


GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "normal")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "normal")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "normal")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")

_BY_NAME: dict[str, Callable[..., Initializer]] = {
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "normal": RandomNormal, "random_normal": RandomNormal,
    "uniform": RandomUniform, "random_uniform": RandomUniform,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform,
}


def get(identifier: Any) -> Initializer:
    """An initializer from a Keras name, an ``Initializer`` instance, or a ``{name, config}``."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("name") in _BY_NAME:
        config = identifier.get("config") or {}
        try:
            return _BY_NAME[identifier["name"]](**config)
        except (TypeError, ValueError) as e:
            raise CompilerError(f"initializer {identifier!r}: bad configuration ({e})") from None
    raise CompilerError(f"unknown initializer {identifier!r}; choose one of {sorted(_BY_NAME)}"
                        " or pass an Initializer")


def serialize(init: Initializer) -> dict:
    return {"name": init.name, "config": init.get_config()}


def parameter_rng(seed: int | None, *scope: str) -> np.random.Generator:
    """A generator for one parameter: seeded from (seed, layer, param) when a seed is given."""
    if seed is None:
        return np.random.default_rng()
    digest = hashlib.sha256("/".join((str(seed),) + scope).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))
