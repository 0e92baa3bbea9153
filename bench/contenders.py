"""One measurement per process: ``python -m bench.contenders <name> <dtype>``.

``make bench`` starts a fresh process for every measurement, so no contender's threads, caches
or allocator state touch another's. Each training contender times only its training loop (data,
model and, for JAX, compilation are ready before the clock starts) and prints one JSON line:
``{"value": <samples/s, FLOP/s or seconds>, "loss": <final training loss or null>}``.
"""

import json
import sys
import time

import numpy as np

from bench import workload as w


def engine(dtype) -> tuple[float, float]:
    """The engine's Trainer on the workload: (samples/s, final loss)."""
    from backprop import Trainer

    X, labels = w.synthetic(dtype)
    Y = np.eye(w.N_CLASSES, dtype=dtype)[labels]
    n_epochs = w.epochs()
    trainer = Trainer(w.engine_spec(dtype, n_epochs), X, Y)
    start = time.perf_counter()
    trainer.fit()
    rate = w.N_SAMPLES * n_epochs / (time.perf_counter() - start)
    return rate, trainer.evaluate(trainer.X, trainer.Y)["loss"]


def torch(dtype) -> tuple[float, float]:
    """A plain eager PyTorch loop (torch.optim.Adam): (samples/s, final loss)."""
    import torch

    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    X, labels = w.synthetic(dtype)
    X, y = torch.from_numpy(X), torch.from_numpy(labels)
    layers = []
    for i, (W, b) in enumerate(w.initial_parameters(dtype)):
        linear = torch.nn.Linear(*W.shape, dtype=tdtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if i < len(w.HIDDEN):
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=w.LR, betas=(w.BETA_1, w.BETA_2), eps=w.EPSILON)
    loss_fn = torch.nn.CrossEntropyLoss()
    orders = [torch.from_numpy(order) for order in w.batch_orders(w.epochs())]
    start = time.perf_counter()
    for order in orders:
        for s in range(0, w.N_SAMPLES, w.BATCH):
            idx = order[s : s + w.BATCH]
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
    rate = w.N_SAMPLES * len(orders) / (time.perf_counter() - start)
    with torch.no_grad():
        return rate, float(loss_fn(model(X), y))


def jax(dtype) -> tuple[float, float]:
    """The whole training step under ``jax.jit``, Adam written out: (samples/s, final loss)."""
    import jax
    import jax.numpy as jnp

    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    b1, b2, eps, lr = w.BETA_1, w.BETA_2, w.EPSILON, w.LR

    def loss_fn(params, x, y):
        h = x
        for W, b in params[:-1]:
            h = jax.nn.relu(h @ W + b)
        W, b = params[-1]
        logp = jax.nn.log_softmax(h @ W + b)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def step(params, m, v, t, X, y, idx):
        grads = jax.grad(loss_fn)(params, X[idx], y[idx])
        t = t + 1
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        c1, c2 = 1 - b1**t, 1 - b2**t
        params = jax.tree.map(
            lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), params, m, v
        )
        return params, m, v, t

    step = jax.jit(step, donate_argnums=(0, 1, 2))
    X, labels = w.synthetic(dtype)
    X, y = jnp.asarray(X), jnp.asarray(labels.astype(np.int32))
    orders = w.batch_orders(w.epochs())
    batches = [
        [jnp.asarray(o[s : s + w.BATCH].astype(np.int32)) for s in range(0, w.N_SAMPLES, w.BATCH)]
        for o in orders
    ]

    def fresh():
        params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in w.initial_parameters(dtype)]
        zeros = jax.tree.map(jnp.zeros_like, params)
        return params, zeros, jax.tree.map(jnp.zeros_like, params), jnp.asarray(0.0, dtype)

    # Compile both batch shapes (full and the last, shorter one) before the clock starts.
    for idx in {b.shape: b for b in batches[0]}.values():
        jax.block_until_ready(step(*fresh(), X, y, idx))
    params, m, v, t = fresh()
    jax.block_until_ready(params)
    start = time.perf_counter()
    for epoch in batches:
        for idx in epoch:
            params, m, v, t = step(params, m, v, t, X, y, idx)
    jax.block_until_ready(params)
    rate = w.N_SAMPLES * len(batches) / (time.perf_counter() - start)
    return rate, float(loss_fn(params, X, y))


def gemm(dtype) -> tuple[float, None]:
    """NumPy's GEMM peak, FLOP/s: the best of 50 square products of 1024.

    Many short products rather than a few long ones: on a shared host the best of them is the
    one both cores ran undisturbed, which is what a peak means.
    """
    n = 1024
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    c = np.empty((n, n), dtype)
    np.dot(a, b, out=c)
    best = float("inf")
    for _ in range(50):
        start = time.perf_counter()
        np.dot(a, b, out=c)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best, None


def engine_xor(dtype) -> tuple[float, None]:
    """Seconds for the engine to train the article's XOR run."""
    from backprop import Trainer
    from examples.xor_article import X, Y, article_spec

    trainer = Trainer(article_spec(w.XOR_EPOCHS), X, Y)
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start, None


def article_xor(dtype) -> tuple[float, None]:
    """Seconds for the article's own loop (examples/xor_article.py), its four draws included."""
    from examples.xor_article import article_loop

    start = time.perf_counter()
    article_loop(w.XOR_EPOCHS)
    return time.perf_counter() - start, None


CONTENDERS = {f.__name__: f for f in (engine, torch, jax, gemm, engine_xor, article_xor)}


def main(argv: list[str]) -> None:
    name, dtype = argv
    value, loss = CONTENDERS[name](np.dtype(dtype).type)
    print(json.dumps({"value": value, "loss": loss}))


if __name__ == "__main__":
    main(sys.argv[1:])
