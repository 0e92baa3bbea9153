"""The one workload every contender of ``make bench`` trains, so a ratio compares like with like.

784-256-128-10, relu hidden layers, softmax + categorical cross-entropy, Adam at lr 1e-3,
batch 128, 20,000 synthetic samples, 5 epochs. Every contender starts from the engine's initial
weights (he_uniform, seed 0) and visits the batches in the engine's order (its seeded shuffle),
so their final losses agree (to rounding in float64): a check that they did the same work.
"""

import os

import numpy as np

N_SAMPLES, N_FEATURES, N_CLASSES = 20_000, 784, 10
HIDDEN = (256, 128)
BATCH, LR = 128, 1e-3
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-8
SEED = 0
SIZES = (N_FEATURES, *HIDDEN, N_CLASSES)
N_WEIGHTS = sum(i * o for i, o in zip(SIZES[:-1], SIZES[1:], strict=False))
# Training FLOPs per sample by the usual convention: 2 per weight forward, 4 backward (dW and
# dX; the first layer's dX is not needed and the engine skips it, so this counts a little more
# than any contender does). Elementwise work is not counted: the GEMMs are the physical limit.
FLOPS_PER_SAMPLE = 6 * N_WEIGHTS
XOR_EPOCHS = 10_000


def epochs() -> int:
    """5 epochs; 1 under ``BENCH_QUICK``, for development."""
    return 1 if os.environ.get("BENCH_QUICK") else 5


def synthetic(dtype):
    """A learnable 10-class problem: labels from a random linear map of Gaussian inputs.

    Returns:
        (X, labels): X of shape (N_SAMPLES, N_FEATURES) in ``dtype``, labels of shape
        (N_SAMPLES,) as int64.
    """
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_SAMPLES, N_FEATURES)).astype(dtype)
    labels = (X @ rng.standard_normal((N_FEATURES, N_CLASSES))).argmax(axis=1)
    return X, labels


def engine_spec(dtype, n_epochs: int) -> dict:
    """The workload as an engine job spec."""
    return {
        "network": {
            "layers": [{"units": u, "activation": "relu"} for u in HIDDEN]
            + [{"units": N_CLASSES, "activation": "softmax"}],
            "init": {"scheme": "he_uniform"},
            "seed": SEED,
            "dtype": np.dtype(dtype).name,
        },
        "training": {
            "loss": "categorical_crossentropy",
            "optimizer": {
                "name": "adam",
                "learning_rate": LR,
                "beta_1": BETA_1,
                "beta_2": BETA_2,
                "epsilon": EPSILON,
            },
            "epochs": n_epochs,
            "batch_size": BATCH,
        },
    }


def batch_orders(n_epochs: int) -> list[np.ndarray]:
    """Each epoch's sample order, drawn as the engine's Trainer draws its shuffle."""
    rng = np.random.Generator(np.random.PCG64([SEED, 1]))
    return [rng.permutation(N_SAMPLES) for _ in range(n_epochs)]


def initial_parameters(dtype) -> list[tuple[np.ndarray, np.ndarray]]:
    """The engine's initial ``[(W, b), ...]`` for this workload, W of shape (n_in, n_out)."""
    from backprop.initializers import initial_parameters as draw

    params = draw({"scheme": "he_uniform", "bias": "zeros"}, SEED, list(SIZES))
    return [(W.astype(dtype), b.astype(dtype)) for W, b in params]
