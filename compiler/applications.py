"""Reference architectures (Keras' ``applications``), written without any input width.

Each builder returns an uninitialized model unless ``input_shape`` is given; the image size is
inferred at the first call, and with ``None`` sides one model runs every resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import layers
from .frontend.functional import Input
from .frontend.models import Model, Sequential


def lenet5(num_classes: int = 10, input_shape: Sequence | None = (28, 28, 1)) -> Sequential:
    """LeCun's LeNet-5 (ReLU, average pooling) for 28x28 digits."""
    stack = [layers.Conv2D(6, 5, padding="same", activation="relu"), layers.AveragePooling2D(),
             layers.Conv2D(16, 5, activation="relu"), layers.AveragePooling2D(),
             layers.Flatten(), layers.Dense(120, activation="relu"),
             layers.Dense(84, activation="relu"), layers.Dense(num_classes)]
    return Sequential(([Input(tuple(input_shape))] if input_shape else []) + stack,
                      name="lenet5")


def vgg_small(num_classes: int = 10, input_shape: Sequence | None = (32, 32, 3),
              widths: Sequence[int] = (32, 64, 128)) -> Sequential:
    """A VGG-style stack: two 3x3 convs and a max-pool per stage, then a small classifier."""
    stack: list = []
    for width in widths:
        stack += [layers.Conv2D(width, 3, padding="same", activation="relu"),
                  layers.Conv2D(width, 3, padding="same", activation="relu"),
                  layers.MaxPooling2D()]
    stack += [layers.Flatten(), layers.Dense(256, activation="relu"), layers.Dropout(0.5),
              layers.Dense(num_classes)]
    return Sequential(([Input(tuple(input_shape))] if input_shape else []) + stack,
                      name="vgg_small")


def _basic_block(x, width: int, stride: int):
    shortcut = x
    h = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False)(x)
    h = layers.BatchNormalization()(h)
    h = layers.ReLU()(h)
    h = layers.Conv2D(width, 3, padding="same", use_bias=False)(h)
    h = layers.BatchNormalization()(h)
    if stride != 1 or x.shape[-1] != width:
        shortcut = layers.Conv2D(width, 1, strides=stride, use_bias=False)(x)
        shortcut = layers.BatchNormalization()(shortcut)
    return layers.ReLU()(layers.Add()([h, shortcut]))


def resnet18(num_classes: int = 10, input_shape: Sequence = (None, None, 3),
             stem: str = "cifar", widths: Sequence[int] = (64, 128, 256, 512)) -> Model:
    """ResNet-18 (basic blocks, BatchNorm, residual adds).

    ``stem="cifar"``: one 3x3 conv (for 32x32 images); ``"imagenet"``: 7x7/2 conv and 3x3/2
    max-pool (for 224x224). With ``None`` spatial sides the model is built and initialized
    without knowing the resolution: global average pooling makes the classifier independent of it.
    """
    x = inputs = Input(tuple(input_shape))
    if stem == "imagenet":
        x = layers.ZeroPadding2D(3)(x)
        x = layers.Conv2D(widths[0], 7, strides=2, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.ZeroPadding2D(1)(x)
        x = layers.MaxPooling2D(3, strides=2)(x)
    elif stem == "cifar":
        x = layers.Conv2D(widths[0], 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    else:
        raise ValueError(f"resnet18: stem must be 'cifar' or 'imagenet', received {stem!r}")
    for stage, width in enumerate(widths):
        for block in range(2):
            x = _basic_block(x, width, 2 if stage > 0 and block == 0 else 1)
    x = layers.GlobalAveragePooling2D()(x)
    return Model(inputs, layers.Dense(num_classes)(x), name=f"resnet18_{stem}")
