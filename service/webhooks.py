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

SSRF: a URL is refused when any address its host resolves to is loopback, private, link-local
(cloud metadata), shared (CGNAT), multicast, reserved or unspecified, unless the host or the address
is in `ABSTRACTOR_WEBHOOK_ALLOW_HOSTS`. The check runs at submission (HTTP 422 `webhook_url_refused`)
and again before every attempt; the request then goes to the address just checked (the Host header
and TLS SNI keep the name), so a DNS answer that changes in between (rebinding) cannot redirect it.
Redirects are never followed and proxies from the environment are ignored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service.background import PollingThread
from service.config import Settings
from service.errors import ServiceError
from service.store import repositories as repo
from service.store.models import utcnow

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Abstractor-Signature"
EVENT_HEADER = "X-Abstractor-Event"
DELIVERY_HEADER = "X-Abstractor-Delivery"
DEFAULT_TOLERANCE_S = 300
USER_AGENT = "abstractor-webhooks/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""(host, port) -> IP address strings; `socket.getaddrinfo` by default, replaceable in tests."""


class WebhookUrlRefused(ServiceError):
    """The URL is not one we may call: bad scheme, credentials in it, unresolvable, or a non-public address."""

    code = "webhook_url_refused"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, details={"reason": reason})
        self.reason = reason


# --- signing -----------------------------------------------------------------------------------------


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `"<timestamp>." + body` under `secret`."""
    return hmac.new(_key(secret), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str | bytes, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Abstractor-Signature` value: `t=<unix>,v1=<hex>`."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={sign(secret, t, body)}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """For receivers: True when `header` signs exactly `body` under `secret` within `tolerance_s` of now.

    Pass the raw request body (bytes as received, before any JSON parsing). Several `v1=` entries are
    accepted (any may match), so a sender can sign with an old and a new secret while rotating.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)


# --- the SSRF guard ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookTarget:
    """A checked URL: where to connect (`address`) and what name to present (`host`, Host header, SNI)."""

    url: httpx.URL
    host: str
    port: int
    address: IPAddress


def _default_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse_allow(allow: Sequence[str]) -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names: set[str] = set()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in allow:
        entry = entry.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry)
    return names, networks


def is_public_address(address: IPAddress) -> bool:
    """Whether a webhook may go to this address without allow-listing: globally routable unicast only."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public_address(address.ipv4_mapped)
    # is_global is False for loopback, RFC 1918, link-local (169.254.169.254 metadata), CGNAT 100.64/10
    # (Alibaba's 100.100.100.200), ULA fc00::/7 (AWS's fd00:ec2::254), unspecified and reserved ranges.
    return address.is_global and not address.is_multicast


def check_webhook_url(url: str, allow: Sequence[str] = (), *, resolve: Resolver | None = None) -> WebhookTarget:
    """The target to POST to, or `WebhookUrlRefused`: every resolved address must be public or allow-listed."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as e:
        raise WebhookUrlRefused("the webhook URL is not a valid URL", reason="invalid") from e
    if parsed.scheme not in ("http", "https"):
        raise WebhookUrlRefused("a webhook URL must be http or https", reason="scheme")
    if parsed.userinfo:
        raise WebhookUrlRefused("a webhook URL must not carry credentials", reason="credentials")
    host = parsed.host.lower().rstrip(".")
    if not host:
        raise WebhookUrlRefused("the webhook URL has no host", reason="invalid")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    names, networks = _parse_allow(allow)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        raw = [str(literal)]
    else:
        try:
            raw = (resolve or _default_resolver)(host, port)
        except (OSError, UnicodeError) as e:
            raise WebhookUrlRefused("the webhook host does not resolve", reason="unresolvable") from e
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in raw]
    if not addresses:
        raise WebhookUrlRefused("the webhook host does not resolve", reason="unresolvable")
    if host not in names:
        for address in addresses:
            if not is_public_address(address) and not any(address in n for n in networks):
                raise WebhookUrlRefused(
                    "the webhook URL resolves to a loopback, private, link-local or otherwise non-public address",
                    reason="non_public_address",
                )
    return WebhookTarget(url=parsed, host=host, port=port, address=addresses[0])


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


# --- delivery ----------------------------------------------------------------------------------------


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
