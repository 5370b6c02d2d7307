"""In-process vLLM for real: the engine a GPU worker runs, started here on the CPU build of the same release.

vLLM spawns its engine core, so the engine runs in a child process (`vllm_child`) with the vLLM
environment's Python; it is built from Settings through the worker's own mapping and extracts a
Kleister-NDA PDF with each structured-output backend, then meets a too-small token budget and a schema
vLLM cannot compile. The checks happen here, on what the child reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.vllm_cpu import REPO
from service.config import Settings
from service.runtime import engine_from, model_ref
from tests.support.vllm import assert_valid_nda, require_vllm, sample_pdf
from workers.engines.vllm_local import engine_args
from workers.engines.vllm_release import VLLM_BACKENDS, VLLM_VERSION
from workers.errors import ConfigError

UNCOMPILABLE = {
    "type": "object",
    "properties": {"v": {"type": "string", "pattern": "^(a|aa){1000,}b$"}},
    "required": ["v"],
}
"""xgrammar 0.2.8 fails an internal check compiling this pattern (vLLM aborts the request)."""


def test_module_imports_without_vllm() -> None:
    code = (
        "import sys; import workers.engines.vllm_local as m; "
        "assert 'vllm' not in sys.modules and 'torch' not in sys.modules; print(m.VLLM_VERSION)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == VLLM_VERSION


def test_without_vllm_the_engine_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # The project's own environment has no vLLM (it lives in its own, see scripts/setup-vllm).
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


def test_engine_arguments_refuse_unknown_backends_and_empty_caches() -> None:
    # outlines (and auto, which falls back to it) keep whole-vocabulary indexes without a memory bound.
    for refused in ("lm-format-enforcer", "outlines", "auto"):
        with pytest.raises(ConfigError, match="unknown vLLM structured-output backend"):
            engine_args("m", backend=refused)
    with pytest.raises(ConfigError, match="KV cache"):
        engine_args("m", kv_cache_gib=0)
    assert engine_args("m", backend="guidance")["structured_outputs_config"] == {
        "backend": "guidance",
        "disable_any_whitespace": True,
    }
    assert engine_args("m", kv_cache_gib=1.5)["kv_cache_memory_bytes"] == 3 << 29


def _run_child(tmp_path: Path, settings: dict[str, Any], cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    env = require_vllm()
    spec = tmp_path / "spec.json"
    out = tmp_path / "out.json"
    spec.write_text(json.dumps({"settings": settings, "cases": cases}))
    log = tmp_path / "child.log"
    with log.open("wb") as sink:
        proc = subprocess.run(
            [str(env.python), "-m", "tests.workers.engines.vllm_child", str(spec), str(out)],
            cwd=REPO,
            env=env.child_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
            check=False,
        )
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    assert proc.returncode == 0, tail
    outcomes: list[dict[str, Any]] = json.loads(out.read_text())
    return outcomes


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.parametrize("backend", ["xgrammar", "guidance"])
def test_in_process_engine_extracts_a_grounded_nda_and_fails_clearly(
    backend: str, kleister_dir: Path, tmp_path: Path
) -> None:
    assert backend in VLLM_BACKENDS
    env = require_vllm()
    pdf = str(sample_pdf(kleister_dir))
    settings = {
        "engine": "vllm",
        "vllm_model": str(env.model),
        "vllm_structured_backend": backend,
        "vllm_enforce_eager": True,
        "vllm_kv_cache_gib": 2,
        # No wall-clock bound on a model run: a CPU build without AVX-512 takes minutes for one NDA.
        "request_timeout_s": 3600,
        "n_ctx": 4096,
        "ocr_enabled": False,
        "environment": "test",
        "data_dir": str(tmp_path / "data"),
    }
    cases = [
        {"name": "nda", "path": pdf, "schema": "nda"},
        {"name": "truncated", "path": pdf, "schema": "nda", "max_new_tokens": 4},
        {"name": "uncompilable", "path": pdf, "json_schema": UNCOMPILABLE},
    ]
    outcomes = {o["case"]: o for o in _run_child(tmp_path, settings, cases)}
    nda = outcomes["nda"]
    assert "error" not in nda, nda.get("error")
    record = nda["record"]
    assert_valid_nda(record, nda["text"], {int(k): tuple(v) for k, v in nda["pages"].items()})
    assert record["model"]["engine"] == "vllm" and record["model"]["grammar_backend"] == backend
    assert record["model"]["vllm"] == VLLM_VERSION
    assert outcomes["truncated"]["error"]["code"] == "output_truncated"
    # vLLM aborts a request whose grammar it cannot build (xgrammar) or keep (guidance's lexer limit):
    # the job fails with a code, the engine lives on (the child went on to finish and exit cleanly).
    assert outcomes["uncompilable"]["error"]["code"] == "generation_error"
    print(
        f"in-process vLLM {backend}: start {outcomes['start']['seconds']} s, nda {nda['seconds']} s, "
        f"{record['timings']['prompt_tokens']} prompt + {record['timings']['completion_tokens']} generated tokens"
    )
