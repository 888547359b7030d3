"""CNNs end to end: resolution flows through shape propagation; examples match NumPy and torch."""

import numpy as np
import pytest

from compiler import (
    DeferredInitializationError,
    Input,
    Model,
    Sequential,
    ShapeError,
    TensorSpec,
    compile,
    layers,
    lower,
)
from compiler.applications import lenet5, resnet18, vgg_small
from compiler.passes import BUILD_PIPELINE, CompileContext, run_pipeline
from compiler.reference import run_reference


def randomize_batch_norms(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if i in (0, 3) else
                               rng.normal(0, 0.2, w.shape)
                               for i, w in enumerate(layer.get_weights())])


def test_symbolic_resolution_initializes_without_knowing_h_and_w():
    x = Input((None, None, 3))
    h = layers.Conv2D(16, 3, activation="relu")(x)
    h = layers.MaxPooling2D()(h)
    h = layers.GlobalAveragePooling2D()(h)
    model = Model(x, layers.Dense(10)(h))
    assert model.built and [w.shape for w in model.get_weights()] == [
        (3, 3, 3, 16), (16,), (16, 10), (10,)]
    text = model.summary(print_fn=None)
    assert "(N, H-2, W-2, 16)" in text and "(N, H//2-1, W//2-1, 16)" in text
    plan = compile(model)
    for side in (32, 224, 7):
        X = np.random.default_rng(side).normal(size=(2, side, side, 3)).astype(np.float32)
        np.testing.assert_allclose(plan(X), run_reference(plan.graph, X), rtol=1e-4, atol=1e-5)


def test_flatten_on_symbolic_sides_names_layer_dims_and_suggests_global_pooling():
    with pytest.raises(DeferredInitializationError,
                       match=r"'dense'.*depends on input dims H, W.*GlobalAveragePooling2D"):
        Sequential([Input((None, None, 3)), layers.Conv2D(4, 3), layers.Flatten(),
                    layers.Dense(10)])


def test_image_too_small_is_a_clear_error_at_run_time():
    model = Sequential([Input((None, None, 1)), layers.Conv2D(2, 5)])
    with pytest.raises(ShapeError, match=r"conv2d.*too small"):
        model(np.zeros((1, 3, 3, 1), np.float32))


def test_channel_mismatch_names_layer_and_sizes():
    model = Sequential([layers.Conv2D(4, 3)])
    model.build((None, 8, 8, 3))
    with pytest.raises(ShapeError, match=r"conv2d.*expected 3, received 5"):
        model(np.zeros((1, 8, 8, 5), np.float32))


@pytest.mark.parametrize("make, shape", [(lenet5, (28, 28, 1)), (vgg_small, (32, 32, 3))])
def test_sequential_examples_match_reference(make, shape):
    model = make()
    X = np.random.default_rng(1).normal(size=(3,) + shape).astype(np.float32)
    plan = compile(model)
    np.testing.assert_allclose(plan(X), run_reference(plan.graph, X), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("side, stem", [(32, "cifar"), (64, "imagenet")])
def test_resnet18_one_model_many_resolutions(side, stem):
    model = resnet18(stem=stem, widths=(8, 16, 16, 32))
    randomize_batch_norms(model)
    plan = compile(model)
    assert not any(d["op"] == "batch_norm" for _, d in plan.graph.nodes(data=True))
    X = np.random.default_rng(side).normal(size=(2, side, side, 3)).astype(np.float32)
    unfolded = run_pipeline(lower(model, [TensorSpec((None, None, None, 3)).to_type(
        model.dtype)]), BUILD_PIPELINE, CompileContext())
    np.testing.assert_allclose(plan(X), run_reference(unfolded, X), rtol=2e-3, atol=2e-4)


def test_merge_layers_take_lists_and_check_shapes():
    a, b = Input((4, 4, 3)), Input((4, 4, 5))
    cat = layers.Concatenate()([a, b])
    assert cat.shape[1:] == (4, 4, 8)
    with pytest.raises(ShapeError, match=r"add"):
        layers.Add()([a, b])
    model = Model([a, b], layers.Multiply()([cat, cat]))
    xa = np.ones((2, 4, 4, 3), np.float32)
    xb = np.full((2, 4, 4, 5), 2.0, np.float32)
    y = model(xa, xb)
    assert y.shape == (2, 4, 4, 8) and y[..., 0].max() == 1 and y[..., -1].min() == 4


torch = pytest.importorskip("torch")


def to_torch_lenet(model):
    """The same LeNet-5 in torch.nn, with our weights (NHWC -> NCHW transposes)."""
    nn = torch.nn
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    denses = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2))
    heads = [nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)]
    with torch.no_grad():
        for mod, layer in zip([net[0], net[3]], convs):
            k, b = layer.get_weights()
            mod.weight.copy_(torch.from_numpy(k.transpose(3, 2, 0, 1).copy()))
            mod.bias.copy_(torch.from_numpy(b))
        for mod, layer in zip(heads, denses):
            k, b = layer.get_weights()
            mod.weight.copy_(torch.from_numpy(k.T.copy()))
            mod.bias.copy_(torch.from_numpy(b))

    def forward(x_nhwc):
        h = net(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy()))
        h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # Flatten in NHWC order, like ours
        h = torch.relu(heads[0](h))
        h = torch.relu(heads[1](h))
        return heads[2](h).detach().numpy()

    return forward


def test_lenet5_matches_pytorch_with_the_same_weights():
    model = lenet5()
    X = np.random.default_rng(5).normal(size=(4, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(model(X), to_torch_lenet(model)(X), rtol=1e-4, atol=1e-4)
