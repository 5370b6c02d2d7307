"""Rasterising a PDF page for OCR with pypdfium2, refusing images too large to decode safely.

Child side only: imported by the OCR child after its rlimits are set. Sizes are checked from the
images' declared dimensions before anything is decoded, because a few bytes can declare a 35000 x
35000 image whose decoding would take gigabytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from workers.errors import BadInputError

if TYPE_CHECKING:
    import numpy as np

POINTS_PER_INCH: Final = 72.0
# The rendered bitmap's own cap, whatever the image limit: 40 Mpx is a letter page at 600 dpi, and
# the engines work on copies and crops of it.
MAX_RENDER_PIXELS: Final = 40_000_000
# How deep to look into nested form XObjects for images; pdfium stops at loops on its own.
_MAX_FORM_DEPTH: Final = 8


@dataclass(frozen=True)
class RenderedPage:
    """A page as an 8-bit grey image, with the scale (pixels per point) it was drawn at."""

    image: np.ndarray
    scale: float
    width_pt: float
    height_pt: float


class ImageTooLarge(BadInputError):
    """A page declares an image with more pixels than the OCR limit allows."""

    def __init__(self, pixels: int, limit: int) -> None:
        super().__init__(f"image of {pixels} pixels exceeds the limit of {limit}")
        self.pixels = pixels
        self.limit = limit


def open_pdf(path: str, password: str | None) -> Any:
    """The PDF opened with pdfium (which handles the encryption itself)."""
    import pypdfium2

    return pypdfium2.PdfDocument(path, password=password)


def largest_image_pixels(page: Any) -> int:
    """The pixel count of the largest image the page draws, from declared sizes (nothing is decoded)."""
    import pypdfium2.raw as pdfium_c

    largest = 0
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=_MAX_FORM_DEPTH):
        width, height = obj.get_px_size()
        largest = max(largest, int(width) * int(height))
    return largest


def render_page(page: Any, *, dpi: float, max_pixels: int) -> RenderedPage:
    """The page drawn in grey at `dpi`, or coarser so the bitmap stays within the pixel caps.

    Raises ImageTooLarge when the page declares an image over `max_pixels`: pdfium would decode it whole.
    """
    largest = largest_image_pixels(page)
    if largest > max_pixels:
        raise ImageTooLarge(largest, max_pixels)
    # get_size() is the page as displayed: /Rotate is applied, as it is when rendering.
    width_pt, height_pt = (float(v) for v in page.get_size())
    scale = dpi / POINTS_PER_INCH
    area = max(width_pt * height_pt, 1.0)
    cap = min(max_pixels, MAX_RENDER_PIXELS)
    if area * scale * scale > cap:
        scale = math.sqrt(cap / area)
    bitmap = page.render(scale=scale, grayscale=True, limit_image_cache=True)
    # Copy out of pdfium's buffer so the bitmap can be freed at once.
    image = bitmap.to_numpy().copy()
    bitmap.close()
    return RenderedPage(image=image, scale=scale, width_pt=width_pt, height_pt=height_pt)
