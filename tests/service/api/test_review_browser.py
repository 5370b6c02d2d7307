"""The review page in a real browser: headless Debian Chromium (scripts/setup-browser) driven by selenium.

`abstractor serve` with the real embedded model extracts a Kleister NDA; a reviewer opens `/review`,
pastes a key, checks that the highlights lie over the evidence boxes the API reports (scaled to the
image as drawn), corrects one value with the keyboard, accepts the rest and finishes. Then the API
returns the corrected current version beside the model's untouched one, the audit chain verifies and
holds the review events, and another tenant's key gets 404 for the job's page images and its review.

A screenshot of the page mid-review is saved under the test's tmp folder (and copied to
`ABSTRACTOR_REVIEW_SCREENSHOT` when that is set).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.api.conftest import ADMIN_TOKEN
from tests.service.test_cli import run_cli
from tests.support.api import TenantKey, extract_and_wait, make_tenant, upload
from tests.support.servers import ServeProcess, serve_env
from tests.workers.documents.data_paths import KLEISTER_DIR, require

pytestmark = [pytest.mark.slow, pytest.mark.model]
DOCUMENT = "03efbda01358533c167ca9b1e6d72051.pdf"  # two pages; gold jurisdiction: Pennsylvania
CORRECTION = "Pennsylvania"
NO_BOUND = 7200.0
"""Only a stop for a wedged run: model time is never what this test bounds."""
UI_WAIT = 120.0
"""How long the page may take to show what the API already answered (a stop, not a measure)."""
TOLERANCE_PX = 1.5


def _driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.fail("chromium and chromium-driver are missing: run scripts/setup-browser")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(chromedriver), options=options)


def _wait(driver: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, UI_WAIT, poll_frequency=0.1).until(condition, message=what)


def _press(driver: Any, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(keys).perform()


def _settled(driver: Any) -> bool:
    """No decision in flight and the page's image drawn with its highlights."""
    status = driver.find_element("id", "status").text
    image = driver.find_element("id", "page-image")
    return status == "" and image.get_attribute("data-loaded") == "true"


def _select(driver: Any, fields: list[str], name: str) -> None:
    """Select a field with the keyboard only: K to the top, then J down to it."""
    _press(driver, "k" * len(fields) + "j" * fields.index(name))
    _wait(
        driver,
        lambda d: "selected" in d.find_element("css selector", f'li.field[data-field="{name}"]').get_attribute("class"),
        f"field {name} selected",
    )
    _wait(driver, _settled, "page settled")


def _check_highlights(driver: Any, review: dict[str, Any], page_size: tuple[float, float]) -> int:
    """Every evidence box of the page shown has a highlight exactly over it; returns how many were checked."""
    image = driver.find_element("id", "page-image")
    page = int(image.get_attribute("data-page"))
    rect = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON();", image)
    scale = rect["width"] / page_size[0]
    assert abs(rect["height"] / page_size[1] - scale) < 0.01  # drawn without distortion
    expected = sorted(
        (
            round(rect["left"] + box["x0"] * scale, 1),
            round(rect["top"] + box["y0"] * scale, 1),
            round((box["x1"] - box["x0"]) * scale, 1),
            round((box["y1"] - box["y0"]) * scale, 1),
        )
        for path, items in review["current"]["evidence"].items()
        for item in items
        if item["page"] == page
        for box in item.get("boxes", [])
    )
    shown = sorted(
        (round(r["left"], 1), round(r["top"], 1), round(r["width"], 1), round(r["height"], 1))
        for r in driver.execute_script(
            "return [...document.querySelectorAll('#highlights .highlight')]"
            ".map(e => e.getBoundingClientRect().toJSON());"
        )
    )
    assert len(shown) == len(expected), (shown, expected)
    for got, want in zip(shown, expected, strict=True):
        assert all(abs(g - w) <= TOLERANCE_PX for g, w in zip(got, want, strict=True)), (got, want)
    return len(expected)


def test_a_reviewer_corrects_accepts_and_finishes_in_a_real_browser(tmp_path: Path, model_cache: Path) -> None:
    review_in_a_browser(tmp_path, "real", model_cache)


def review_in_a_browser(tmp_path: Path, engine: str, model_cache: Path | None) -> None:
    """The whole scenario against `serve` with `engine` (`real` in the test; `deterministic` to debug the page)."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    if model_cache is not None:
        (data_dir / "models").symlink_to(model_cache, target_is_directory=True)
    env = serve_env(data_dir, ADMIN_TOKEN)
    pdf = require(KLEISTER_DIR) / DOCUMENT
    with ServeProcess(env, engine=engine, log_path=tmp_path / "serve.log") as server:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            owner, other = make_tenant(client, ADMIN_TOKEN), make_tenant(client, ADMIN_TOKEN)
            document = upload(client, owner, pdf.read_bytes(), DOCUMENT)
            job = extract_and_wait(client, owner, document["id"], timeout=NO_BOUND)
            assert job["status"] == "succeeded", (job, (tmp_path / "serve.log").read_text()[-3000:])
            review = client.get(f"/v1/reviews/{job['id']}", headers=owner.headers).json()
            fields = [f["name"] for f in review["fields"]]
            boxed = [p for p, items in review["current"]["evidence"].items() if any(i.get("boxes") for i in items)]
            assert boxed, review["current"]["evidence"]  # text-layer evidence carries boxes
            first_page = client.get(f"/v1/documents/{document['id']}/pages/1", headers=owner.headers)
            page_size = (float(first_page.headers["x-page-width-pt"]), float(first_page.headers["x-page-height-pt"]))

            driver = _driver()
            try:
                _review_in_browser(driver, server.base_url, owner, job["id"], fields, review, page_size, tmp_path)
            finally:
                driver.quit()

            read = client.get(f"/v1/extractions/{job['id']}", headers=owner.headers).json()
            _check_foreign_tenant(client, other, job["id"], document["id"])
    assert read["review_state"] == "reviewed"
    assert read["result"]["data"]["jurisdiction"] == CORRECTION
    assert read["model_result"] == review["model"]  # the model's record never changes
    expected = {**review["model"]["data"], "jurisdiction": CORRECTION}
    assert read["result"]["data"] == expected

    verified = run_cli("audit", "verify", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr[-2000:]
    assert json.loads(verified.stdout.splitlines()[-1])["ok"] is True
    with sqlite3.connect(data_dir / "abstractor.db") as db:
        events = list(
            db.execute(
                "SELECT action, outcome FROM audit_events WHERE target_id = ? AND action LIKE 'review.%' ORDER BY seq",
                (job["id"],),
            )
        )
    decided = [a for a, outcome in events if outcome == "success" and a != "review.read"]
    assert decided == ["review.correct"] + ["review.accept"] * (len(fields) - 1) + ["review.finish"], events
    # The other tenant's tries are in the trail too, as denied.
    assert [a for a, outcome in events if outcome == "denied"] == ["review.read", "review.accept"], events


def _review_in_browser(
    driver: Any,
    base_url: str,
    owner: TenantKey,
    job_id: str,
    fields: list[str],
    review: dict[str, Any],
    page_size: tuple[float, float],
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.keys import Keys

    driver.get(f"{base_url}/review")
    driver.find_element("id", "key-input").send_keys(owner.key)
    driver.find_element("css selector", "#key-form button[type=submit]").click()
    item = _wait(
        driver,
        lambda d: d.find_elements("css selector", f'button.queue-item[data-job="{job_id}"]'),
        "the job in the queue",
    )
    item[0].click()
    _wait(driver, _settled, "the first page drawn")
    assert driver.execute_script("return document.cookie;") == ""
    assert driver.execute_script("return sessionStorage.getItem('abstractor.apiKey');") == owner.key

    # The highlights lie over the evidence, on the page of each field that has some.
    checked = 0
    for name in fields:
        _select(driver, fields, name)
        checked += _check_highlights(driver, review, page_size)
    assert checked > 0

    # Correct one value with the keyboard: E, replace the text, Enter.
    _select(driver, fields, "jurisdiction")
    _press(driver, "e")
    editor = _wait(
        driver,
        lambda d: d.find_element("id", "edit-input") if d.find_element("id", "edit-input").is_displayed() else None,
        "editor",
    )
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(CORRECTION, Keys.ENTER)
    _wait(
        driver,
        lambda d: d.find_element("css selector", 'li.field[data-field="jurisdiction"] .decision').text == "correct",
        "the correction shown",
    )
    _wait(driver, _settled, "settled after the correction")
    # The screenshot shows the corrected value selected, its new evidence highlighted where it was found.
    _select(driver, fields, "jurisdiction")
    shot = tmp_path / "review.png"
    driver.save_screenshot(str(shot))
    target = os.environ.get("ABSTRACTOR_REVIEW_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)

    # Accept the rest, then finish: the queue is empty again.
    for name in fields:
        if name == "jurisdiction":
            continue
        _select(driver, fields, name)
        _press(driver, "a")
        _wait(
            driver,
            lambda d, n=name: d.find_element("css selector", f'li.field[data-field="{n}"] .decision').text == "accept",
            f"{name} accepted",
        )
    _wait(driver, _settled, "settled before finishing")
    _press(driver, "f")
    _wait(driver, lambda d: d.find_element("id", "queue-empty").is_displayed(), "back at an empty queue")
    assert shot.stat().st_size > 10_000


def _check_foreign_tenant(client: httpx.Client, other: TenantKey, job_id: str, document_id: str) -> None:
    for method, path, body in (
        ("GET", f"/v1/reviews/{job_id}", None),
        ("POST", f"/v1/reviews/{job_id}", {"action": "accept", "field": "term"}),
        ("GET", f"/v1/documents/{document_id}/pages/1", None),
        ("GET", f"/v1/extractions/{job_id}", None),
    ):
        answer = client.request(method, path, json=body, headers=other.headers)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", (method, path)
