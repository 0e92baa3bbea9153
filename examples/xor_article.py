"""The backpropagation article's XOR network, in plain NumPy: the run the service reproduces.

2 inputs, 2 sigmoid hidden units, 1 sigmoid output; weights and biases drawn from U[0, 1) with
seed 1 (each layer's weights, then its bias); sum-of-squares loss; plain gradient descent at
0.1 on the full batch for 10,000 epochs. The article seeds NumPy's global generator; this
takes its own ``RandomState(1)``, which draws the same numbers.

Run ``python -m examples.xor_article``. It prints the outputs of the last forward pass, which
runs before the 10,000th weight update: ``[0.06368082 0.94085536 0.94108726 0.06402009]``.
README's walk-through trains the same network through the service.
"""

import numpy as np

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
Y = np.array([[0], [1], [1], [0]])
EPOCHS = 10_000
LEARNING_RATE = 0.1


def article_spec(epochs: int = EPOCHS) -> dict:
    """The same network as a job spec for the engine (``backprop.Trainer``) and the service
    (``POST /v1/jobs`` with ``"data": {"X": X, "y": Y}``)."""
    return {
        "network": {
            "layers": [
                {"units": 2, "activation": "sigmoid"},
                {"units": 1, "activation": "sigmoid"},
            ],
            "init": {"scheme": "uniform", "low": 0, "high": 1},
            "seed": 1,
        },
        "training": {
            "loss": "sse",
            "optimizer": {"name": "sgd", "learning_rate": LEARNING_RATE},
            "epochs": epochs,
            "batch_size": None,
        },
    }


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def sigmoid_grad_from_output(a: np.ndarray) -> np.ndarray:
    """The sigmoid's derivative, written with its output ``a = sigmoid(z)``."""
    return a * (1 - a)


def article_loop(epochs: int = EPOCHS) -> tuple[list[np.ndarray], np.ndarray]:
    """Train the article's network.

    Returns:
        The final ``[W1 (2, 2), b1 (1, 2), W2 (2, 1), b2 (1, 1)]``, and the outputs of the
        last forward pass, of shape (4, 1).
    """
    rng = np.random.RandomState(1)
    W1, b1 = rng.uniform(size=(2, 2)), rng.uniform(size=(1, 2))
    W2, b2 = rng.uniform(size=(2, 1)), rng.uniform(size=(1, 1))
    for _ in range(epochs):
        hidden = sigmoid(np.dot(X, W1) + b1)
        output = sigmoid(np.dot(hidden, W2) + b2)
        # Gradient *ascent* on -SSE, as the article writes it: error is y - p.
        d_output = (Y - output) * sigmoid_grad_from_output(output)
        d_hidden = d_output.dot(W2.T) * sigmoid_grad_from_output(hidden)
        W2 += hidden.T.dot(d_output) * LEARNING_RATE
        b2 += np.sum(d_output, axis=0, keepdims=True) * LEARNING_RATE
        W1 += X.T.dot(d_hidden) * LEARNING_RATE
        b1 += np.sum(d_hidden, axis=0, keepdims=True) * LEARNING_RATE
    return [W1, b1, W2, b2], output


if __name__ == "__main__":
    _, last_forward_pass = article_loop()
    print("Final predicted_output:")
    print(last_forward_pass)
