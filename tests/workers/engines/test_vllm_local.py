"""In-process vLLM at its contract: what we ask of `vllm.LLM`, and what we make of its answers.

vLLM cannot run here (no GPU, not installed), so the contract tests check the exact parameters our
pure functions build and drive `VllmEngine` with an `LLM`-shaped stand-in that records its calls.
The GPU smoke test runs the real thing where vLLM and CUDA exist (never in CI).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from service.config import Settings
from service.runtime import engine_from, model_ref
from workers.engines.protocol import GenerationRequest, Message
from workers.engines.vllm_local import (
    VLLM_BACKENDS,
    VllmEngine,
    llm_kwargs,
    result_from_output,
    sampling_kwargs,
    structured_outputs_kwargs,
)
from workers.errors import ConfigError

SCHEMA: dict[str, Any] = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}


def request(text: str, max_tokens: int = 64) -> GenerationRequest:
    return GenerationRequest(
        messages=(Message("system", "Fill the record."), Message("user", text)),
        json_schema=SCHEMA,
        max_tokens=max_tokens,
        request_id=text,
    )


class RecordingTokenizer:
    """Whitespace tokens and a visible chat template: enough to see what the engine sends."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        assert add_special_tokens is False
        return list(range(len(text.split())))

    def apply_chat_template(
        self, messages: list[dict[str, str]], *, tokenize: bool, add_generation_prompt: bool
    ) -> str:
        assert tokenize is False and add_generation_prompt is True
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


class RecordingLLM:
    """`vllm.LLM`-shaped: `get_tokenizer()` and `generate(prompts, sampling_params=..., use_tqdm=...)`."""

    def __init__(self, answers: Sequence[tuple[str, str]]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[list[str], list[Any]]] = []

    def get_tokenizer(self) -> RecordingTokenizer:
        return RecordingTokenizer()

    def generate(self, prompts: list[str], sampling_params: list[Any], use_tqdm: bool = True) -> list[Any]:
        assert use_tqdm is False
        self.calls.append((prompts, sampling_params))
        return [
            SimpleNamespace(
                prompt_token_ids=list(range(len(p.split()))),
                outputs=[SimpleNamespace(text=text, finish_reason=reason, token_ids=[1] * max(1, len(text) // 3))],
            )
            for p, (text, reason) in zip(prompts, self.answers, strict=True)
        ]


def test_module_imports_without_vllm() -> None:
    code = (
        "import sys; import workers.engines.vllm_local as m; "
        "assert 'vllm' not in sys.modules and 'torch' not in sys.modules; print(m.VLLM_VERSION_TARGET)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0.33"


def test_llm_kwargs_fix_the_backend_and_compact_json() -> None:
    assert llm_kwargs("/models/qwen", backend="guidance", max_model_len=8192, gpu_memory_utilization=0.8) == {
        "model": "/models/qwen",
        "max_model_len": 8192,
        "gpu_memory_utilization": 0.8,
        "seed": 0,
        "enable_prefix_caching": True,
        "structured_outputs_config": {"backend": "guidance", "disable_fallback": True, "disable_any_whitespace": True},
    }
    # vLLM refuses disable_any_whitespace for outlines: it is left out rather than rejected at start-up.
    assert llm_kwargs("m", backend="outlines")["structured_outputs_config"] == {
        "backend": "outlines",
        "disable_fallback": True,
    }
    assert VLLM_BACKENDS == ("xgrammar", "guidance", "outlines")
    with pytest.raises(ConfigError, match="unknown vLLM structured-output backend"):
        llm_kwargs("m", backend="lm-format-enforcer")


def test_sampling_kwargs_are_greedy_single_and_schema_constrained() -> None:
    assert sampling_kwargs(request("x", max_tokens=99)) == {
        "n": 1,
        "temperature": 0.0,
        "max_tokens": 99,
        "structured_outputs": {"json": SCHEMA, "disable_any_whitespace": True},
    }
    assert structured_outputs_kwargs(SCHEMA, "outlines") == {"json": SCHEMA, "disable_any_whitespace": False}


def test_every_request_goes_into_one_generate_call() -> None:
    llm = RecordingLLM([('{"age":61}', "stop"), ('{"age":', "length"), ("", "abort")])
    engine = VllmEngine(model="/models/qwen2.5-7b-instruct", llm=llm, make_params=lambda kwargs: kwargs)
    results = engine.generate([request("first"), request("second", max_tokens=8), request("third")])
    assert len(llm.calls) == 1
    prompts, params = llm.calls[0]
    assert prompts == [
        "<system>Fill the record.<user>first<assistant>",
        "<system>Fill the record.<user>second<assistant>",
        "<system>Fill the record.<user>third<assistant>",
    ]
    assert params == [
        sampling_kwargs(request("first")),
        sampling_kwargs(request("second", 8)),
        sampling_kwargs(request("third")),
    ]
    assert [(r.finish_reason, r.text) for r in results] == [("stop", '{"age":61}'), ("length", ""), ("error", "")]
    assert results[2].error == "vLLM finished with 'abort'"
    assert results[0].prompt_tokens == 3 and results[0].completion_tokens == 3
    assert engine.count_tokens("three little words") == 3
    assert engine.info.to_dict() | {"extra": None} == {
        "engine": "vllm",
        "model": "qwen2.5-7b-instruct",
        "sha256": None,
        "grammar_backend": "xgrammar",
        "max_model_len": 4096,
        "vllm_target": "0.33",
        "extra": None,
    }
    assert engine.generate([]) == [] and len(llm.calls) == 1


def test_result_shares_the_batch_time() -> None:
    output = SimpleNamespace(
        prompt_token_ids=None, outputs=[SimpleNamespace(text="{}", finish_reason="stop", token_ids=None)]
    )
    result = result_from_output(output, 0.25, batch_s=1.0)
    assert (result.seconds, result.timings, result.prompt_tokens, result.completion_tokens) == (
        0.25,
        {"batch_s": 1.0},
        0,
        0,
    )


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_without_vllm_the_engine_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABSTRACTOR_ENGINE", "vllm")
    monkeypatch.setenv("ABSTRACTOR_VLLM_MODEL", "/models/qwen2.5-7b-instruct")
    monkeypatch.setenv("ABSTRACTOR_VLLM_STRUCTURED_BACKEND", "guidance")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert model_ref(settings) == ("qwen2.5-7b-instruct", "vllm+guidance")
    with pytest.raises(ConfigError) as info:
        engine_from(settings)
    assert info.value.code == "engine_missing"


def test_vllm_engine_needs_a_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABSTRACTOR_ENGINE", "vllm")
    with pytest.raises(ConfigError, match="ABSTRACTOR_VLLM_MODEL"):
        engine_from(Settings(_env_file=None))  # type: ignore[call-arg]


def _gpu_ready() -> bool:
    if importlib.util.find_spec("vllm") is None or not os.environ.get("ABSTRACTOR_VLLM_MODEL"):
        return False
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs vllm, a CUDA device and ABSTRACTOR_VLLM_MODEL (local weights)")
def test_gpu_smoke_real_vllm_batch() -> None:
    engine = VllmEngine(model=os.environ["ABSTRACTOR_VLLM_MODEL"], backend="xgrammar", max_model_len=4096)
    texts = [f"{name} is {age} years old." for name, age in [("Ann", 34), ("Bo", 7), ("Cy", 88)]]
    results = engine.generate([request(t) for t in texts])
    for result, age in zip(results, [34, 7, 88], strict=True):
        assert result.finish_reason == "stop"
        assert " " not in result.text and "\n" not in result.text  # disable_any_whitespace held
        assert json.loads(result.text) == {"age": age}
