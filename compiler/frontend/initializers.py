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

from ..errors import CompilerError, ShapeError


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
    """Keras 3 initializer: ``init(shape, dtype=None) -> array``.

    Built-in ones define ``sample(shape, rng)`` so the compiler can hand them a generator seeded
    per parameter (reproducible regardless of other layers); a user subclass only needs
    ``__call__(self, shape, dtype=None)``, as in Keras.
    """

    name = "initializer"
    seed: int | None = None

    def __init__(self, seed: int | None = None):
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)):
            raise CompilerError(f"{type(self).__name__}: seed must be an int, received {seed!r}")
        self.seed = seed

    def __call__(self, shape: tuple, dtype: Any = None) -> np.ndarray:
        """Sample an array directly (its own seed, else fresh entropy)."""
        return self.generate(shape, dtype, np.random.default_rng(self.seed))

    def generate(self, shape: tuple, dtype: Any, rng: np.random.Generator) -> np.ndarray:
        """What the compiler calls: ``sample`` with ``rng`` when defined, else ``__call__``."""
        shape = tuple(int(d) for d in shape)
        dtype = np.dtype(dtype or np.float32)
        if type(self).sample is not Initializer.sample:
            return np.asarray(self.sample(shape, rng), dtype=dtype)
        value = np.asarray(self(shape, dtype))
        if value.shape != shape:
            if value.ndim == 0:  # a scalar fills the weight, like Keras' constant fallback
                return np.full(shape, value, dtype=dtype)
            raise ShapeError(f"initializer {type(self).__name__} returned shape {value.shape} "
                             f"for a weight of shape {shape}")
        return np.array(value, dtype=dtype, order="C")

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config: dict) -> Initializer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


class _FromCallable(Initializer):
    """A plain function ``f(shape, dtype=None)`` used as an initializer."""

    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn
        self.name = getattr(fn, "__name__", "callable")

    def __call__(self, shape, dtype=None):
        return self.fn(shape, dtype)


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


class TruncatedNormal(Initializer):
    """Normal values, redrawn when farther than two stddevs from the mean (Keras 3)."""

    name = "truncated_normal"

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def sample(self, shape, rng):
        return self.mean + _truncated(rng, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated(rng: np.random.Generator, stddev: float, shape: tuple) -> np.ndarray:
    out = rng.normal(0.0, stddev, shape)
    bad = np.abs(out) > 2 * stddev
    while bad.any():
        out[bad] = rng.normal(0.0, stddev, int(bad.sum()))
        bad = np.abs(out) > 2 * stddev
    return out


class VarianceScaling(Initializer):
    """The family behind glorot/he/lecun: variance ``scale / fan`` (truncated normal or uniform)."""

    name = "variance_scaling"

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None):
        super().__init__(seed)
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise CompilerError(f"VarianceScaling: mode must be 'fan_in', 'fan_out' or 'fan_avg',"
                                f" received {mode!r}")
        if distribution not in ("uniform", "normal", "truncated_normal", "untruncated_normal"):
            raise CompilerError(f"VarianceScaling: unknown distribution {distribution!r}")
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def sample(self, shape, rng):
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(variance), shape)
        # Keras' truncated normal: cut at two stddevs, stddev corrected for the truncation.
        return _truncated(rng, math.sqrt(variance) / 0.87962566103423978, shape)

    def get_config(self):
        if type(self) is VarianceScaling:
            return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                    "seed": self.seed}
        return {"seed": self.seed}


class Orthogonal(Initializer):
    """Keras ``Orthogonal(gain=1.0)``: a (semi-)orthogonal matrix from the QR of a normal one
    (the recurrent kernels' default)."""

    name = "orthogonal"

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        super().__init__(seed)
        self.gain = float(gain)

    def sample(self, shape, rng):
        if len(shape) < 2:
            raise ShapeError(f"Orthogonal initializer needs a shape of rank >= 2, received "
                             f"{shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self) -> dict:
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """Keras ``Identity(gain=1.0)``: ``gain`` times the identity matrix (2-D weights only;
    a non-square one gets the identity's top-left block)."""

    name = "identity"

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        super().__init__(seed)
        self.gain = float(gain)

    def sample(self, shape, rng):
        if len(shape) != 2:
            raise ShapeError(f"Identity initializer needs a 2-D shape, received {shape}")
        return self.gain * np.eye(*shape)

    def get_config(self) -> dict:
        return {"gain": self.gain}


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
    "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "orthogonal": Orthogonal, "identity": Identity,
}


def get(identifier: Any) -> Initializer:
    """An initializer from a Keras name, an ``Initializer`` (instance or class), a function
    ``f(shape, dtype=None)``, or a serialized ``{name | class_name, config}``."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, dict):
        cls = _BY_NAME.get(identifier.get("name")) or _class_named(identifier.get("class_name"))
        if cls is not None:
            config = identifier.get("config") or {}
            try:
                return cls.from_config(dict(config))
            except (TypeError, ValueError) as e:
                raise CompilerError(f"initializer {identifier!r}: bad configuration ({e})") \
                    from None
    if callable(identifier) and not isinstance(identifier, (str, dict, type)):
        return _FromCallable(identifier)
    raise CompilerError(f"unknown initializer {identifier!r}; choose one of {sorted(_BY_NAME)}"
                        " or pass an Initializer")


def _class_named(name: Any) -> type | None:
    """The ``Initializer`` subclass called ``name`` (user subclasses included), if unique."""
    if not isinstance(name, str):
        return None
    found, stack = [], [Initializer]
    while stack:
        cls = stack.pop()
        if cls.__name__ == name:
            found.append(cls)
        stack.extend(cls.__subclasses__())
    return found[0] if len(found) == 1 else None


def serialize(init: Initializer) -> dict:
    """Built-ins by Keras name; other subclasses by class name (found again by ``get``)."""
    if _BY_NAME.get(init.name) is type(init):
        return {"name": init.name, "config": init.get_config()}
    if isinstance(init, _FromCallable):
        raise CompilerError(f"initializer function {init.name!r} cannot be serialized; "
                            f"subclass initializers.Initializer instead")
    return {"class_name": type(init).__name__, "config": init.get_config()}


def parameter_rng(seed: int | None, *scope: str) -> np.random.Generator:
    """A generator for one parameter: seeded from (seed, layer, param) when a seed is given."""
    if seed is None:
        return np.random.default_rng()
    digest = hashlib.sha256("/".join((str(seed),) + scope).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))
