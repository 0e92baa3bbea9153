"""A job's name, tags and metadata: what people call and mark their jobs with.

The bounds live here, once: the API's schemas check requests with ``problems`` and
``create_job``/``relabel`` refuse what it refuses, so a job stored by any path (HTTP, sweeps,
tests) keeps within them.
"""

import math
import unicodedata

NAME_MAX_LENGTH = 200
MAX_TAGS = 20
TAG_MAX_LENGTH = 64
METADATA_MAX_KEYS = 32
METADATA_KEY_MAX_LENGTH = 64
METADATA_VALUE_MAX_LENGTH = 256  # a string value's characters: with the two above, the size
# A name, tag or metadata key: no control character (Unicode category Cc), as a regex that
# Python and ECMAScript (OpenAPI) read alike.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"


def _text_problem(text, max_length: int) -> str | None:
    """Why ``text`` is not a short printable string, or None."""
    if not isinstance(text, str):
        return "Not a valid string."
    if not text or len(text) > max_length:
        return f"Must be 1 to {max_length} characters."
    # Control characters would break the lex index (store.search uses NUL as a separator) and
    # nobody types them in a name. (TEXT_PATTERN says the same to OpenAPI.)
    if any(unicodedata.category(c) == "Cc" for c in text):
        return "Must not contain control characters."
    return None


def problems(name=None, tags=None, metadata=None) -> dict[str, list[str]]:
    """What is wrong with each label given, by field path; empty when all are within bounds.

    Args:
        name: a string of 1 to NAME_MAX_LENGTH printable characters, or None.
        tags: a list of at most MAX_TAGS such strings of up to TAG_MAX_LENGTH, or None.
        metadata: a flat object of at most METADATA_MAX_KEYS keys of up to
            METADATA_KEY_MAX_LENGTH characters, values strings of up to
            METADATA_VALUE_MAX_LENGTH characters, finite numbers, booleans or null; or None.
    """
    errors: dict[str, list[str]] = {}
    if name is not None:
        problem = _text_problem(name, NAME_MAX_LENGTH)
        if problem:
            errors["name"] = [problem]
    if tags is not None:
        if not isinstance(tags, list):
            errors["tags"] = ["Not a valid list."]
        elif len(tags) > MAX_TAGS:
            errors["tags"] = [f"At most {MAX_TAGS} tags."]
        for i, tag in enumerate(tags if isinstance(tags, list) else []):
            problem = _text_problem(tag, TAG_MAX_LENGTH)
            if problem:
                errors[f"tags.{i}"] = [problem]
    if metadata is not None:
        errors.update(_metadata_problems(metadata))
    return errors


def _metadata_problems(metadata) -> dict[str, list[str]]:
    if not isinstance(metadata, dict):
        return {"metadata": ["Not a valid object."]}
    errors: dict[str, list[str]] = {}
    if len(metadata) > METADATA_MAX_KEYS:
        errors["metadata"] = [f"At most {METADATA_MAX_KEYS} keys."]
    for key, value in metadata.items():
        problem = _text_problem(key, METADATA_KEY_MAX_LENGTH)
        if problem:
            errors[f"metadata.{key}"] = [f"Key: {problem}"]
        elif isinstance(value, float) and not math.isfinite(value):
            errors[f"metadata.{key}"] = ["Must be a finite number."]
        elif not (value is None or isinstance(value, str | int | float | bool)):
            errors[f"metadata.{key}"] = ["Must be a string, number, boolean or null (flat)."]
        elif isinstance(value, str) and len(value) > METADATA_VALUE_MAX_LENGTH:
            errors[f"metadata.{key}"] = [f"At most {METADATA_VALUE_MAX_LENGTH} characters."]
    return errors


def unique_tags(tags: list[str] | None) -> list[str]:
    """The tags, each once, in the order given."""
    return list(dict.fromkeys(tags or []))


def check(name=None, tags=None, metadata=None) -> None:
    """Raise ``ValueError`` naming the first field out of bounds (for callers past the API)."""
    errors = problems(name, tags, metadata)
    if errors:
        path, messages = next(iter(errors.items()))
        raise ValueError(f"{path}: {' '.join(messages)}")
