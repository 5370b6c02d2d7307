"""The admin token: refused when guessable outside development; absent means admin endpoints are off."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.config import Settings, is_placeholder_secret
from service.jobs.identity import model_ref


@pytest.mark.parametrize("token", ["", "changeme", "<admin-token>", "short-but-not-listed"], ids=repr)
def test_placeholder_admin_tokens_are_refused_outside_development(token: str) -> None:
    assert is_placeholder_secret(token)
    with pytest.raises(ValidationError, match="ABSTRACTOR_ADMIN_TOKEN"):
        Settings(_env_file=None, environment="production", admin_token=token)  # type: ignore[call-arg]


def test_development_accepts_a_short_token_and_production_a_random_one() -> None:
    assert Settings(_env_file=None, admin_token="dev").admin_token is not None  # type: ignore[call-arg]
    strong = "k7Qv2mX9pL4sR8tY1wZ6nB3cF5hJ0dGe"
    assert not is_placeholder_secret(strong)
    assert Settings(_env_file=None, environment="production", admin_token=strong).admin_token is not None  # type: ignore[call-arg]
    assert Settings(_env_file=None, environment="production").admin_token is None  # type: ignore[call-arg]


def test_api_fields_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABSTRACTOR_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("ABSTRACTOR_ENVIRONMENT", "production")
    monkeypatch.setenv("ABSTRACTOR_ADMIN_TOKEN", "changeme")
    with pytest.raises(ValidationError, match="ABSTRACTOR_ADMIN_TOKEN"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.delenv("ABSTRACTOR_ADMIN_TOKEN")
    settings = Settings(_env_file=None, max_document_bytes=123)  # type: ignore[call-arg]
    assert settings.max_document_bytes == 123 and settings.broker_url == "redis://127.0.0.1:6379/0"
    assert model_ref(settings) == ("qwen2.5-coder-0.5b-instruct-q4_k_m", "llamacpp+llguidance")
