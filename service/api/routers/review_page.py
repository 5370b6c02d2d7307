"""`/review`: the reviewers' page, its script and its style, served from the package (no CDN, works offline).

The page holds no data of its own: it calls the API with the key the reviewer pastes. A strict
Content-Security-Policy allows only these same-origin files (no inline script or style, no other
origin), page images as blob URLs, and API calls to this origin.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from fastapi import APIRouter, Response

from service.api.errors import NotFoundError
from service.api.messages import NOT_FOUND_MESSAGE

router = APIRouter(include_in_schema=False)

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ASSETS: Final = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _read(name: str) -> bytes:
    return resources.files("service.api").joinpath("static", "review", name).read_bytes()


@router.get("/review")
def review_page() -> Response:
    """The page itself."""
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=_HEADERS)


@router.get("/review/assets/{name}")
def review_asset(name: str) -> Response:
    """The page's script or style; nothing else is served from here."""
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise NotFoundError(NOT_FOUND_MESSAGE, details={"resource": "asset"})
    return Response(_read(name), media_type=media_type, headers=_HEADERS)
