"""Shared fixtures: paths to the real evaluation data and one embedded engine per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the checkout (real documents with gold labels; never edited)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def kleister_dir(shared_data: Path) -> Path:
    return shared_data / "kleister-nda" / "train"


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """The same cache the CLI uses, so the model is assembled once per checkout."""
    path = REPO / "var" / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def engine(model_cache: Path) -> Iterator[object]:
    """The real embedded CPU model with the default grammar backend."""
    from workers.engines.llamacpp import LlamaCppEngine

    yield LlamaCppEngine(cache_dir=model_cache, grammar_backend="llguidance")


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One real `vllm serve` (CPU build, xgrammar) for the session: the engine, end-to-end and bench tests."""
    from bench.vllm_cpu import VllmServer
    from tests.support.vllm import require_vllm

    env = require_vllm()
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    with VllmServer(env, backend="xgrammar", log_path=log_path) as server:
        yield server
