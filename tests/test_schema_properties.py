"""Property tests for the request schemas: whatever JSON arrives, loading either succeeds with
clean float64 arrays or raises marshmallow's ValidationError, never anything else (a 500)."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from service.fields import Matrix, Number
from service.schemas import JobCreateSchema, PredictRequestSchema

finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)


@st.composite
def matrices(draw):
    rows = draw(st.integers(1, 6))
    cols = draw(st.integers(1, 6))
    return [[draw(finite) for _ in range(cols)] for _ in range(rows)]


@given(matrices())
def test_rectangular_finite_matrices_load_exactly(rows):
    array = Matrix().deserialize(rows)
    assert array.dtype == np.float64 and array.shape == (len(rows), len(rows[0]))
    assert array.tolist() == [[float(v) for v in row] for row in rows]


@given(matrices(), st.data())
def test_a_ragged_row_is_rejected(rows, data):
    i = data.draw(st.integers(0, len(rows) - 1))
    rows[i] = rows[i] + [0.0]
    if len(rows) == 1:
        rows.append([0.0])
    try:
        Matrix().deserialize(rows)
    except ValidationError:
        return
    raise AssertionError("a ragged matrix loaded")


@given(matrices(), st.data(), st.sampled_from([True, "1", None, float("nan"), math.inf, [1.0]]))
def test_a_non_number_anywhere_is_rejected(rows, data, bad):
    i = data.draw(st.integers(0, len(rows) - 1))
    j = data.draw(st.integers(0, len(rows[0]) - 1))
    rows[i][j] = bad
    try:
        Matrix().deserialize(rows)
    except ValidationError:
        return
    raise AssertionError(f"{bad!r} loaded as a number")


@given(st.one_of(finite, st.booleans(), st.text(max_size=4), st.floats()))
def test_number_takes_finite_ints_and_floats_only(value):
    ok = type(value) in (int, float) and math.isfinite(value)
    try:
        loaded = Number().deserialize(value)
    except ValidationError:
        assert not ok
    else:
        assert ok and loaded == value


@settings(max_examples=300)
@given(json_values)
def test_any_json_body_loads_or_raises_validation_error(body):
    for schema in (JobCreateSchema(), PredictRequestSchema()):
        try:
            schema.load(body)
        except ValidationError as exc:
            assert exc.messages


layer = st.fixed_dictionaries(
    {
        "units": st.integers(1, 5),
        "activation": st.sampled_from(["sigmoid", "tanh", "relu", "linear", "elu"]),
    }
)


@settings(max_examples=100, deadline=None)
@given(st.lists(layer, min_size=1, max_size=3), st.integers(1, 6), st.integers(1, 4))
def test_consistent_jobs_load_and_shapes_are_checked(layers, n_rows, n_cols):
    n_out = layers[-1]["units"]
    job = {
        "network": {"layers": layers, "seed": 1},
        "training": {"loss": "mse", "optimizer": {"name": "adam"}, "epochs": 2},
        "data": {"X": [[0.5] * n_cols] * n_rows, "y": [[1.0] * n_out] * n_rows},
    }
    loaded = JobCreateSchema().load(job)
    assert loaded["arrays"]["X"].shape == (n_rows, n_cols)
    job["data"]["y"] = [[1.0] * (n_out + 1)] * n_rows
    try:
        JobCreateSchema().load(job)
    except ValidationError as exc:
        assert "data.y" in exc.messages
    else:
        raise AssertionError("a y of the wrong width loaded")
