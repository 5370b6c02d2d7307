"""The real vLLM for tests: the CPU environment setup-vllm built, and checks of the records it produces.

`scripts/test` builds the environment before pytest and sets ABSTRACTOR_TEST_REQUIRE_VLLM=1, so in CI
a missing environment fails the `vllm` tests; a developer running pytest without it gets a skip that
says how to build it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bench.vllm_cpu import VllmCpuEnv, load_env
from schemas.registry import get_schema

KLEISTER_SAMPLE = "03efbda01358533c167ca9b1e6d72051.pdf"
"""A two-page Kleister-NDA train PDF (gold: parties High Speed Net Solutions, R. J. Seifert Enterprises;
Pennsylvania; 2 years): short, so four real vLLM runs of it stay within CI's budget."""


def require_vllm() -> VllmCpuEnv:
    """The vLLM environment, or a skip (a failure where the test command promised to build it)."""
    env = load_env()
    if env is None:
        message = "no vLLM environment: run `bash scripts/setup-vllm` (scripts/test does)"
        if os.environ.get("ABSTRACTOR_TEST_REQUIRE_VLLM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return env


def assert_grounded(record: dict[str, Any], text: str, pages: dict[int, tuple[int, int]]) -> None:
    """Every evidence span is the canonical text at its offsets, inside the page it names."""
    for path, items in record["evidence"].items():
        assert items, path
        for item in items:
            assert item["text"] == text[item["start"] : item["end"]], path
            start, end = pages[item["page"]]
            assert start <= item["start"] < item["end"] <= end, path


def assert_valid_nda(record: dict[str, Any], text: str, pages: dict[int, tuple[int, int]]) -> None:
    """A schema-valid, grounded `nda@1` record with at least one value found in the document."""
    assert record["schema"] == "nda@1"
    get_schema("nda").model.model_validate(record["data"])
    assert record["evidence"], "a real NDA yields at least one grounded value"
    assert record["data"]["parties"], "the sample NDA names its parties in the first paragraph"
    assert_grounded(record, text, pages)
    # Whatever is kept in `data` is grounded; values not found in the source were moved out and flagged.
    flagged = {f["path"] for f in record["flags"] if f["code"] == "not_found_in_source"}
    for party_index in range(len(record["data"]["parties"])):
        assert f"parties.{party_index}" in record["evidence"], record["flags"]
    assert not flagged & set(record["evidence"])


def sample_pdf(kleister_dir: Path) -> Path:
    """The short Kleister PDF the vLLM tests extract."""
    return kleister_dir / KLEISTER_SAMPLE
