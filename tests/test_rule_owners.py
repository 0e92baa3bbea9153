"""Each rule has one owner: the engine's classes declare a bound once, and the API agrees."""

import pytest
from marshmallow import ValidationError

from backprop.activations import ACTIVATIONS
from backprop.exceptions import SpecError
from backprop.optimizers import OPTIMIZERS, SCHEDULES
from backprop.spec import normalize
from service.schemas import LayerSchema, OptimizerSchema, ScheduleSchema

SPEC = {"network": {"layers": [{"units": 1}]}, "training": {"loss": "mse"}}


def engine_accepts(optimizer: dict) -> bool:
    try:
        normalize({**SPEC, "training": {**SPEC["training"], "optimizer": optimizer}})
    except SpecError:
        return False
    return True


def api_accepts(optimizer: dict) -> bool:
    try:
        OptimizerSchema().load(optimizer)
    except ValidationError:
        return False
    return True


def edges(registry: dict):
    """(name, key, value, expected) at every bound every class of ``registry`` declares."""
    for name, cls in registry.items():
        for key, h in cls.hyperparameters.items():
            if h.is_flag:
                continue
            if h.low is not None:
                yield name, key, h.low, not h.low_open
                yield name, key, h.low - 1e-9, False
            if h.high is not None:
                yield name, key, h.high, not h.high_open
                yield name, key, h.high + 1e-9, False
            yield name, key, h.default, True


@pytest.mark.parametrize(("name", "key", "value", "expected"), list(edges(OPTIMIZERS)))
def test_the_engine_and_the_api_take_the_same_hyperparameters(name, key, value, expected):
    optimizer = {"name": name, key: value}
    assert engine_accepts(optimizer) is expected
    assert api_accepts(optimizer) is expected


def test_defaults_come_from_the_optimizer_classes():
    for name, optimizer in OPTIMIZERS.items():
        spec = normalize({**SPEC, "training": {**SPEC["training"], "optimizer": {"name": name}}})
        chosen = spec["training"]["optimizer"]
        for key, h in optimizer.hyperparameters.items():
            assert chosen[key] == h.default, (name, key)


@pytest.mark.parametrize(("name", "key", "value", "expected"), list(edges(ACTIVATIONS)))
def test_the_engine_and_the_api_take_the_same_activation_parameters(name, key, value, expected):
    layer = {"units": 1, "activation": name, key: value}
    try:
        normalize({**SPEC, "network": {"layers": [layer]}})
        engine = True
    except SpecError:
        engine = False
    try:
        LayerSchema().load(layer)
        api = True
    except ValidationError:
        api = False
    assert (engine, api) == (expected, expected)


@pytest.mark.parametrize(("name", "key", "value", "expected"), list(edges(SCHEDULES)))
def test_the_engine_and_the_api_take_the_same_schedules(name, key, value, expected):
    schedule = {"name": name, key: value}
    assert engine_accepts({"name": "sgd", "schedule": schedule}) is expected
    try:
        ScheduleSchema().load(schedule)
        api = True
    except ValidationError:
        api = False
    assert api is expected
