"""The dashboard at ``/``: one HTML page and its static files, every one in the repository.

The page and its assets are open (``@open_endpoint``): they hold no data. The API calls the
page's script makes carry the key the user typed. Every answer from here carries a strict
Content-Security-Policy: scripts and styles from this origin only, nothing inline, so user
data the page shows as text can never run.
"""

from pathlib import Path

from flask import Blueprint, Response, current_app, render_template, send_from_directory

from .endpoints import open_endpoint

STATIC = Path(__file__).resolve().parent / "static"
# No 'unsafe-inline' anywhere: the page builds its DOM with textContent and sets styles from
# its script through the CSSOM, which CSP allows.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)

bp = Blueprint("dashboard", __name__, template_folder="templates")


@bp.after_request
def secure_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@open_endpoint
@bp.get("/")
def page():
    """The dashboard's one page; its script routes by the URL's fragment."""
    return render_template("dashboard.html")


@open_endpoint
@bp.get("/dashboard/config.json")
def config():
    """What the page must know before its first API call: whether to ask for a key."""
    return {"auth": bool(current_app.extensions["api_keys"])}


@open_endpoint
@bp.get("/static/<path:filename>")
def static(filename: str):
    """The page's script, styles and vendored libraries (uPlot, ReDoc for /docs)."""
    return send_from_directory(STATIC, filename, max_age=300)


@open_endpoint
@bp.get("/favicon.ico")
def favicon():
    """The icon browsers ask for on every page, /docs too (its template names none)."""
    return send_from_directory(STATIC / "dashboard", "favicon.svg", mimetype="image/svg+xml")
