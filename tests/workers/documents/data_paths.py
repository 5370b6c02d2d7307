"""Where the shared test documents live, and a skip for machines where they are not mounted."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path("/work/shared/data")
HOSTILE_DIR = DATA / "hostile-pdfs"
KLEISTER_DIR = DATA / "kleister-nda" / "train"
# The user password of pypdf's encryption test files (qpdf --encrypt asdfzxcv ...).
ENCRYPTION_PASSWORD = "asdfzxcv"


def require(path: Path) -> Path:
    """The path, or skip the test where the shared data set is not mounted."""
    if not path.exists():
        pytest.skip(f"test data not available: {path}")
    return path
