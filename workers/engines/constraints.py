"""Grammar backends as a setting: one JSON Schema in, one logits processor out, compact whitespace."""

from __future__ import annotations

import copy
import json
from typing import Any

from workers.engines.grammar import GRAMMAR_BACKENDS as COMPILE_BACKENDS
from workers.engines.grammar import OUTLINES_CORE_WHITESPACE, llguidance_grammar
from workers.errors import ConfigError

GRAMMAR_BACKENDS: tuple[str, ...] = (*COMPILE_BACKENDS, "none")
"""The compile backends plus "none" (unconstrained decoding, for benchmarks only)."""


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
    """A fresh, stateful logits processor for one generation constrained to `schema`.

    The grammar is built exactly as `schema-check` and schema registration build it (compact
    whitespace, fixed separators, no lenient fallbacks), so what was accepted is what is enforced.
    """
    if backend_name == "llguidance":
        from outlines.backends.llguidance import LLGuidanceLogitsProcessor

        return LLGuidanceLogitsProcessor(llguidance_grammar(schema), backend.llg_tokenizer, backend.tensor_library_name)
    if backend_name == "outlines_core":
        return backend.get_json_schema_logits_processor(json.dumps(schema), OUTLINES_CORE_WHITESPACE)
    return backend.get_json_schema_logits_processor(json.dumps(schema))
