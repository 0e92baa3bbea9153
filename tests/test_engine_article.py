"""The engine reproduces the article's XOR run (examples/xor_article.py is its loop)."""

import numpy as np
import pytest

from backprop import Trainer
from examples.xor_article import article_loop, article_spec

X = [[0, 0], [0, 1], [1, 0], [1, 1]]
Y = [[0], [1], [1], [0]]
# The article prints its output from the forward pass of its last epoch, i.e. with the
# weights of 9,999 updates; a model trained for 10,000 epochs predicts the second row.
AFTER_9999 = [0.06368082, 0.94085536, 0.94108726, 0.06402009]
AFTER_10000 = [0.06367371, 0.94086271, 0.94109457, 0.06401166]
EPOCHS = 10_000


def predictions(trainer: Trainer) -> np.ndarray:
    return trainer.model().predict(X)[:, 0]


@pytest.fixture(scope="module")
def straight() -> Trainer:
    """An uninterrupted 10,000-epoch run."""
    trainer = Trainer(article_spec(), X, Y)
    trainer.fit()
    return trainer


@pytest.fixture(scope="module")
def article() -> tuple[list[np.ndarray], np.ndarray]:
    return article_loop()


def test_initial_weights_are_the_articles_draws():
    trainer = Trainer(article_spec(), X, Y)
    rng = np.random.RandomState(1)
    W1, b1 = rng.uniform(size=(2, 2)), rng.uniform(size=(1, 2))
    W2, b2 = rng.uniform(size=(2, 1)), rng.uniform(size=(1, 1))
    (eW1, eb1), (eW2, eb2) = trainer.network.parameters()
    for engine, expected in [(eW1, W1), (eb1, b1[0]), (eW2, W2), (eb2, b2[0])]:
        assert engine.tobytes() == expected.tobytes()


def test_9999_epochs_then_one_more_from_a_checkpoint(straight):
    first = Trainer(article_spec(), X, Y)
    first.fit(callback=lambda epoch, logs: epoch == EPOCHS - 1)
    assert first.epoch == EPOCHS - 1
    np.testing.assert_allclose(predictions(first), AFTER_9999, rtol=0, atol=1e-6)

    resumed = Trainer(article_spec(), X, Y)
    resumed.restore(first.checkpoint())
    resumed.fit()
    assert resumed.epoch == EPOCHS
    np.testing.assert_allclose(predictions(resumed), AFTER_10000, rtol=0, atol=1e-6)
    assert resumed.network.params.tobytes() == straight.network.params.tobytes()
    assert resumed.history == straight.history


def test_straight_10000_epochs(straight):
    np.testing.assert_allclose(predictions(straight), AFTER_10000, rtol=0, atol=1e-6)


def test_history_has_one_entry_per_epoch(straight):
    assert straight.history["epoch"] == list(range(1, EPOCHS + 1))
    assert len(straight.history["loss"]) == EPOCHS
    assert straight.history["loss"][-1] < straight.history["loss"][0]


def test_final_weights_match_the_articles_loop(straight, article):
    weights, _ = article
    (W1, b1), (W2, b2) = straight.network.parameters()
    for engine, expected in zip([W1, b1, W2, b2], weights, strict=True):
        np.testing.assert_allclose(engine, expected.reshape(engine.shape), rtol=0, atol=1e-12)


def test_last_epoch_loss_is_the_sse_of_the_articles_last_forward_pass(straight, article):
    _, predicted_output = article
    np.testing.assert_allclose(predicted_output[:, 0], AFTER_9999, rtol=0, atol=1e-6)
    sse = 0.5 * float(((np.array(Y) - predicted_output) ** 2).sum())
    assert straight.history["loss"][-1] == pytest.approx(sse, rel=1e-12)
