"""A tiny deterministic engine behind the real `Engine` protocol, for plumbing tests.

It never looks at meaning: every string field gets the excerpt's first word, everything else the
emptiest value its schema allows (null, [], 0, false, the first enum member). That is enough to push
a document through upload, queue, pipeline (validation, merging, grounding), store and API, with a
value that really comes from the document (so leak tests have something to find). It is NOT a
quality claim about anything; the real model is exercised by the tests marked `model`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any

from workers.engines.protocol import EngineInfo, GenerationRequest, GenerationResult

_WORD = re.compile(r"[A-Za-z0-9_]+")
_EXCERPT_HEADER = "Document excerpt"


class DeterministicEngine:
    """Same request in, same JSON out; schema-valid for the built-in schemas and simple user schemas."""

    def __init__(self, context_tokens: int = 4096) -> None:
        self.info = EngineInfo(engine="deterministic", model="first-word", model_sha256=None, grammar_backend="none")
        self._context_tokens = context_tokens
        self.calls = 0

    @property
    def context_tokens(self) -> int:
        """A context window as large as the real model's default."""
        return self._context_tokens

    def count_tokens(self, text: str) -> int:
        """About four characters a token, like real tokenizers on English."""
        return len(text) // 4 + 1

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order."""
        return [self._one(r) for r in requests]

    def _one(self, request: GenerationRequest) -> GenerationResult:
        self.calls += 1
        started = time.perf_counter()
        excerpt = request.messages[-1].content
        if excerpt.startswith(_EXCERPT_HEADER):
            excerpt = excerpt.split("\n\n", 1)[-1]
        match = _WORD.search(excerpt)
        word = match.group(0) if match else "none"
        schema = request.json_schema
        try:
            value = _fill(schema, schema, word)
        except ValueError as e:
            return GenerationResult("", "error", 0, 0, time.perf_counter() - started, error=str(e))
        text = json.dumps(value, separators=(",", ":"))
        return GenerationResult(
            text=text,
            finish_reason="stop",
            prompt_tokens=sum(self.count_tokens(m.content) for m in request.messages),
            completion_tokens=self.count_tokens(text),
            seconds=time.perf_counter() - started,
        )


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        return _resolve(target, root)
    return node


def _fill(node: dict[str, Any], root: dict[str, Any], word: str) -> Any:
    node = _resolve(node, root)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return node["enum"][0]
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        resolved = [_resolve(o, root) for o in options]
        plain = [o for o in resolved if _is_plain_string(o)]
        if plain:
            return _string(plain[0], word)
        nulls = [o for o in resolved if o.get("type") == "null"]
        return None if nulls else _fill(resolved[0], root, word)
    types = node.get("type", "object")
    types = types if isinstance(types, list) else [types]
    if "string" in types and _is_plain_string(node):
        return _string(node, word)
    if "null" in types:
        return None
    if "object" in types:
        props = node.get("properties", {})
        return {name: _fill(sub, root, word) for name, sub in props.items()}
    if "array" in types:
        return [_fill(node.get("items", {}), root, word) for _ in range(int(node.get("minItems", 0)))]
    if "integer" in types or "number" in types:
        return node.get("minimum", 0)
    if "boolean" in types:
        return False
    raise ValueError(f"cannot fill a value for types {types}")


def _is_plain_string(node: dict[str, Any]) -> bool:
    types = node.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    return is_string and not any(k in node for k in ("pattern", "format", "enum", "const"))


def _string(node: dict[str, Any], word: str) -> str:
    return word[: int(node.get("maxLength", len(word)))] or "x"
