"""Webhooks: the tenant's signing secret, and the deliveries of a job's callbacks.

A job asks for webhooks in its ``callbacks`` (POST /v1/jobs); the webhook worker
(``python -m workers webhooks``) sends them. See store/webhooks.py for what is sent.
"""

from flask.views import MethodView
from flask_smorest import abort

from store import webhooks

from .auth import current_tenant
from .endpoints import raw_body
from .errors import Blueprint
from .extensions import redis_conn
from .jobs import get_or_404
from .schemas import DeliveryListSchema, WebhookSecretInfoSchema, WebhookSecretSchema

blp = Blueprint("webhooks", __name__, url_prefix="/v1", description="Webhooks")


# It takes no body, so a bare `curl -X POST` must not be refused for its content type.
@raw_body
@blp.route("/webhooks/secret")
class WebhookSecret(MethodView):
    @blp.response(201, WebhookSecretSchema)
    def post(self):
        """Create your webhook signing secret, or replace it: the old one stops signing at once.

        The secret is in this answer only. Each webhook carries
        ``X-Signature: t=<unix time>,v1=<hex>``: HMAC-SHA256 of ``<t>.<body>`` under it.
        """
        return webhooks.rotate_secret(redis_conn(), current_tenant().name)

    @blp.response(200, WebhookSecretInfoSchema)
    @blp.alt_response(404, description="No secret yet: POST creates one.")
    def get(self):
        """When your secret was made (never the secret itself)."""
        created_at = webhooks.secret_created_at(redis_conn(), current_tenant().name)
        if created_at is None:
            abort(404, message="No webhook secret: POST /v1/webhooks/secret creates one.")
        return {"created_at": created_at}


@blp.route("/jobs/<rid:job_id>/deliveries")
class JobDeliveries(MethodView):
    @blp.response(200, DeliveryListSchema)
    def get(self, job_id):
        """The job's webhook deliveries, oldest first, each with its attempts' status codes."""
        get_or_404(job_id)
        return {"deliveries": webhooks.list_deliveries(redis_conn(), job_id)}
