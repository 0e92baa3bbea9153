"""The rq side: the training task and ``python -m workers``."""
