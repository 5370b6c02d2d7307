"""The deliverer of the webhook outbox: claim due notifications, check the URL again, sign, POST, record.

Delivery is at least once (receivers deduplicate on `X-Abstractor-Delivery`), retried with exponential
backoff and jitter up to `ABSTRACTOR_WEBHOOK_MAX_ATTEMPTS`; the URL passes `service.webhooks.guard`
before every attempt and the request goes to the address just checked.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service.background import PollingThread
from service.config import Settings
from service.store import repositories as repo
from service.store.models import utcnow
from service.webhooks.guard import Resolver, WebhookTarget, WebhookUrlRefused, check_webhook_url
from service.webhooks.signing import SIGNATURE_HEADER, signature_header

log = logging.getLogger(__name__)

EVENT_HEADER = "X-Abstractor-Event"
DELIVERY_HEADER = "X-Abstractor-Delivery"
USER_AGENT = "abstractor-webhooks/1"


def post_notification(
    client: httpx.Client, target: WebhookTarget, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    """POST to the checked address itself, presenting the original name (Host header, TLS SNI and cert check)."""
    pinned = target.url.copy_with(host=str(target.address))
    default_port = 443 if target.url.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host and target.port != default_port:  # an IPv6 literal needs its brackets
        host_header = f"[{target.host}]:{target.port}"
    elif ":" in target.host:
        host_header = f"[{target.host}]"
    extensions: dict[str, Any] = {}
    if target.url.scheme == "https":
        extensions["sni_hostname"] = target.host
    return client.post(pinned, content=body, headers={**headers, "Host": host_header}, extensions=extensions)


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: delivered, retry later, or give up."""

    delivered: bool
    retry: bool
    status_code: int | None = None
    error: str | None = None


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent (compact, key order kept)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def attempt_delivery(
    client: httpx.Client,
    url: str,
    payload: dict[str, Any],
    *,
    secret: str | bytes,
    allow: Sequence[str],
    resolve: Resolver | None = None,
) -> Outcome:
    """Check the URL again (DNS may have changed), sign, POST once, and classify the answer."""
    try:
        target = check_webhook_url(url, allow, resolve=resolve)
    except WebhookUrlRefused as e:
        return Outcome(delivered=False, retry=False, error=f"{e.code}:{e.reason}")
    body = encode_payload(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: str(payload.get("type", "")),
        DELIVERY_HEADER: str(payload.get("id", "")),
        SIGNATURE_HEADER: signature_header(secret, body),
    }
    try:
        response = post_notification(client, target, body, headers)
    except httpx.TimeoutException:
        return Outcome(delivered=False, retry=True, error="timeout")
    except httpx.HTTPError as e:
        return Outcome(delivered=False, retry=True, error=f"transport:{type(e).__name__}")
    code = response.status_code
    if 200 <= code < 300:
        return Outcome(delivered=True, retry=False, status_code=code)
    if code == 410:  # the receiver says the endpoint is gone for good
        return Outcome(delivered=False, retry=False, status_code=code, error="gone")
    # 3xx included: redirects are not followed (they could point anywhere), and the receiver may fix its URL.
    return Outcome(delivered=False, retry=True, status_code=code, error=f"http_{code}")


def backoff_s(attempt: int, base_s: float, cap_s: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): exponential, capped, with ±20% jitter."""
    delay: float = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    return delay * random.uniform(0.8, 1.2)  # jitter, not a secret


class WebhookDeliverer(PollingThread):
    """Claims due notifications from the webhook outbox and delivers them; runs as a thread or step by step.

    Several deliverers may run at once (Postgres SKIP LOCKED claims with a lease): run one beside each
    relay. It has the embedded worker's start/stop/wake/alive shape, so an app can own it as background.
    """

    thread_name = "abstractor-webhooks"

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        secret: str | bytes,
        allow_hosts: Sequence[str] = (),
        timeout_s: float = 10.0,
        max_attempts: int = 8,
        poll_s: float = 1.0,
        backoff_base_s: float = 5.0,
        backoff_cap_s: float = 3600.0,
        batch_size: int = 10,
        resolve: Resolver | None = None,
    ) -> None:
        self._factory = session_factory
        self._secret = secret
        self._allow = tuple(allow_hosts)
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._base_s = backoff_base_s
        self._cap_s = backoff_cap_s
        self._batch = batch_size
        self._resolve = resolve
        super().__init__(poll_s=poll_s)

    @classmethod
    def from_settings(
        cls, session_factory: sessionmaker[Session], settings: Settings, **kwargs: Any
    ) -> WebhookDeliverer | None:
        """A deliverer configured from Settings; None when no webhook secret is set (webhooks are off)."""
        if settings.webhook_secret is None:
            return None
        kwargs.setdefault("backoff_base_s", settings.webhook_backoff_s)
        return cls(
            session_factory,
            secret=settings.webhook_secret.get_secret_value(),
            allow_hosts=settings.webhook_allow_hosts,
            timeout_s=settings.webhook_timeout_s,
            max_attempts=settings.webhook_max_attempts,
            **kwargs,
        )

    def _client(self) -> httpx.Client:
        # trust_env=False: an HTTP(S)_PROXY from the environment would bypass the address pinning.
        return httpx.Client(follow_redirects=False, timeout=self._timeout_s, trust_env=False)

    def run_once(self) -> int:
        """Claim and attempt every due notification (up to one batch); returns how many were attempted."""
        lease = dt.timedelta(seconds=(self._timeout_s + 5.0) * self._batch)
        with self._factory.begin() as session:
            claimed = repo.claim_webhook_deliveries(session, limit=self._batch, lease=lease)
            work = [(d.id, d.job_id, d.url, dict(d.payload), d.attempts) for d in claimed]
        if not work:
            return 0
        with self._client() as client:
            for delivery_id, job_id, url, payload, attempts in work:
                outcome = attempt_delivery(
                    client, url, payload, secret=self._secret, allow=self._allow, resolve=self._resolve
                )
                retry_at = None
                if outcome.retry and attempts < self._max_attempts:
                    retry_at = utcnow() + dt.timedelta(seconds=backoff_s(attempts, self._base_s, self._cap_s))
                with self._factory.begin() as session:
                    repo.record_webhook_attempt(
                        session,
                        delivery_id,
                        delivered=outcome.delivered,
                        status_code=outcome.status_code,
                        error=outcome.error,
                        retry_at=retry_at,
                    )
                state = "delivered" if outcome.delivered else ("retrying" if retry_at else "given_up")
                log.log(
                    logging.INFO if outcome.delivered else logging.WARNING,
                    "webhook attempt",
                    extra={
                        "delivery_id": delivery_id,
                        "job_id": str(job_id),
                        "attempt": attempts,
                        "state": state,
                        "status_code": outcome.status_code,
                        "error_code": outcome.error,
                    },
                )
        return len(work)

    def drain(self, timeout_s: float = 30.0) -> None:
        """Deliver until nothing is due (for CLIs and tests); retries scheduled later are left."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.run_once():
            pass
