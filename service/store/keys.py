"""API keys: high-entropy random secrets, stored only as a lookup prefix and a sha256.

A slow password hash (bcrypt, argon2) buys nothing here: the key carries 256 random bits, so a
stolen table cannot be brute-forced, and every request can afford one sha256.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_SCHEME = "abk"
PREFIX_HEX_CHARS = 12
SECRET_BYTES = 32


@dataclass(frozen=True)
class NewApiKey:
    """A freshly generated key: `plaintext` goes to the caller once and is never stored."""

    plaintext: str
    prefix: str
    key_hash: str


def hash_api_key(plaintext: str) -> str:
    """Hex sha256 of the whole key as presented."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def generate_api_key() -> NewApiKey:
    """`abk_<12 hex prefix>_<43 url-safe chars>`; the prefix finds the row, the hash proves the key."""
    prefix = secrets.token_hex(PREFIX_HEX_CHARS // 2)
    plaintext = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return NewApiKey(plaintext=plaintext, prefix=prefix, key_hash=hash_api_key(plaintext))


def key_prefix(plaintext: str) -> str | None:
    """The lookup prefix of a presented key, or None when it is not shaped like one of ours."""
    scheme, _, rest = plaintext.partition("_")
    prefix, sep, secret = rest.partition("_")
    if scheme != KEY_SCHEME or not sep or not secret or len(prefix) != PREFIX_HEX_CHARS:
        return None
    if any(c not in "0123456789abcdef" for c in prefix):
        return None
    return prefix


def key_matches(plaintext: str, key_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(hash_api_key(plaintext), key_hash)
