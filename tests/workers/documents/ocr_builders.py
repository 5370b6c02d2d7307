"""Hand-built image-only PDFs for the OCR tests: a page that draws one picture and no text."""

from __future__ import annotations

import zlib
from typing import Any

PAGE_WIDTH_PT = 612
PAGE_HEIGHT_PT = 792


def image_pdf(width_px: int, height_px: int, data: bytes, *, filter_name: bytes = b"/FlateDecode") -> bytes:
    """One letter page covered by a single grey image XObject declared `width_px` x `height_px`.

    The declared size need not match `data`: a few bytes may claim a 35000 x 35000 image.
    """
    content = b"q %d 0 0 %d 0 0 cm /Im1 Do Q" % (PAGE_WIDTH_PT, PAGE_HEIGHT_PT)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count 1 /Kids [3 0 R] >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /XObject << /Im1 5 0 R >> >>"
        b" /Contents 4 0 R >>" % (PAGE_WIDTH_PT, PAGE_HEIGHT_PT),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8"
        b" /Filter %s /Length %d >>\nstream\n" % (width_px, height_px, filter_name, len(data)) + data + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def oversized_image_pdf(side_px: int = 35_000) -> bytes:
    """A tiny file declaring a `side_px` square grey image: decoding it would take side_px² bytes."""
    return image_pdf(side_px, side_px, zlib.compress(bytes(64 * 1024), 9))


def scanned_text_pdf(lines: list[str], *, dpi: int = 200, font_px: int = 40) -> bytes:
    """An image-only letter page showing `lines` in black on white, as a scanner would deliver it."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = PAGE_WIDTH_PT * dpi // 72, PAGE_HEIGHT_PT * dpi // 72
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    font: Any = ImageFont.load_default(size=font_px)
    y = dpi  # one inch margin
    for line in lines:
        draw.text((dpi, y), line, fill=0, font=font)
        y += int(font_px * 1.6)
    return image_pdf(width, height, zlib.compress(image.tobytes(), 6))
