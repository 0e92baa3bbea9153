"""API keys: ``Authorization: Bearer <key>`` names a tenant.

Keys come from ``API_KEYS`` (``tenant:key,tenant:key``) and/or ``API_KEYS_FILE`` (one
``tenant:key`` or ``tenant:sha256:<hex digest of the key>`` per line; ``#`` comments). Only
SHA-256 digests are kept in memory. Tenants named in ``ADMIN_TENANTS`` (default ``admin``) can
read and list every tenant's resources. With no keys configured, auth is off: everything
belongs to the tenant ``public``, and gunicorn binds 127.0.0.1 only.
"""

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app, g, request
from flask_smorest import abort

import store

from . import endpoints

log = logging.getLogger(__name__)

PUBLIC = store.PUBLIC_TENANT


@dataclass(frozen=True)
class Tenant:
    name: str
    admin: bool = False

    def owns(self, resource: dict) -> bool:
        """Whether this tenant may see a stored job, model or dataset record."""
        return self.admin or resource.get("tenant", PUBLIC) == self.name


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_keys(env=os.environ) -> dict[str, Tenant]:
    """``{sha256 hex digest: Tenant}`` from the environment and the keys file.

    Raises:
        ValueError: an entry is not ``tenant:key`` or ``tenant:sha256:<64 hex digits>``.
    """
    admins = {t.strip() for t in env.get("ADMIN_TENANTS", "admin").split(",") if t.strip()}
    entries = [e for e in env.get("API_KEYS", "").split(",") if e.strip()]
    path = env.get("API_KEYS_FILE")
    if path:
        lines = Path(path).read_text().splitlines()
        entries += [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    ring = {}
    for entry in entries:
        tenant, sep, secret = entry.strip().partition(":")
        if not sep or not tenant or not secret:
            raise ValueError("API keys must be given as tenant:key")
        if secret.startswith("sha256:"):
            hexdigest = secret.removeprefix("sha256:").lower()
            if len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
                raise ValueError(f"tenant {tenant}: sha256: must be followed by 64 hex digits")
        else:
            hexdigest = digest(secret)
        ring[hexdigest] = Tenant(tenant, admin=tenant in admins)
    return ring


def auth_enabled(env=os.environ) -> bool:
    return bool(env.get("API_KEYS", "").strip() or env.get("API_KEYS_FILE"))


def init_app(app: Flask) -> None:
    ring = parse_keys(app.config.get("AUTH_ENV") or os.environ)
    app.extensions["api_keys"] = ring
    if not ring:
        log.warning("no API keys configured: auth is off and every caller is tenant 'public'")

    @app.before_request
    def authenticate():
        g.tenant = authenticated_tenant()


def tenant_from_header() -> Tenant | None:
    """The tenant whose key the request carries; None without a valid key (or with auth off)."""
    ring = current_app.extensions["api_keys"]
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if not ring or scheme.lower() != "bearer" or not key.strip():
        return None
    return ring.get(digest(key.strip()))


def authenticated_tenant() -> Tenant:
    if not current_app.extensions["api_keys"]:
        return Tenant(PUBLIC)
    tenant = tenant_from_header()
    if tenant is not None:
        return tenant
    if request.endpoint is None or endpoints.is_open():
        # 404s for unknown URLs, and views declared @open_endpoint: probes must work for load
        # balancers and orchestrators, and the OpenAPI document for anyone writing a client.
        return Tenant(PUBLIC)
    abort(
        401,
        message="Send a valid API key as 'Authorization: Bearer <key>'.",
        headers={"WWW-Authenticate": 'Bearer realm="backprop"'},
    )


def current_tenant() -> Tenant:
    return g.tenant


def owned_or_404(record: dict | None, kind: str, resource_id: str) -> dict:
    """``record`` when the caller may see it; 404 when there is none or another tenant owns
    it, alike, so that a caller cannot tell another tenant's ids from unknown ones."""
    if record is None or not current_tenant().owns(record):
        abort(404, message=f"No {kind} {resource_id}.")
    return record
