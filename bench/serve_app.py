"""The API plus one bare route, for ``make bench-serve``: both served by the same gunicorn."""

from flask import jsonify

from service import create_app

app = create_app()


@app.get("/bench/bare")
def bare():
    """A constant JSON answer: the floor that every request to this server pays."""
    return jsonify({"outputs": [[0.5]]})
