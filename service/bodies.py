"""Request bodies: a size cap, checked before a byte is read.

A JSON body declared larger than ``MAX_JSON_BODY_BYTES`` is answered 413 at once, with the
binary form to use instead; one of undeclared length (chunked) once it passes the cap.
"""

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

JSON = "application/json"
# What to send instead of a JSON body past the cap, by endpoint; the views that take numbers in
# bulk register theirs.
BIG_JSON_HINTS: dict[str, str] = {}
DEFAULT_HINT = (
    "Upload big training data once with POST /v1/datasets, as CSV or a NumPy .npy/.npz file "
    "(up to MAX_DATASET_BYTES), and give its dataset_id."
)


def refuse_larger_than(cap: int, limit: str) -> None:
    """413 when the body is larger than ``cap`` (or ``MAX_CONTENT_LENGTH``, if smaller): before
    reading it when its length is declared, after ``cap`` bytes when it is not (chunked).

    Args:
        limit: what the cap is and what to do instead, for the message.
    """
    largest = current_app.config["MAX_CONTENT_LENGTH"]
    if largest is not None and largest < cap:
        cap, limit = largest, f"a request body may have at most {largest:,} (MAX_CONTENT_LENGTH)."
    length = request.content_length
    if length is not None and length > cap:
        raise RequestEntityTooLarge(f"The body has {length:,} bytes; {limit}")
    if length is None:
        # Werkzeug cuts a body of undeclared length at the cap without a word, and what is
        # left may still parse: read one byte more (the view reads it all anyway) and look.
        request.max_content_length = cap + 1
        if len(request.get_data()) > cap:
            raise RequestEntityTooLarge(f"The body has more than {cap:,} bytes; {limit}")
    request.max_content_length = cap


def cap_json() -> None:
    """Keep the JSON body to ``MAX_JSON_BODY_BYTES`` (parsing takes several times its size)."""
    cap = current_app.config["MAX_JSON_BODY_BYTES"]
    hint = BIG_JSON_HINTS.get(request.endpoint, DEFAULT_HINT)
    refuse_larger_than(cap, f"a JSON body may have at most {cap:,} (MAX_JSON_BODY_BYTES). {hint}")


def cap_json_bodies() -> None:
    if request.mimetype == JSON:
        cap_json()


def init_app(app: Flask) -> None:
    app.before_request(cap_json_bodies)
