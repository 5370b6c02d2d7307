"""Signing and verifying notifications: HMAC-SHA256 over `timestamp.body`, with a replay window."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from service.webhooks import sign, signature_header, verify_signature

SECRET = "whsec-unit-7d1c4e9a2b6f0e3c5a8d"
BODY = b'{"id":"e1","type":"job.succeeded","job":{"id":"j1","status":"succeeded"}}'
NOW = 1_780_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    """The documented recipe, recomputed independently: receivers in any language can follow it."""
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == expected
    assert signature_header(SECRET, BODY, NOW) == f"t={NOW},v1={expected}"


def test_a_fresh_signature_verifies() -> None:
    assert verify_signature(SECRET, signature_header(SECRET, BODY, NOW), BODY, now=NOW + 10)


def test_rotation_any_v1_may_match() -> None:
    header = f"t={NOW},v1={sign('old-secret-0123456789abcdef', NOW, BODY)},v1={sign(SECRET, NOW, BODY)}"
    assert verify_signature(SECRET, header, BODY, now=NOW)


@pytest.mark.parametrize(
    ("header", "body", "now"),
    [
        (signature_header(SECRET, BODY, NOW), BODY + b" ", NOW),
        (signature_header(SECRET, BODY, NOW), BODY.replace(b"succeeded", b"failed", 1), NOW),
        (signature_header("wrong-secret-aaaaaaaaaaaaaaaa", BODY, NOW), BODY, NOW),
        (signature_header(SECRET, BODY, NOW), BODY, NOW + 301),
        (signature_header(SECRET, BODY, NOW), BODY, NOW - 301),
        (f"t={NOW + 1},v1={sign(SECRET, NOW, BODY)}", BODY, NOW),
        (f"v1={sign(SECRET, NOW, BODY)}", BODY, NOW),
        (f"t={NOW}", BODY, NOW),
        ("", BODY, NOW),
        (None, BODY, NOW),
        ("garbage", BODY, NOW),
    ],
    ids=[
        "body-appended",
        "body-changed",
        "wrong-secret",
        "too-old",
        "from-the-future",
        "timestamp-swapped",
        "no-timestamp",
        "no-signature",
        "empty",
        "missing",
        "garbage",
    ],
)
def test_anything_else_is_refused(header: str | None, body: bytes, now: int) -> None:
    assert not verify_signature(SECRET, header, body, now=now)
