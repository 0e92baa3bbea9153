"""The API plus one bare route, for ``make bench-serve``: both served by the same gunicorn."""

from flask import jsonify

from service import create_app

app = create_app()


@app.route("/bench/bare", methods=["GET", "POST"])
def bare():
    """A constant JSON answer, whatever the body: the floor every request to this server pays."""
    return jsonify({"outputs": [[0.5]]})
