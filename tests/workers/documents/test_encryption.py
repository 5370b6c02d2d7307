"""Encrypted PDFs: the empty password is tried first, then the caller's; otherwise `encrypted`."""

from __future__ import annotations

import pytest

from tests.workers.documents.data_paths import ENCRYPTION_PASSWORD, HOSTILE_DIR, require
from workers.documents import DocumentError, read_document

# Made with qpdf --encrypt USER OWNER; see pypdf's tests/test_encryption.py.
NEED_PASSWORD = ["pypdf-enc-r2-user-password.pdf", "pypdf-enc-r4-aes-user-password.pdf"]
# r6-user-password has user password "asdfzxcv" but an EMPTY owner password, so the empty password
# unlocks it, as in every conforming reader.
OPEN_WITHOUT_PASSWORD = ["pypdf-enc-r6-empty-password.pdf", "pypdf-enc-r6-user-password.pdf"]


@pytest.fixture(scope="module")
def plain_text() -> str:
    return read_document(require(HOSTILE_DIR / "pypdf-enc-unencrypted.pdf")).text


@pytest.mark.parametrize("name", [*NEED_PASSWORD, "pypdf-enc-r6-user-password.pdf"])
def test_opens_with_the_user_password(name: str, plain_text: str) -> None:
    doc = read_document(require(HOSTILE_DIR / name), password=ENCRYPTION_PASSWORD)
    assert doc.text == plain_text
    assert doc.text.strip()


@pytest.mark.parametrize("name", NEED_PASSWORD)
def test_without_a_password_is_encrypted(name: str) -> None:
    with pytest.raises(DocumentError) as caught:
        read_document(require(HOSTILE_DIR / name))
    assert caught.value.code == "encrypted"
    assert caught.value.details["password_given"] is False


@pytest.mark.parametrize("name", NEED_PASSWORD)
def test_wrong_password_is_encrypted(name: str) -> None:
    with pytest.raises(DocumentError) as caught:
        read_document(require(HOSTILE_DIR / name), password="not-the-password")
    assert caught.value.code == "encrypted"
    assert "password given does not open" in caught.value.message
    assert "not-the-password" not in str(caught.value.to_dict())


@pytest.mark.parametrize("name", OPEN_WITHOUT_PASSWORD)
def test_empty_password_files_open_without_one(name: str, plain_text: str) -> None:
    assert read_document(require(HOSTILE_DIR / name)).text == plain_text
