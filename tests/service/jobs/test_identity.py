"""The (model, backend) key: what the settings would build must be what the built engine says it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import Settings
from service.jobs.identity import ModelRef, engine_ref, model_ref
from workers.engines.model_files import QWEN25_CODER_05B
from workers.engines.protocol import EngineInfo


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type,call-arg]


def test_the_default_settings_key_jobs_by_the_shipped_model() -> None:
    assert model_ref(_settings()) == ModelRef(QWEN25_CODER_05B.name, "llamacpp+llguidance")
    assert model_ref(_settings(grammar_backend="xgrammar")).backend == "llamacpp+xgrammar"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"model_path": Path("/models/phi-3-mini-q4.gguf")}, ("phi-3-mini-q4", "llamacpp+llguidance")),
        ({"engine": "openai", "openai_model": "served"}, ("served", "openai+server")),
        ({"engine": "vllm", "vllm_model": "/weights/qwen2.5-7b"}, ("qwen2.5-7b", "vllm+xgrammar")),
    ],
    ids=["gguf-file", "openai", "vllm"],
)
def test_other_engines_are_keyed_by_what_they_load(values: dict[str, object], expected: tuple[str, str]) -> None:
    assert model_ref(_settings(**values)) == expected


def test_an_engine_is_keyed_by_its_info() -> None:
    info = EngineInfo(engine="llamacpp", model="m", model_sha256=None, grammar_backend="outlines_core")
    assert engine_ref(info) == ModelRef("m", "llamacpp+outlines_core")


@pytest.mark.slow
@pytest.mark.model
def test_the_settings_predict_the_embedded_engine(engine: object) -> None:
    """The real embedded model, loaded with the default settings' choices: both keys agree."""
    assert isinstance(engine.info, EngineInfo)  # type: ignore[attr-defined]
    assert model_ref(_settings()) == engine_ref(engine.info)  # type: ignore[attr-defined]
