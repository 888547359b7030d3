"""``from compiler import layers``: the Keras-style layer classes."""

from .frontend.attention import MultiHeadAttention, PositionEmbedding
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
from .frontend.merging import (
                              Add,
                              Average,
                              Concatenate,
                              Maximum,
                              Minimum,
                              Multiply,
                              Subtract,
)
from .frontend.normalization import BatchNormalization, LayerNormalization
from .frontend.recurrent import GRU, LSTM, Bidirectional, SimpleRNN
from .frontend.sequence import (
                              Embedding,
                              GlobalAveragePooling1D,
                              GlobalMaxPooling1D,
                              Masking,
)
from .frontend.sequence1d import (
                              AveragePooling1D,
                              Conv1D,
                              Cropping1D,
                              MaxPooling1D,
                              UpSampling1D,
                              ZeroPadding1D,
)
from .frontend.spatial import (
                              AveragePooling2D,
                              Conv2D,
                              DepthwiseConv2D,
                              GlobalAveragePooling2D,
                              GlobalMaxPooling2D,
                              MaxPooling2D,
                              ZeroPadding2D,
)
from .frontend.wrappers import TimeDistributed

__all__ = ["Activation", "Add", "Average", "AveragePooling2D", "BatchNormalization",
           "Bidirectional", "Embedding", "GRU", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
           "LSTM", "Masking", "SimpleRNN",
           "Concatenate", "Conv2D", "Dense", "DepthwiseConv2D", "Dropout", "Flatten",
           "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Input", "Layer", "LayerNormalization",
           "LeakyReLU", "MaxPooling2D", "Maximum", "Minimum", "Multiply", "ReLU", "Reshape",
           "Softmax", "Subtract", "ZeroPadding2D"]
# sequence models (Conv1D family, attention)
__all__ += ["AveragePooling1D", "Conv1D", "Cropping1D", "MaxPooling1D", "MultiHeadAttention",
            "PositionEmbedding", "TimeDistributed", "UpSampling1D", "ZeroPadding1D"]
