"""Short, runnable examples; `python -m examples.xor_article` runs the article's network."""
