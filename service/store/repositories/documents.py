"""Documents: stored once per tenant and content, in the database or as blob files, read back verified."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.store import blobs
from service.store.errors import IntegrityCheckError, StoreConfigError
from service.store.models import BlobStorage, Document, DocumentBlob


def _find_document(session: Session, tenant_id: uuid.UUID, sha256: str) -> Document | None:
    """The tenant's document with these bytes, if uploaded before."""
    return session.scalars(
        select(Document).where(Document.tenant_id == tenant_id, Document.sha256 == sha256)
    ).one_or_none()


def add_document(
    session: Session,
    tenant_id: uuid.UUID,
    content: bytes,
    *,
    media_type: str,
    page_count: int | None = None,
    blob_dir: Path | None = None,
) -> tuple[Document, bool]:
    """Store a document once per tenant and content; returns (document, created).

    With `blob_dir` the bytes go to a file under it, else into `document_blobs`.
    """
    sha256 = hashlib.sha256(content).hexdigest()
    existing = _find_document(session, tenant_id, sha256)
    if existing is not None:
        return existing, False
    document = Document(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        sha256=sha256,
        size_bytes=len(content),
        media_type=media_type,
        page_count=page_count,
        storage=BlobStorage.DB if blob_dir is None else BlobStorage.FILE,
        blob_path=None if blob_dir is None else blobs.blob_relpath(tenant_id, sha256),
    )
    if blob_dir is not None and document.blob_path is not None:
        blobs.write_blob(blob_dir, document.blob_path, content)
    try:
        with session.begin_nested():
            session.add(document)
            if blob_dir is None:
                session.add(DocumentBlob(document_id=document.id, data=content))
    except IntegrityError:
        winner = _find_document(session, tenant_id, sha256)
        if winner is None:
            raise
        return winner, False
    return document, True


def get_document(session: Session, tenant_id: uuid.UUID, document_id: uuid.UUID) -> Document | None:
    """A document of this tenant; another tenant's id gives None, as an unknown id does."""
    return session.scalars(
        select(Document).where(Document.id == document_id, Document.tenant_id == tenant_id)
    ).one_or_none()


def read_document_bytes(session: Session, document: Document, *, blob_dir: Path | None = None) -> bytes:
    """The document's bytes from wherever they were stored, checked against its sha256."""
    if document.storage is BlobStorage.FILE:
        if blob_dir is None or document.blob_path is None:
            raise StoreConfigError("document is stored as a file but no blob directory is configured")
        return blobs.read_blob(blob_dir, document.blob_path, document.sha256)
    blob = session.get(DocumentBlob, document.id)
    if blob is None or hashlib.sha256(blob.data).hexdigest() != document.sha256:
        raise IntegrityCheckError(f"document bytes missing or changed for {document.id}")
    return blob.data
