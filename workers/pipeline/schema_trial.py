"""A tenant's schema tried the way a job would use it, inside admission's sandboxed child.

Run as `python -m workers.pipeline.schema_trial` by `service/jobs/admission.py` through the house's
sandbox (`workers/sandbox.py`), after the cheap walk (`schemas/bounds.py`) has passed it: nothing here
runs in the API process. `trial` checks the schema against its draft's meta-schema, compiles what the
grammar will enforce with the configured backend (`generation_schema`, as every job does) and renders
the prompt prefix every chunk shares, held to `max_prompt_chars`. A recursion too deep for the
validator or the renderer, a grammar the backend refuses, a prompt too long: each is reported with its
code in the sandbox's result protocol; running out of time or memory is the sandbox's to report.

Nothing this module loads is imported by anything else of ours, so running it as `__main__` never
loads a second copy of a module.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    # rfc3987-syntax builds a Lark parser when imported (2-3 s a child), for the `iri` formats that only
    # an instance's validation checks; a trial validates no instance, and jsonschema imports it optionally.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from schemas.bounds import RECURSIVE, TOO_DEEP, TOO_LARGE, UNRUNNABLE
from schemas.errors import InvalidSchemaError
from schemas.user_schema import load_user_schema
from workers.engines.constraints import generation_schema
from workers.engines.grammar import UnsupportedSchemaError, build_grammar, index_too_large
from workers.engines.model_files import gguf_vocab_size
from workers.errors import ConfigError
from workers.pipeline.prompting import build_messages
from workers.sandbox import child_main, error_result

# The backends' native libraries are ours to load, before the limits: the memory limit is the schema's.
for _backend in ("llguidance", "outlines_core"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_backend)


def trial(payload: dict[str, Any]) -> dict[str, Any]:
    """The child's handler: `{"ok": {"prompt_chars": n}}`, or the first reason the schema cannot run.

    `payload`: `schema`, `name`, `backend` and `max_prompt_chars`; with `index_budget_bytes` and
    `vocab_size` (or `model_path`, a GGUF whose vocabulary size is read here), an outlines-core grammar
    whose index over that vocabulary would exceed the budget is refused as the engine would refuse it
    (`grammar_too_large`); a model file this process cannot read leaves the index unsized
    (`{"ok": {..., "index_unsized": code}}`) for the job to refuse. An error's message may quote the
    schema (a validator's or a backend's reason): the caller keeps it on its exception, never in a
    response or a log line; its details hold our words only.
    """
    # Third parties log and warn with fragments of their input; nothing of it may leave this process.
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    schema, name, backend = payload["schema"], payload["name"], payload["backend"]
    try:
        user = load_user_schema(schema, name=name)
    except InvalidSchemaError as e:
        return error_result("invalid_schema", str(e))
    except RecursionError:
        return error_result(TOO_DEEP, "the schema nests too deeply to be validated", reason="validator_recursion")
    own = user.schema  # admission has checked its root: an object with properties
    # Read before the grammar is built, so the vocabulary's memory is released before the schema's is spent.
    vocab_size, unsized = _vocab_size(payload)
    try:
        # What the pipeline will ask the grammar to enforce: every property required (null = not stated).
        compiled = build_grammar(generation_schema(own), backend)
    except UnsupportedSchemaError as e:
        return error_result("unsupported_schema", e.message, grammar_backend=backend)
    except ConfigError as e:
        return error_result("config_error", e.message, reason=e.code)
    except RecursionError:
        return error_result(TOO_DEEP, "the grammar backend cannot nest this deep", reason="grammar_recursion")
    budget = payload.get("index_budget_bytes")
    if budget is not None and vocab_size is not None:
        size = compiled.model_index_bytes(vocab_size)
        refusal = None if size is None else index_too_large(size, budget)
        if refusal is not None:
            return error_result(refusal.code, refusal.message, limit="grammar_index_max_gib", max=budget / 2**30)
    try:
        prompt_chars = prompt_prefix_chars(own, name)
    except RecursionError:
        # The renderer follows `$ref`s by name; one it can only follow forever cannot become a prompt.
        return error_result(RECURSIVE, "the prompt renderer cannot express this schema", reason="prompt_recursion")
    except MemoryError:
        raise  # the sandbox's to report
    except Exception:  # noqa: BLE001 - a schema the renderer trips on (a boolean subschema) would fail every job
        return error_result(UNRUNNABLE, "the prompt renderer cannot render this schema", reason="prompt_failed")
    limit: int = payload["max_prompt_chars"]
    if prompt_chars > limit:
        message = f"the schema's prompt is longer than {limit} characters"
        return error_result(TOO_LARGE, message, limit="schema_max_prompt_chars", max=limit)
    return {"ok": {"prompt_chars": prompt_chars, **({"index_unsized": unsized} if unsized else {})}}


def _vocab_size(payload: dict[str, Any]) -> tuple[int | None, str | None]:
    """The model's vocabulary size (given, or read from `model_path`), or why it could not be read."""
    if payload.get("vocab_size") is not None or payload.get("model_path") is None:
        return payload.get("vocab_size"), None
    try:
        return gguf_vocab_size(Path(payload["model_path"])), None
    except ConfigError as e:
        # An API host without the workers' model volume: the job, on a worker, refuses what does not fit.
        return None, e.code


def prompt_prefix_chars(schema: dict[str, Any], name: str) -> int:
    """Characters of the prompt every chunk starts with, as `workers/pipeline/run.py` renders it."""
    title = str(schema.get("title") or name)
    prefix = build_messages(title, schema, "", 1, 1, ())[:-1]
    return sum(len(message.content) for message in prefix)


if __name__ == "__main__":
    child_main(trial)
