"""Grammar backends as a setting: one JSON Schema in, one logits processor out, compact whitespace."""

from __future__ import annotations

import copy
import json
from typing import Any, Literal

from workers.errors import ConfigError

GrammarBackend = Literal["llguidance", "outlines_core", "xgrammar", "none"]
GRAMMAR_BACKENDS: tuple[str, ...] = ("llguidance", "outlines_core", "xgrammar", "none")

# Free whitespace lets a small model pad JSON with newlines forever; vLLM's `disable_any_whitespace` does
# the same job. llguidance reads this from the schema itself; outlines-core takes a whitespace pattern.
_COMPACT_LLGUIDANCE = {"whitespace_flexible": False}
OUTLINES_CORE_WHITESPACE = r"[ ]?"


def generation_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema the grammar enforces: every property required, so "not stated" is an explicit null.

    Optional keys would let the model skip fields silently; requiring them forces a decision per field
    while Pydantic defaults still accept the null/empty value.
    """
    out = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict) and node.get("type") == "object":
                node["required"] = list(props)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(out)
    return out


def schema_for_backend(schema: dict[str, Any], backend: str) -> str:
    """JSON text of the schema with the backend's compact-whitespace switch applied."""
    if backend == "llguidance":
        tuned = dict(schema)
        tuned["x-guidance"] = {**_COMPACT_LLGUIDANCE, **tuned.get("x-guidance", {})}
        return json.dumps(tuned)
    return json.dumps(schema)


def make_outlines_backend(backend: str, outlines_model: Any) -> Any:
    """Build (once per engine) the outlines backend object that turns schemas into logits processors."""
    try:
        if backend == "llguidance":
            from outlines.backends import LLGuidanceBackend

            return LLGuidanceBackend(outlines_model)
        if backend == "outlines_core":
            from outlines.backends import OutlinesCoreBackend

            return OutlinesCoreBackend(outlines_model)
        if backend == "xgrammar":
            from outlines.backends import XGrammarBackend

            return XGrammarBackend(outlines_model)
    except ImportError as e:
        raise ConfigError(f"grammar backend {backend!r} is not installed: {e}", code="backend_missing") from e
    raise ConfigError(f"unknown grammar backend {backend!r}; choose one of {GRAMMAR_BACKENDS}")


def logits_processor_for(backend_name: str, backend: Any, schema: dict[str, Any]) -> Any:
    """A fresh, stateful logits processor for one generation constrained to `schema`."""
    text = schema_for_backend(schema, backend_name)
    if backend_name == "outlines_core":
        return backend.get_json_schema_logits_processor(text, OUTLINES_CORE_WHITESPACE)
    return backend.get_json_schema_logits_processor(text)
