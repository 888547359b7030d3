"""deferc: Keras-style models whose weights are created once their shapes are known.

    net = Sequential([layers.Dense(256, activation="relu"), layers.Dense(10)])
    Y = net(X)                      # infers shapes, initializes, compiles, runs
    plan = compile(net, TensorSpec((None, 20)))   # one plan for every batch size
"""

from . import layers
from .driver import compile
from .errors import CompilerError, DeferredInitializationError, DTypeError, ShapeError
from .frontend import initializers
from .frontend.functional import Input, SymbolicTensor
from .frontend.models import Model, Sequential
from .loading import load_model
from .lowering import lower
from .random import set_random_seed
from .symbolic import Dim
from .types import TensorSpec, TensorType

__all__ = ["CompilerError", "DTypeError", "DeferredInitializationError", "Dim", "Input", "Model",
           "Sequential", "ShapeError", "SymbolicTensor", "TensorSpec", "TensorType", "compile",
           "initializers", "layers", "load_model", "lower", "set_random_seed"]
