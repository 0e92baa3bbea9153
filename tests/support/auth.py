"""Three tenants with API keys, and the app that knows them."""

from flask import Flask

from tests.support.apps import new_app

KEYS = {"alice": "alice-key", "bob": "bob-key", "admin": "root-key"}
API_KEYS = ",".join(f"{tenant}:{key}" for tenant, key in KEYS.items())
KEYED_CONFIG = {"AUTH_ENV": {"API_KEYS": API_KEYS}}


def bearer(tenant: str) -> dict:
    """The Authorization header of ``tenant``."""
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


def keyed_app(redis_url: str, **config) -> Flask:
    """The app with the test keys, against the test Redis, and ``config`` on top."""
    return new_app(redis_url, **{**KEYED_CONFIG, **config})
