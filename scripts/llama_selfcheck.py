"""Self-check of the installed llama.cpp build; `scripts/setup-env` runs it in a child after installing.

Why a child: a build for instructions the CPU does not really execute dies by SIGILL, and llama.cpp's
AMX kernels die by SIGSEGV on virtual machines that advertise AMX; neither can be caught in-process, so
setup-env reads this process's exit status and falls back to the AVX2 build when it is not 0.

It loads the embedded model (digest checked), evaluates a fixed prompt long enough to take the batched
matrix path (where the AMX and AVX-512 kernels run), then generates a few tokens greedily (the one-row
path) and checks the answer, so a build that runs but computes garbage fails too (exit status 3). The
prompt is ours, not a document's. Prints one line: `llama_selfcheck ok prompt_tokens=N threads=N features=...`.

`ABSTRACTOR_LLAMA_SELFCHECK_CRASH_IF=TEXT` makes the check kill itself by SIGILL when the build flags in
`LLAMA_BUILD_FLAGS` (set by setup-env) contain TEXT: the fallback path, tested on a CPU where nothing
crashes.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

# One fact the model cannot miss, after enough filler to make the prompt a batch of >100 tokens.
_FILLER = "Contracts name their parties, their effective date, their term and the law that governs them. " * 8
_PROMPT = _FILLER + "\nQuestion: What is the capital of France?\nAnswer: The capital of France is"
_EXPECTED = "Paris"
WRONG_ANSWER = 3


def _crash_if_asked() -> None:
    """The simulated crash: the same death (SIGILL) that a build for a missing instruction set dies."""
    needle = os.environ.get("ABSTRACTOR_LLAMA_SELFCHECK_CRASH_IF", "")
    if needle and needle in os.environ.get("LLAMA_BUILD_FLAGS", ""):
        os.kill(os.getpid(), signal.SIGILL)


def main() -> int:
    """Exit 0 when the build loads, evaluates and answers right; WRONG_ANSWER when it answers wrong."""
    import llama_cpp

    from workers.engines.llamacpp import available_cores, build_features
    from workers.engines.model_files import ensure_embedded_model
    from workers.engines.quiet import quiet_llama_cpp

    quiet_llama_cpp()
    model = ensure_embedded_model(Path("var/models"))
    threads = available_cores()
    llm = llama_cpp.Llama(
        model_path=str(model), n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False, seed=0
    )
    _crash_if_asked()
    tokens = llm.tokenize(_PROMPT.encode("utf-8"))
    llm.eval(tokens)
    out: Any = llm.create_completion(_PROMPT, max_tokens=4, temperature=0.0)
    answer = str(out["choices"][0]["text"])
    features = ",".join(build_features())
    if _EXPECTED not in answer:
        return WRONG_ANSWER  # setup-env says so, in its one line
    print(f"llama_selfcheck ok prompt_tokens={len(tokens)} threads={threads} features={features}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
