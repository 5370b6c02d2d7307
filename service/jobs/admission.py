"""Whether a tenant's JSON Schema may be registered: the one decision, in two steps, bounded by settings.

1. The cheap walk, in this process (`schemas/bounds.check_shape`, no third-party code): its size as
   JSON, its nesting, its strings, enums, properties and counts (`minItems`, a pattern's `{n,m}`), its
   `$ref` expansion counted without building it, its depth and `$ref` cycles.
2. The trial, in a sandboxed child (`workers/pipeline/schema_trial.py`, run by the house's sandbox,
   `workers/sandbox.py`) with a memory limit (RLIMIT_AS) and a wall-clock limit: meta-validation, the
   grammar compiled with the configured backend, the prompt prefix rendered and measured. The API
   process never loads the grammar code (the child is named by its module, not imported), and a child
   killed for time or memory is a refusal, not a 500 and not a hang.

Every refusal is a `SchemaRefused` (HTTP 422) with its code; its details name our limit (the setting,
`schema_max_bytes`, and its value) or a reason of ours, never anything of the schema:

- `invalid_schema`: not JSON, not a valid JSON Schema, or its root is not an object with properties;
- `unsupported_schema`: the grammar backend cannot compile it;
- `schema_too_large`: over a size bound (bytes, subschemas, properties, a string, an enum, the prompt)
  or the trial's memory;
- `schema_too_deep`: nested deeper than the bound; `schema_recursive`: a `$ref` cycle, or a schema the
  prompt renderer can only follow forever;
- `schema_unrunnable`: a count no generation could honour in bounded time, or a trial that ran out of
  time or crashed;
- `grammar_too_large` (grammar_backend=outlines_core): the grammar's index over the model's vocabulary would
  not fit `grammar_index_max_gib`, as the engine would find for every job. The embedded model's vocabulary
  size is written down; another GGUF's is read from its metadata by the trial, where this host can read it.

A job whose schema was registered before these bounds existed meets the cheap walk again in
`service/jobs/resolve.job_schema`, with the same settings (`bounds_from`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from schemas.bounds import TOO_LARGE, UNRUNNABLE, SchemaBounds, SchemaShapeError, check_shape
from service.config import Settings
from service.errors import ServiceError
from workers.errors import ConfigError, TransientError

if TYPE_CHECKING:
    from workers.sandbox import ChildFailed, ChildReported

log = logging.getLogger(__name__)

TRIAL_MODULE: Final = "workers.pipeline.schema_trial"
"""The child's module, run as `python -m`: the API process never imports it."""
ROOT_MESSAGE: Final = "an extraction schema's root must be {'type': 'object', 'properties': {...}}"
_TRIAL_OUTPUT_BYTES: Final = 256 * 1024  # the child writes a small JSON report, nothing more
GRAMMAR_TOO_LARGE: Final = "grammar_too_large"
"""outlines_core only: the grammar's index over the model's vocabulary would not fit the engine's budget."""
_TRIAL_CODES: Final = frozenset(
    {
        "invalid_schema",
        "unsupported_schema",
        "schema_too_large",
        "schema_too_deep",
        "schema_recursive",
        UNRUNNABLE,
        GRAMMAR_TOO_LARGE,
    }
)
_PUBLIC_DETAILS: Final = ("limit", "max", "reason", "grammar_backend")
# Children trying schemas at once, each up to its memory limit: a flood of registrations waits its turn.
_TRIAL_SLOTS = threading.BoundedSemaphore(max(2, min(8, (os.cpu_count() or 2) // 2)))


class SchemaRefused(ServiceError):
    """A schema that may not be registered (HTTP 422); `code` says why (see the module's list)."""

    code = "invalid_schema"


@dataclass(frozen=True)
class AdmissionPolicy:
    """How a schema is admitted: the grammar backend it must compile with, the bounds, the trial's limits."""

    backend: str = "llguidance"
    bounds: SchemaBounds = field(default_factory=SchemaBounds)
    timeout_s: float = 10.0
    memory_mb: int = 1024
    index_budget_bytes: int | None = None
    """With `vocab_size` or `model_path`: the engine's outlines-core budget, so admission refuses what jobs would."""
    vocab_size: int | None = None
    model_path: str | None = None
    """With `index_budget_bytes` and no `vocab_size`: a GGUF whose vocabulary size the trial reads."""


def bounds_from(settings: Settings) -> SchemaBounds:
    """The schema bounds from the one Settings class (`ABSTRACTOR_SCHEMA_MAX_*`)."""
    return SchemaBounds(
        max_bytes=settings.schema_max_bytes,
        max_nodes=settings.schema_max_nodes,
        max_depth=settings.schema_max_depth,
        max_properties=settings.schema_max_properties,
        max_string_chars=settings.schema_max_string_chars,
        max_enum=settings.schema_max_enum,
        max_repeat=settings.schema_max_repeat,
        max_prompt_chars=settings.schema_max_prompt_chars,
    )


def policy_from(settings: Settings) -> AdmissionPolicy:
    """The admission policy from the one Settings class."""
    vocab_size: int | None = None
    model_path: str | None = None
    if settings.grammar_backend == "outlines_core" and settings.engine == "llamacpp":
        if settings.model_path is None:
            # The embedded model's vocabulary size is written down: no file to read.
            from workers.engines.model_files import QWEN25_CODER_05B

            vocab_size = QWEN25_CODER_05B.vocab_size
        else:
            # Another GGUF: the trial reads its vocabulary size from the file's metadata, where this host
            # can read the file; where it cannot, a job refuses an index too large, in seconds.
            model_path = str(settings.model_path)
    return AdmissionPolicy(
        backend=settings.grammar_backend,
        bounds=bounds_from(settings),
        timeout_s=settings.schema_admission_timeout_s,
        memory_mb=settings.schema_admission_memory_mb,
        index_budget_bytes=int(settings.grammar_index_max_gib * 2**30) if vocab_size or model_path else None,
        vocab_size=vocab_size,
        model_path=model_path,
    )


def admit_schema(json_schema: Any, name: str, policy: AdmissionPolicy | None = None) -> None:
    """Raise `SchemaRefused` (with its code) unless the schema may be registered and used by jobs.

    A `ConfigError` means the deployment cannot try schemas (the backend is not installed), a
    `TransientError` that every trial slot stayed busy for the trial's whole time limit.
    """
    policy = policy or AdmissionPolicy()
    try:
        check_shape(json_schema, policy.bounds)  # before any validator or compiler expands it
    except SchemaShapeError as e:
        raise SchemaRefused(str(e), code=e.code, details=e.details) from None
    if (
        not isinstance(json_schema, dict)
        or json_schema.get("type") != "object"
        or not isinstance(json_schema.get("properties"), dict)
    ):
        raise SchemaRefused(ROOT_MESSAGE, details={"reason": "root_not_object"})
    _trial(json_schema, name, policy)


def _trial(json_schema: dict[str, Any], name: str, policy: AdmissionPolicy) -> None:
    """Meta-validate, compile and render the schema in a bounded child; refuse with the child's reason."""
    # Imported here: importing the API loads no sandbox, and only this function ever starts a trial.
    from workers.sandbox import ChildFailed, ChildLimits, ChildReported, run_in_child

    limits = ChildLimits(timeout_s=policy.timeout_s, memory_mb=policy.memory_mb, output_bytes=_TRIAL_OUTPUT_BYTES)
    payload = {
        "schema": json_schema,
        "name": name,
        "backend": policy.backend,
        "max_prompt_chars": policy.bounds.max_prompt_chars,
        "index_budget_bytes": policy.index_budget_bytes,
        "vocab_size": policy.vocab_size,
        "model_path": policy.model_path,
    }
    if not _TRIAL_SLOTS.acquire(timeout=policy.timeout_s):
        raise TransientError("every schema trial slot is busy; retry", code="admission_busy")
    try:
        # mkdtemp makes the folder 0700: the schema's report is readable by us alone.
        with tempfile.TemporaryDirectory(prefix="abstractor-schema-") as tmp:
            run = run_in_child(TRIAL_MODULE, payload, limits=limits, workdir=Path(tmp))
    except ChildReported as e:
        raise _reported(e) from None
    except ChildFailed as e:
        raise _failed(e, policy) from None
    finally:
        _TRIAL_SLOTS.release()
    log.info(
        "schema admitted",
        extra={
            "prompt_chars": run.payload.get("prompt_chars"),
            "trial_s": round(run.wall_s, 3),
            # outlines_core with another GGUF that this host cannot read: its jobs size the index instead.
            **({"index_unsized": run.payload["index_unsized"]} if run.payload.get("index_unsized") else {}),
        },
    )


def _reported(reported: ChildReported) -> Exception:
    """The trial's own verdict, as a refusal (or, for a backend that is not installed, a `ConfigError`)."""
    details: dict[str, Any] = {key: reported.details[key] for key in _PUBLIC_DETAILS if key in reported.details}
    if reported.code == ConfigError.code:
        code = str(details.get("reason") or ConfigError.code)
        return ConfigError(reported.message or "the grammar backend is not usable", code=code)
    if reported.code not in _TRIAL_CODES:
        log.warning("schema trial reported an unknown code", extra={"reason": "unknown_code"})
        return SchemaRefused("the schema could not be tried", code=UNRUNNABLE, details={"reason": "trial_failed"})
    return SchemaRefused(reported.message or "the schema cannot be used", code=reported.code, details=details)


def _failed(failed: ChildFailed, policy: AdmissionPolicy) -> SchemaRefused:
    """A trial the sandbox had to end: time and memory are the schema's doing; a crash is logged for us."""
    if failed.reason in ("timeout", "cpu"):
        message = f"trying the schema took longer than {policy.timeout_s:g} s"
        details: dict[str, Any] = {"limit": "schema_admission_timeout_s", "max": policy.timeout_s}
        return SchemaRefused(message, code=UNRUNNABLE, details=details)
    if failed.reason == "memory":
        message = f"trying the schema needed more than {policy.memory_mb} MB"
        details = {"limit": "schema_admission_memory_mb", "max": policy.memory_mb}
        return SchemaRefused(message, code=TOO_LARGE, details=details)
    # Ids and numbers only: a crash's exit code or signal, never what the third party printed.
    facts = {k: v for k, v in failed.details.items() if k in ("signal", "exit_code", "reason")}
    log.warning("schema trial crashed", extra={"trial": failed.reason, **{f"trial_{k}": v for k, v in facts.items()}})
    return SchemaRefused("the schema's trial crashed", code=UNRUNNABLE, details={"reason": "trial_crashed"})
