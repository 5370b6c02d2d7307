"""Signed job notifications: signing and verifying, the SSRF guard, and the deliverer of the webhook outbox.

A job submitted with a `webhook_url` gets one `webhook_deliveries` row in the transaction that settles
it (succeeded or failed; see `workers.jobs`). `WebhookDeliverer` claims due rows, POSTs them and
records the outcome, retrying with exponential backoff; delivery is at least once, so receivers
deduplicate on `X-Abstractor-Delivery`.

Wire format (documented in README.md, "Webhooks"):

    POST <webhook_url>
    Content-Type: application/json
    X-Abstractor-Event: job.succeeded | job.failed
    X-Abstractor-Delivery: <event id, a UUID>
    X-Abstractor-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

    {"id": "<event id>", "type": "job.succeeded", "created_at": "...",
     "job": {"id", "status", "document_id", "schema", "model", "attempts", "error_code"}}

The body carries ids and status only, never extracted values or document text: the receiver fetches
the record with its API key. The signed timestamp lets a receiver refuse replays (`verify_signature`
allows 5 minutes of skew by default).

The package's parts: `service/webhooks/signing.py` (the signature), `service/webhooks/guard.py` (which
URLs may be called), `service/webhooks/deliverer.py` (the outbox's deliverer). Callers import from
here.
"""

from __future__ import annotations

from service.webhooks.deliverer import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    USER_AGENT,
    Outcome,
    WebhookDeliverer,
    attempt_delivery,
    backoff_s,
    encode_payload,
    post_notification,
)
from service.webhooks.guard import (
    IPAddress,
    Resolver,
    WebhookTarget,
    WebhookUrlRefused,
    check_webhook_url,
    embedded_ipv4,
    is_public_address,
)
from service.webhooks.signing import (
    DEFAULT_TOLERANCE_S,
    SIGNATURE_HEADER,
    sign,
    signature_header,
    verify_signature,
)

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "USER_AGENT",
    "IPAddress",
    "Outcome",
    "Resolver",
    "WebhookDeliverer",
    "WebhookTarget",
    "WebhookUrlRefused",
    "attempt_delivery",
    "backoff_s",
    "check_webhook_url",
    "embedded_ipv4",
    "encode_payload",
    "is_public_address",
    "post_notification",
    "sign",
    "signature_header",
    "verify_signature",
]
