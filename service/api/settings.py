"""The API's settings: `service.config.Settings` plus the fields the front door needs.

These fields belong in `service.config.Settings` (one settings class); until they are merged there this
subclass adds them, reading the same `ABSTRACTOR_` environment, and `api_settings` lifts a plain
`Settings` into it. Once merged, `ApiSettings` can become an alias of `Settings`.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator

from service.config import Settings
from workers.engines.model_files import QWEN25_CODER_05B

MIN_ADMIN_TOKEN_CHARS = 24
_PLACEHOLDERS = frozenset(
    {"", "admin", "changeme", "change-me", "change_me", "secret", "password", "token", "test", "xxx",
     "replace-me", "replaceme", "todo", "none", "null", "default"}
)  # fmt: skip


def is_placeholder_secret(value: str) -> bool:
    """True for empty, well-known or too-short secrets (a real one is random and long)."""
    stripped = value.strip()
    return (
        stripped.lower() in _PLACEHOLDERS
        or (stripped.startswith("<") and stripped.endswith(">"))
        or len(stripped) < MIN_ADMIN_TOKEN_CHARS
    )


class ApiSettings(Settings):
    """`ABSTRACTOR_ADMIN_TOKEN`, `ABSTRACTOR_BROKER_URL` on top of the shared settings."""

    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token of the /v1/admin endpoints; None disables them."
    )
    broker_url: str | None = Field(
        default=None,
        description="Redis URL of the Celery broker (readiness pings it); None in embedded mode.",
    )

    @model_validator(mode="after")
    def _refuse_placeholder_admin_token(self) -> Self:
        # Development may use a short token; anywhere else a guessable one would open every tenant.
        if (
            self.environment != "development"
            and self.admin_token is not None
            and is_placeholder_secret(self.admin_token.get_secret_value())
        ):
            raise ValueError(
                "ABSTRACTOR_ADMIN_TOKEN is empty, a placeholder or shorter than "
                f"{MIN_ADMIN_TOKEN_CHARS} characters; set a random token or unset it"
            )
        return self


def api_settings(settings: Settings) -> ApiSettings:
    """The given settings as `ApiSettings` (new fields from the environment, the rest unchanged)."""
    if isinstance(settings, ApiSettings):
        return settings
    # Init values win over the environment in pydantic-settings: only the new fields come from env.
    return ApiSettings(**settings.model_dump())


def model_ref(settings: Settings) -> tuple[str, str]:
    """(model, backend) that jobs are keyed by: the engine these settings build, without loading it."""
    model = settings.model_path.stem if settings.model_path is not None else QWEN25_CODER_05B.name
    return model, f"{settings.engine}+{settings.grammar_backend}"
