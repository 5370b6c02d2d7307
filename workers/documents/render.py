"""One PDF page as a PNG for a reviewer, drawn by pdfium in a sandboxed child like every other parser.

`render_png` is the parent's half (the API calls it, importing this module when a page is asked
for): it hands the bytes to a child and reads back the PNG the child wrote, which is no larger than
`max_side_px` on its longer side nor `output_bytes` in size. `draw_page` is the child's half.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from workers.documents.sandbox import ChildLimits, error_result, run_in_child

CHILD_MODULE: Final = "workers.documents.render_child"
# A page's PNG at 2000 px a side is a few megabytes at worst; the file limit is the child's rlimit.
_OUTPUT_BYTES: Final = 32 * 1024 * 1024
# Never drawn finer than this many pixels per point (144 dpi): a reviewer's screen needs no more.
_MAX_SCALE: Final = 2.0


@dataclass(frozen=True)
class PageImage:
    """A rendered page (None when the PDF has no such page), its size as displayed in points, the page count."""

    png: bytes | None
    width_pt: float
    height_pt: float
    pages: int


def render_png(
    data: bytes, page: int, *, max_side_px: int, max_pixels: int, timeout_s: float, memory_mb: int
) -> PageImage:
    """Page `page` (1-based) drawn to fit `max_side_px`; raises DocumentError when the PDF cannot be drawn."""
    limits = ChildLimits(timeout_s=timeout_s, memory_mb=memory_mb, output_bytes=_OUTPUT_BYTES)
    with tempfile.TemporaryDirectory(prefix="abstractor-render-") as tmp:
        workdir = Path(tmp)
        input_path = workdir / "input.pdf"
        input_path.write_bytes(data)
        output_path = workdir / "page.png"
        payload = {
            "path": str(input_path),
            "page": page,
            "max_side_px": max_side_px,
            "max_pixels": max_pixels,
            "output": str(output_path),
        }
        run = run_in_child(CHILD_MODULE, payload, limits=limits, workdir=workdir)
        found = bool(run.payload["found"])
        png = output_path.read_bytes() if found else None
    return PageImage(
        png=png,
        width_pt=float(run.payload.get("width", 0.0)),
        height_pt=float(run.payload.get("height", 0.0)),
        pages=int(run.payload["pages"]),
    )


def draw_page(payload: dict[str, Any]) -> dict[str, Any]:
    """Child side: open the PDF, refuse images too large to decode, draw the page, write the PNG."""
    # Imported here, after the rlimits are set: pdfium never runs unconfined.
    import pypdfium2

    from workers.documents.raster import ImageTooLarge, largest_image_pixels

    try:
        pdf = pypdfium2.PdfDocument(payload["path"])
    except pypdfium2.PdfiumError:
        return error_result("invalid_pdf", exception="PdfiumError")
    count = len(pdf)
    number: int = payload["page"]
    if not 1 <= number <= count:
        return {"ok": {"found": False, "pages": count}}
    page = pdf[number - 1]
    try:
        largest = largest_image_pixels(page)
        if largest > payload["max_pixels"]:
            raise ImageTooLarge(largest, payload["max_pixels"])
    except ImageTooLarge as e:
        return error_result("too_large", limit="max_pixels", max=e.limit)
    width, height = (float(v) for v in page.get_size())
    scale = min(_MAX_SCALE, payload["max_side_px"] / max(width, height, 1.0))
    bitmap = page.render(scale=scale, limit_image_cache=True)
    image = bitmap.to_pil()
    image.save(payload["output"], format="PNG", optimize=False)
    return {"ok": {"found": True, "pages": count, "width": width, "height": height}}
