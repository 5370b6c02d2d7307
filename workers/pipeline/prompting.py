"""Prompts: instructions and the schema first, the document last, so every chunk shares one cached prefix."""

from __future__ import annotations

import json
from typing import Any

from workers.engines.protocol import Message

_RULES = """You are a careful abstractor. Read the document excerpt and fill in the JSON record.
Rules:
- Copy names and phrases exactly as they are written in the document.
- If the excerpt does not state a field, use null (or [] for lists). Never guess or invent values.
- Dates are written as YYYY-MM-DD and must be stated in the excerpt.
- Answer with the JSON object only."""


def _field_lines(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """One line per field with its description, so a small model sees what each key means."""
    defs = schema.get("$defs", {})
    lines: list[str] = []
    for name, prop in schema.get("properties", {}).items():
        node = prop
        ref = node.get("$ref") or next((o.get("$ref") for o in node.get("anyOf", []) if "$ref" in o), None)
        items = node.get("items", {})
        item_ref = items.get("$ref") if isinstance(items, dict) else None
        desc = node.get("description") or ""
        kind = "list" if node.get("type") == "array" else ""
        lines.append(f"- {prefix}{name}{' (' + kind + ')' if kind else ''}: {desc}".rstrip(": "))
        target = ref or item_ref
        if target and target.startswith("#/$defs/"):
            sub = defs.get(target.split("/")[-1], {})
            lines.extend(_field_lines({"properties": sub.get("properties", {}), "$defs": defs}, "  " + prefix))
    return lines


def system_prompt(schema_title: str, schema: dict[str, Any]) -> str:
    """The shared prefix for every chunk of every document extracted with this schema."""
    fields = "\n".join(_field_lines(schema))
    return f"{_RULES}\n\nRecord type: {schema_title}\nFields:\n{fields}"


def _excerpt(text: str, part: int, parts: int, pages: tuple[int, ...]) -> str:
    where = f"pages {pages[0]}-{pages[-1]}" if len(pages) > 1 else f"page {pages[0]}" if pages else "text"
    return f"Document excerpt (part {part} of {parts}, {where}):\n\n{text}"


def build_messages(
    schema_title: str,
    schema: dict[str, Any],
    chunk_text: str,
    part: int,
    parts: int,
    pages: tuple[int, ...],
    example: tuple[str, dict[str, Any]] | None = None,
) -> tuple[Message, ...]:
    """System turn and worked example (constant per schema), then the excerpt, which comes last."""
    messages = [Message("system", system_prompt(schema_title, schema))]
    if example is not None:
        doc, record = example
        messages.append(Message("user", _excerpt(doc, 1, 1, (1,))))
        messages.append(Message("assistant", json.dumps(record, separators=(",", ":"), ensure_ascii=False)))
    messages.append(Message("user", _excerpt(chunk_text, part, parts, pages)))
    return tuple(messages)
