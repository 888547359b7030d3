"""``from compiler import layers``: the Keras-style layer classes."""

from .frontend.functional import Input
from .frontend.layers import (
                              Activation,
                              Dense,
                              Dropout,
                              Flatten,
                              Layer,
                              LeakyReLU,
                              ReLU,
                              Reshape,
                              Softmax,
)

__all__ = ["Activation", "Dense", "Dropout", "Flatten", "Input", "Layer", "LeakyReLU", "ReLU",
           "Reshape", "Softmax"]
