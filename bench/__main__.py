"""``make bench``: the engine against PyTorch, scikit-learn and the article's loop, in one run.

Realistic workload: 784-256-128-10, relu hidden layers, softmax + cross-entropy, Adam at
lr 1e-3, batch 128, 20,000 synthetic samples, 5 epochs, in float32 and float64. XOR: the
article's 10,000-epoch run, engine against a straight NumPy loop written like the article's.

The last line is ``bench: torch_ratio_f32=<x> torch_ratio_f64=<x> xor_ratio=<x>``.
"""

import time
import warnings

import numpy as np

from backprop import Trainer
from examples.xor_article import X as XOR_X
from examples.xor_article import Y as XOR_Y
from examples.xor_article import article_loop, article_spec

N_SAMPLES, N_FEATURES, N_CLASSES = 20_000, 784, 10
EPOCHS, BATCH, LR = 5, 128, 1e-3
HIDDEN = (256, 128)
XOR_EPOCHS = 10_000
REPEATS = 3


def synthetic(dtype):
    """A learnable 10-class problem: labels from a random linear map of Gaussian inputs."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_SAMPLES, N_FEATURES)).astype(dtype)
    labels = (X @ rng.standard_normal((N_FEATURES, N_CLASSES))).argmax(axis=1)
    return X, labels


def engine_rate(dtype) -> float:
    X, labels = synthetic(dtype)
    Y = np.eye(N_CLASSES, dtype=dtype)[labels]
    spec = {
        "network": {
            "layers": [{"units": u, "activation": "relu"} for u in HIDDEN]
            + [{"units": N_CLASSES, "activation": "softmax"}],
            "init": {"scheme": "he_uniform"},
            "seed": 0,
            "dtype": np.dtype(dtype).name,
        },
        "training": {
            "loss": "categorical_crossentropy",
            "optimizer": {"name": "adam", "learning_rate": LR},
            "epochs": EPOCHS,
            "batch_size": BATCH,
        },
    }
    trainer = Trainer(spec, X, Y)
    start = time.perf_counter()
    trainer.fit()
    return N_SAMPLES * EPOCHS / (time.perf_counter() - start)


def torch_rate(dtype) -> float:
    import torch

    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    X, labels = synthetic(dtype)
    X, y = torch.from_numpy(X), torch.from_numpy(labels)
    torch.manual_seed(0)
    sizes = (N_FEATURES, *HIDDEN)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(HIDDEN[-1], N_CLASSES)).to(tdtype)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(EPOCHS):
        perm = torch.randperm(N_SAMPLES)
        for s in range(0, N_SAMPLES, BATCH):
            idx = perm[s : s + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
    return N_SAMPLES * EPOCHS / (time.perf_counter() - start)


def sklearn_rate(dtype) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, labels = synthetic(dtype)
    clf = MLPClassifier(
        hidden_layer_sizes=HIDDEN,
        solver="adam",
        learning_rate_init=LR,
        batch_size=BATCH,
        max_iter=EPOCHS,
        tol=0.0,
        n_iter_no_change=EPOCHS + 1,
        random_state=0,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, labels)
    return N_SAMPLES * EPOCHS / (time.perf_counter() - start)


def article_loop_seconds() -> float:
    """The article's loop (examples/xor_article.py), timed with its four initial draws."""
    start = time.perf_counter()
    article_loop(XOR_EPOCHS)
    return time.perf_counter() - start


def engine_xor_seconds() -> float:
    spec = article_spec(XOR_EPOCHS)
    trainer = Trainer(spec, XOR_X, XOR_Y)
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start


def best(fn, *args, higher=True):
    """Best of REPEATS runs, so one descheduled run does not decide a ratio."""
    runs = [fn(*args) for _ in range(REPEATS)]
    return max(runs) if higher else min(runs)


def blas_note() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{i.get('internal_api')} {i.get('architecture', '?')} x{i.get('num_threads')}"
        for i in threadpool_info()
    )


def main() -> None:
    print(f"BLAS: {blas_note()}")
    ratios = {}
    for dtype, tag in ((np.float32, "f32"), (np.float64, "f64")):
        engine, torch_, sk = best(engine_rate, dtype), best(torch_rate, dtype), sklearn_rate(dtype)
        ratios[tag] = engine / torch_
        print(
            f"{tag}: engine {engine:,.0f} samples/s, torch {torch_:,.0f}, sklearn {sk:,.0f}; "
            f"engine/torch {engine / torch_:.2f}x, engine/sklearn {engine / sk:.2f}x"
        )
    loop = best(article_loop_seconds, higher=False)
    engine = best(engine_xor_seconds, higher=False)
    print(
        f"xor: engine {engine * 1e3:.1f} ms, article loop {loop * 1e3:.1f} ms, {XOR_EPOCHS} epochs"
    )
    print(
        f"bench: torch_ratio_f32={ratios['f32']:.2f} torch_ratio_f64={ratios['f64']:.2f} "
        f"xor_ratio={engine / loop:.2f}"
    )


if __name__ == "__main__":
    main()
