"""What a view declares about itself, for the app-wide request hooks to read.

``@open_endpoint``: reachable without an API key and outside the rate limit (probes, the OpenAPI
document). ``@raw_body``: its bodies are not JSON, or not always, so the app's JSON content-type
check skips it and the view answers 415 itself. Either goes on a view function or a MethodView
class, above or below its route decorator. A subclass of a marked class is not marked: each view
declares itself, so nothing is opened by inheritance.
"""

from typing import TypeVar

from flask import current_app, request

View = TypeVar("View")

OPEN = "_open_endpoint"
RAW_BODY = "_raw_body"
BIG_BODY_HINT = "_big_body_hint"
PREDICTION = "_prediction"


def open_endpoint(view: View) -> View:
    """Declare ``view`` reachable without an API key and exempt from the rate limit."""
    setattr(view, OPEN, True)
    return view


def prediction(view: View) -> View:
    """Declare ``view`` a prediction: its requests count against RATE_LIMIT_PREDICT, not
    RATE_LIMIT (a default limit chosen per request, not a flask-limiter decorator, which would
    check every request a second time)."""
    setattr(view, PREDICTION, True)
    return view


def doc_only(*decorators):
    """Apply flask-smorest's documentation decorators (``blp.doc``, ``blp.alt_response``) for
    their OpenAPI entries only: the view keeps no wrapper of theirs, each of which would cost
    every request a call through ``ensure_sync``."""

    def apply(view: View) -> View:
        documented = view
        for decorator in reversed(decorators):
            documented = decorator(documented)
        view._apidoc = documented._apidoc
        return view

    return apply


def raw_body(view: View) -> View:
    """Declare that ``view`` reads bodies that are not JSON and checks their types itself."""
    setattr(view, RAW_BODY, True)
    return view


def big_body_hint(hint: str):
    """Declare what a client should send instead of a JSON body too big for ``view``."""

    def mark(view: View) -> View:
        setattr(view, BIG_BODY_HINT, hint)
        return view

    return mark


def declaration(view_func, mark: str):
    """What a registered view function, or the MethodView class behind it, declares as
    ``mark``; None when it declares nothing.

    Args:
        view_func: a value of ``app.view_functions``, or None.
        mark: ``OPEN``, ``RAW_BODY`` or ``BIG_BODY_HINT``.
    """
    if view_func is None:
        return None
    value = getattr(view_func, mark, None)  # a bound method reads its function's attributes
    if value is not None:
        return value
    view_class = getattr(view_func, "view_class", None)  # set by MethodView.as_view
    return None if view_class is None else vars(view_class).get(mark)


def declares(view_func, mark: str) -> bool:
    """Whether a registered view function, or the MethodView class behind it, carries ``mark``."""
    return bool(declaration(view_func, mark))


def current_view():
    """The view function the current request was routed to; None when no route matched."""
    if request.endpoint is None:
        return None
    return current_app.view_functions.get(request.endpoint)


def is_open() -> bool:
    """Whether the current request's view was declared ``@open_endpoint``."""
    return declares(current_view(), OPEN)


def is_prediction() -> bool:
    """Whether the current request's view was declared ``@prediction``."""
    return declares(current_view(), PREDICTION)


def takes_raw_body() -> bool:
    """Whether the current request's view was declared ``@raw_body``."""
    return declares(current_view(), RAW_BODY)


def current_big_body_hint() -> str | None:
    """What the current request's view said to send instead of a JSON body too big for it."""
    return declaration(current_view(), BIG_BODY_HINT)
