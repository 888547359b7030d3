"""``to_config`` of a subclassed ``Model``: Keras requires ``get_config``; without it we refuse
with a message saying so, with it the config round-trips (JSON, ``from_config``)."""

import json

import numpy as np
import pytest

from compiler import CompilerError, Model, layers, ops


class Tower(Model):
    def __init__(self, units=4, depth=2, **kwargs):
        super().__init__(**kwargs)
        self.units, self.depth = units, depth
        self.blocks = [layers.Dense(units, activation="relu") for _ in range(depth)]
        self.head = layers.Dense(1)

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(ops.tanh(x))

    def get_config(self):
        return {"units": self.units, "depth": self.depth}


class NoConfig(Model):
    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(2)

    def call(self, x):
        return self.dense(x)


class BadConfig(Tower):
    def get_config(self):
        return {"units": self.units, "width": 3}


def test_a_subclass_without_get_config_is_refused_with_what_to_do():
    with pytest.raises(CompilerError, match=r"NoConfig\) without get_config\(\).*Keras needs "
                                            r"get_config\(\).*NoConfig\.__init__"):
        NoConfig().to_config()


def test_get_config_round_trips_through_json_and_from_config():
    net = Tower(units=5, depth=3)
    config = json.loads(json.dumps(net.to_config()))
    assert config["class_name"] == "Tower" and config["config"] == {"units": 5, "depth": 3}
    for clone in (Model.from_config(config), Tower.from_config(net.get_config())):
        assert type(clone) is Tower and (clone.units, clone.depth) == (5, 3)
        x = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)
        assert clone(x).shape == (2, 1)
        net(x)
        assert [w.shape for w in clone.get_weights()] == [w.shape for w in net.get_weights()]


def test_a_get_config_that_does_not_fit_init_names_the_class():
    with pytest.raises(CompilerError, match=r"BadConfig\(\*\*config\) failed.*BadConfig.__init__"):
        Model.from_config(BadConfig().to_config())
