"""The `/review` page: served from the package under a strict CSP, with no inline script or style."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx

from service.api.routers.review_page import CSP


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True


def test_the_page_and_its_assets_come_from_us_under_a_strict_policy(client: httpx.Client) -> None:
    page = client.get("/review")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP and "http" not in CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    parsed = _Tags()
    parsed.feed(page.text)
    assert not parsed.inline_script
    assert not [t for t, _ in parsed.tags if t == "style"]
    assert not [a for _, a in parsed.tags if "style" in a or any(k.startswith("on") for k in a)]
    sources = [a.get("src") or a.get("href") for t, a in parsed.tags if t in ("script", "link")]
    assert sources == ["/review/assets/review.css", "/review/assets/review.js"]
    for source in sources:
        asset = client.get(str(source))
        assert asset.status_code == 200 and asset.headers["content-security-policy"] == CSP
    script = client.get("/review/assets/review.js").text
    # Shown data goes through textContent only; the key lives in sessionStorage, never in a cookie.
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", script)
    assert "sessionStorage" in script and "document.cookie" not in script and "localStorage" not in script
    assert client.get("/review/assets/index.html").status_code == 404
    assert client.get("/review/assets/..%2Fapp.py").status_code == 404
