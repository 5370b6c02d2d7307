"""Engine-test fixtures: one real llama-cpp-python OpenAI-compatible server per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workers.engines.llama_server import LlamaServer
from workers.engines.model_files import ensure_embedded_model


@pytest.fixture(scope="session")
def llama_server(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """`python -m llama_cpp.server` over the embedded GGUF (the same file the CPU engine loads).

    Its extras (sse-starlette, starlette-context) are pinned in the test extras: missing, it fails loudly.
    """
    model_path = ensure_embedded_model(model_cache)
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with LlamaServer(model_path, n_ctx=4096, log_path=log_path) as server:
        yield server
