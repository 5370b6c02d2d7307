"""service/runtime.py: the pipeline's budgets come from the one Settings class.

`PipelineOptions` (the pipeline cannot import the service) and `Settings` (the API cannot import the
pipeline) each write the defaults down; these tests make them one: a change to one side that the other
does not follow fails here, and a setting that `options_from` forgot to pass on fails too.
"""

from __future__ import annotations

import os
from dataclasses import fields, replace

import pytest

from schemas.bounds import SchemaBounds
from service.config import Settings
from service.jobs.admission import bounds_from
from service.runtime import options_from
from workers.pipeline.run import PipelineOptions


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ABSTRACTOR_* variable of the test run's environment reaches Settings."""
    for name in list(os.environ):
        if name.startswith("ABSTRACTOR_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("bare_env")
def test_default_settings_build_the_pipelines_default_options() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    built = options_from(settings)
    # The one difference by design: a job's generations have a budget in all; the library's default leaves
    # each request to its own max_tokens.
    assert PipelineOptions().max_generated_tokens is None
    assert built.max_generated_tokens == settings.job_max_generated_tokens
    assert replace(built, max_generated_tokens=None) == PipelineOptions()


@pytest.mark.usefixtures("bare_env")
def test_default_settings_are_the_schema_bounds_defaults() -> None:
    assert bounds_from(Settings(_env_file=None)) == SchemaBounds()  # type: ignore[call-arg]


@pytest.mark.usefixtures("bare_env")
def test_every_budget_setting_reaches_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABSTRACTOR_MAX_NEW_TOKENS", "123")
    monkeypatch.setenv("ABSTRACTOR_CHUNK_TOKENS", "900")
    monkeypatch.setenv("ABSTRACTOR_CHUNK_OVERLAP_TOKENS", "40")
    monkeypatch.setenv("ABSTRACTOR_JOB_MAX_GENERATED_TOKENS", "5000")
    monkeypatch.setenv("ABSTRACTOR_REJECT_UNGROUNDED", "false")
    monkeypatch.setenv("ABSTRACTOR_LOW_CONFIDENCE_THRESHOLD", "0.25")
    monkeypatch.setenv("ABSTRACTOR_SCHEMA_MAX_DEPTH", "7")
    built = options_from(Settings(_env_file=None))  # type: ignore[call-arg]
    assert (built.max_new_tokens, built.chunk_tokens, built.overlap_tokens) == (123, 900, 40)
    assert (built.max_generated_tokens, built.reject_ungrounded, built.low_confidence_threshold) == (5000, False, 0.25)
    assert built.schema_bounds == replace(SchemaBounds(), max_depth=7)
    changed = {f.name for f in fields(PipelineOptions) if getattr(built, f.name) != getattr(PipelineOptions(), f.name)}
    assert changed == {
        "max_new_tokens",
        "chunk_tokens",
        "overlap_tokens",
        "max_generated_tokens",
        "reject_ungrounded",
        "low_confidence_threshold",
        "schema_bounds",
    }


@pytest.mark.usefixtures("bare_env")
def test_the_grammar_index_budget_default_is_the_engines() -> None:
    from workers.engines.constraints import GRAMMAR_INDEX_MAX_GIB

    assert Settings(_env_file=None).grammar_index_max_gib == GRAMMAR_INDEX_MAX_GIB  # type: ignore[call-arg]
