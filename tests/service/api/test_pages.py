"""Page images: a tenant's PDF page as a PNG within the size cap, cached, audited as a read of the document."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image

from tests.support.api import TenantKey, upload
from tests.workers.documents.data_paths import KLEISTER_DIR, require

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _kleister_pdf() -> bytes:
    return sorted(require(KLEISTER_DIR).glob("*.pdf"))[0].read_bytes()


def test_a_page_is_a_png_within_the_cap_and_every_read_is_audited(
    client: httpx.Client, tenant_a: TenantKey, audit_rows: Callable[..., list[dict[str, Any]]]
) -> None:
    document = upload(client, tenant_a, _kleister_pdf(), "nda.pdf")
    first = client.get(f"/v1/documents/{document['id']}/pages/1", headers=tenant_a.headers)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/png" and first.content.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(first.content))
    width_pt, height_pt = float(first.headers["x-page-width-pt"]), float(first.headers["x-page-height-pt"])
    assert max(image.size) <= 1600
    # The image is the page scaled evenly: boxes in points scale by width / X-Page-Width-Pt.
    assert abs(image.size[0] / width_pt - image.size[1] / height_pt) < 0.01
    second = client.get(f"/v1/documents/{document['id']}/pages/1", headers=tenant_a.headers)
    assert second.status_code == 200 and second.content == first.content
    reads = audit_rows(target_id=document["id"], action="document.page_read")
    assert [(r["outcome"], r["details"]) for r in reads] == [
        ("success", {"page": 1, "cached": False}),
        ("success", {"page": 1, "cached": True}),
    ]
    assert reads[0]["request_id"] == first.headers["x-request-id"]


def test_a_page_past_the_end_is_404_and_a_text_note_has_no_pages(client: httpx.Client, tenant_a: TenantKey) -> None:
    document = upload(client, tenant_a, _kleister_pdf(), "nda.pdf")
    past = client.get(f"/v1/documents/{document['id']}/pages/999", headers=tenant_a.headers)
    assert past.status_code == 404 and past.json()["error"]["code"] == "not_found"
    note = upload(client, tenant_a, f"Note {uuid.uuid4().hex}\n".encode())
    text = client.get(f"/v1/documents/{note['id']}/pages/1", headers=tenant_a.headers)
    assert text.status_code == 422 and text.json()["error"]["code"] == "no_page_images"
    assert client.get(f"/v1/documents/{document['id']}/pages/0", headers=tenant_a.headers).status_code == 422
