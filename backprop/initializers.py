"""Weight initialisation schemes.

Draws use a seeded legacy ``numpy.random.RandomState`` object, in the article's order: each
layer's weights, then its bias when biases are drawn too. With ``uniform`` (0, 1) and seed 1
this reproduces the article's ``np.random.seed(1)``; ``np.random.uniform(size=...)`` exactly.
"""

import math

import numpy as np

SCHEMES = (
    "uniform",
    "normal",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_normal",
)
# The most |low|, |high|, |mean| and std may be. Draws and high - low then stay finite in
# every network dtype (float32 ends at 3.4e38), and a weight of a million already saturates
# every unit it feeds.
MAX_INIT_MAGNITUDE = 1e6


def draw(rng: np.random.RandomState, init: dict, shape: tuple[int, ...], fan_in: int, fan_out: int):
    """Draw one float64 array of ``shape`` by the scheme in ``init``.

    Args:
        rng: the seeded legacy generator; it advances by ``prod(shape)`` draws.
        init: normalised init spec: ``scheme`` and its ``low``/``high`` or ``mean``/``std``.
        fan_in, fan_out: the layer's input and output widths.
    """
    scheme = init["scheme"]
    if scheme == "uniform":
        return rng.uniform(init["low"], init["high"], size=shape)
    if scheme == "normal":
        return rng.normal(init["mean"], init["std"], size=shape)
    if scheme == "glorot_uniform":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape)
    if scheme == "glorot_normal":
        return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)
    if scheme == "he_uniform":
        limit = math.sqrt(6.0 / fan_in)
        return rng.uniform(-limit, limit, size=shape)
    if scheme == "he_normal":
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
    if scheme == "lecun_normal":
        return rng.normal(0.0, math.sqrt(1.0 / fan_in), size=shape)
    raise ValueError(f"unknown init scheme {scheme!r}")


def initial_parameters(init: dict, seed: int, sizes: list[int]) -> list[tuple]:
    """Initial ``(W, b)`` per layer, float64.

    Args:
        init: normalised init spec; ``bias`` is ``"zeros"`` or ``"scheme"``.
        seed: seed of the legacy generator.
        sizes: ``[n_inputs, units_1, ..., units_L]``.

    Returns:
        A list of L pairs: W of shape (sizes[i], sizes[i+1]) and b of shape (sizes[i+1],).
    """
    rng = np.random.RandomState(seed)
    out = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        W = draw(rng, init, (n_in, n_out), n_in, n_out)
        if init["bias"] == "scheme":
            b = draw(rng, init, (1, n_out), n_in, n_out).reshape(n_out)
        else:
            b = np.zeros(n_out)
        out.append((W, b))
    return out
