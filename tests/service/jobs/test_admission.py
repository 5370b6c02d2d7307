"""Schema admission: the reasons a tenant's schema is refused, and the grammar code it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.jobs.admission import SchemaRefused, admit_schema

REPO = Path(__file__).resolve().parents[3]
INVOICE: dict[str, Any] = {"type": "object", "properties": {"total": {"type": "number"}}}


def test_a_compilable_object_schema_is_admitted() -> None:
    admit_schema(INVOICE, "invoice", "llguidance")


@pytest.mark.parametrize(
    ("schema", "code"),
    [
        ({"type": "object", "properties": {"x": {"type": "no-such-type"}}}, "invalid_schema"),
        ({"type": "array", "items": {"type": "string"}}, "invalid_schema"),
        ({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}, "unsupported_schema"),
    ],
    ids=["invalid", "not-an-object", "unsupported"],
)
def test_refusals_say_why(schema: dict[str, Any], code: str) -> None:
    with pytest.raises(SchemaRefused) as refused:
        admit_schema(schema, "s", "llguidance")
    assert refused.value.code == code and refused.value.message
    if code == "unsupported_schema":
        assert refused.value.details == {"grammar_backend": "llguidance"}


def test_the_grammar_code_is_loaded_when_a_schema_is_admitted_not_before() -> None:
    code = (
        "import sys; import service.jobs.admission as a; "
        "before = 'workers.engines.grammar' in sys.modules; "
        "a.admit_schema({'type': 'object', 'properties': {'x': {'type': 'string'}}}, 's', 'llguidance'); "
        "print(before, 'workers.engines.grammar' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "True"], done.stderr[-2000:]
