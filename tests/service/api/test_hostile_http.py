"""The front door of a real `abstractor serve` (its own process, SQLite) against clients that misbehave.

Slow heads (slowloris, a byte at a time), silent connections, slow and dripping bodies, oversized
JSON bodies (declared or chunked), oversized and broken heads, too many connections, forged Host
headers: each ends in a 4xx (or 503) in the API's error shape with a code, within 5 s of server time;
the process keeps serving; and a marker sent in every part of those requests never shows up in what
the process wrote (its stdout and stderr, and the audit table).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.api.guard import HostRule
from service.config import Settings
from tests.support.api import TenantKey, make_tenant
from tests.support.raw_http import RawResponse, closes_soon, open_socket, read_response, request_head, send_slowly
from tests.support.servers import REPO, ServeProcess, free_port, wait_until_up

ADMIN_TOKEN = "dev-admin-token"
HEADER_TIMEOUT_S = 1.5
BODY_TIMEOUT_S = 3.0
BODY_IDLE_TIMEOUT_S = 1.5
MAX_CONNECTIONS = 16
MAX_JSON_BODY = 64 * 1024
MAX_HEADER_BYTES = 8 * 1024
SERVER_TIME_S = 5.0
"""Acceptance: every hostile request ends within this much server time."""

MARKER = f"CANARY{uuid.uuid4().hex}"


@dataclass
class FrontDoor:
    """The running `serve`, where it keeps its files, and the file its stdout and stderr go to."""

    server: ServeProcess
    data_dir: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture(scope="module")
def front_door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontDoor]:
    """`serve` with small front-door limits, its stdout and stderr captured to a file."""
    tmp = tmp_path_factory.mktemp("front-door")
    env = {
        "ABSTRACTOR_DATA_DIR": str(tmp / "var"),
        "ABSTRACTOR_ADMIN_TOKEN": ADMIN_TOKEN,
        "ABSTRACTOR_ENVIRONMENT": "development",
        "ABSTRACTOR_LOG_LEVEL": "DEBUG",
        "ABSTRACTOR_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "ABSTRACTOR_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "ABSTRACTOR_HTTP_BODY_IDLE_TIMEOUT_S": str(BODY_IDLE_TIMEOUT_S),
        "ABSTRACTOR_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "ABSTRACTOR_MAX_JSON_BODY_BYTES": str(MAX_JSON_BODY),
        "ABSTRACTOR_HTTP_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
        "ABSTRACTOR_MAX_DOCUMENT_BYTES": str(1024 * 1024),
    }
    with ServeProcess(env, log_path=tmp / "serve.log") as server:
        yield FrontDoor(server, tmp / "var", tmp / "serve.log")


@pytest.fixture(scope="module")
def tenant(front_door: FrontDoor) -> TenantKey:
    with httpx.Client(base_url=front_door.base_url, timeout=30) as client:
        return make_tenant(client, ADMIN_TOKEN)


def _head(path: str = "/v1/extractions", method: str = "POST", **headers: str) -> bytes:
    return request_head(method, path, {"Host": "127.0.0.1", **headers})


def _is_error(response: RawResponse | None, status: int, code: str) -> dict[str, object]:
    assert response is not None, "no response"
    assert response.status == status, (response.status, response.body)
    assert response.elapsed_s < SERVER_TIME_S, response.elapsed_s
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert response.headers.get("content-type") == "application/json"
    return body["error"]  # type: ignore[no-any-return]


def _still_serving(door: FrontDoor) -> None:
    assert door.server.proc is not None and door.server.proc.poll() is None
    assert httpx.get(f"{door.base_url}/healthz", timeout=5).status_code == 200


def test_a_slowloris_head_is_cut_at_the_header_timeout(front_door: FrontDoor) -> None:
    sock = open_socket(front_door.base_url)
    started = time.monotonic()
    head = _head(**{"X-Slow": MARKER * 20, "Content-Type": "application/json", "Content-Length": "2"})
    send_slowly(sock, head, every_s=0.05, until=started + HEADER_TIMEOUT_S + 2)
    error = _is_error(read_response(sock, started), 408, "request_timeout")
    assert error["details"] == {"limit": "http_header_timeout_s", "max": HEADER_TIMEOUT_S}
    assert closes_soon(sock)
    sock.close()
    _still_serving(front_door)


def test_a_silent_connection_is_closed(front_door: FrontDoor) -> None:
    sock = open_socket(front_door.base_url)
    started = time.monotonic()
    response = read_response(sock, started)
    _is_error(response, 408, "request_timeout")
    assert response is not None and response.elapsed_s >= HEADER_TIMEOUT_S * 0.9
    sock.close()


def test_keep_alive_does_not_reopen_the_door(front_door: FrontDoor) -> None:
    # One good request, then the next head a byte at a time on the same connection.
    sock = open_socket(front_door.base_url)
    sock.sendall(_head("/healthz", "GET"))
    first = read_response(sock, time.monotonic())
    assert first is not None and first.status == 200
    started = time.monotonic()
    send_slowly(sock, _head("/healthz", "GET", **{"X-Slow": "x" * 200}), every_s=0.05, until=started + 4)
    _is_error(read_response(sock, started), 408, "request_timeout")
    sock.close()


@pytest.mark.parametrize("where", ["declared", "chunked"])
def test_a_json_body_over_the_cap_is_refused_before_parsing(
    front_door: FrontDoor, tenant: TenantKey, where: str
) -> None:
    sock = open_socket(front_door.base_url)
    started = time.monotonic()
    auth = {"Authorization": f"Bearer {tenant.key}", "Content-Type": "application/json"}
    if where == "declared":  # 64 MiB announced, not one body byte sent
        sock.sendall(_head(**auth, **{"Content-Length": str(64 * 1024 * 1024)}))
    else:
        sock.sendall(_head(**auth, **{"Transfer-Encoding": "chunked"}))
        chunk = json.dumps({"schema_name": MARKER * 100}).encode()
        try:
            for _ in range(2 * MAX_JSON_BODY // len(chunk) + 2):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: that is the point
    error = _is_error(read_response(sock, started), 413, "too_large")
    assert error["details"] == {"limit": "max_json_body_bytes", "max": MAX_JSON_BODY}
    sock.close()
    _still_serving(front_door)


def test_a_large_json_body_through_a_client_is_refused(front_door: FrontDoor, tenant: TenantKey) -> None:
    body = json.dumps({"name": "big", "json_schema": {"type": "object", "description": MARKER * 20000}})
    started = time.monotonic()
    try:
        response = httpx.post(
            f"{front_door.base_url}/v1/schemas",
            content=body,
            headers={**tenant.headers, "Content-Type": "application/json"},
        )
    except httpx.TransportError:
        pytest.fail("the server must answer 413, not drop the connection mid-body")
    assert time.monotonic() - started < SERVER_TIME_S
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


@pytest.mark.parametrize("pace", ["stalled", "dripping"])
def test_a_slow_json_body_is_cut(front_door: FrontDoor, tenant: TenantKey, pace: str) -> None:
    sock = open_socket(front_door.base_url)
    body = json.dumps({"document_id": str(uuid.uuid4()), "schema_name": "nda", "x": MARKER}).encode()
    auth = {"Authorization": f"Bearer {tenant.key}", "Content-Type": "application/json"}
    sock.sendall(_head(**auth, **{"Content-Length": str(len(body))}))
    started = time.monotonic()
    if pace == "stalled":
        sock.sendall(body[:10])  # then nothing: the idle limit cuts it
        limit, expected = "http_body_idle_timeout_s", BODY_IDLE_TIMEOUT_S
    else:  # a byte every second: never idle for long, but the whole body is late
        send_slowly(sock, body, every_s=1.0, until=started + BODY_TIMEOUT_S + 0.5)
        limit, expected = "http_body_timeout_s", BODY_TIMEOUT_S
    error = _is_error(read_response(sock, started), 408, "request_timeout")
    assert error["details"] == {"limit": limit, "max": expected}
    sock.close()


def test_a_slow_upload_is_cut_and_nothing_is_stored(front_door: FrontDoor, tenant: TenantKey) -> None:
    boundary = "b" + uuid.uuid4().hex
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{MARKER}.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode() + f"{MARKER} patient note ".encode() * 10
    sock = open_socket(front_door.base_url)
    headers = {
        "Authorization": f"Bearer {tenant.key}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(start) + 10_000),
    }
    sock.sendall(_head("/v1/documents", **headers) + start)
    started = time.monotonic()
    _is_error(read_response(sock, started), 408, "request_timeout")
    sock.close()
    uploads = front_door.data_dir / "tmp" / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []
    _still_serving(front_door)


def test_too_many_connections_get_503_and_the_door_reopens(front_door: FrontDoor) -> None:
    held = [open_socket(front_door.base_url) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        extra = open_socket(front_door.base_url)
        started = time.monotonic()
        extra.sendall(_head("/healthz", "GET"))
        response = read_response(extra, started)
        error = _is_error(response, 503, "too_many_connections")
        assert error["details"] == {} and response is not None and response.headers.get("retry-after") == "1"
        extra.close()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    _still_serving(front_door)


def test_an_oversized_head_is_431_and_a_broken_one_400(front_door: FrontDoor) -> None:
    sock = open_socket(front_door.base_url)
    started = time.monotonic()
    try:
        sock.sendall(_head("/healthz", "GET", **{"X-Big": MARKER * (2 * MAX_HEADER_BYTES // len(MARKER))}))
    except (BrokenPipeError, ConnectionResetError):
        pass
    _is_error(read_response(sock, started), 431, "headers_too_large")
    sock.close()
    sock = open_socket(front_door.base_url)
    started = time.monotonic()
    sock.sendall(f"\x00\x01{MARKER} NOT HTTP\r\n\r\n".encode())
    error = _is_error(read_response(sock, started), 400, "invalid_http")
    assert MARKER not in json.dumps(error)
    sock.close()
    _still_serving(front_door)


ATTACKER_HOST = f"{MARKER.lower()}.attacker.example"


@pytest.mark.parametrize(
    "path", ["/v1/schemas/", "/v1/documents/", "/healthz/", "/docs", "/openapi.json", "/v1/extractions/x/"]
)
def test_a_forged_host_is_refused_and_never_reflected(front_door: FrontDoor, path: str) -> None:
    sock = open_socket(front_door.base_url)
    started = time.monotonic()
    sock.sendall(request_head("GET", path, {"Host": ATTACKER_HOST, "X-Forwarded-Host": ATTACKER_HOST}))
    response = read_response(sock, started)
    _is_error(response, 400, "invalid_host")
    assert response is not None and ATTACKER_HOST.encode() not in response.raw.lower()
    sock.close()


@pytest.mark.parametrize("path", ["/v1/schemas/", "/v1/documents/", "/healthz/", "/v1/admin/tenants/"])
def test_trailing_slashes_do_not_redirect(front_door: FrontDoor, path: str) -> None:
    # Starlette's slash redirect built its Location from the Host header; it is off.
    response = httpx.get(f"{front_door.base_url}{path}", headers={"Host": "localhost"}, follow_redirects=False)
    assert response.status_code == 404 and "location" not in response.headers
    assert response.json()["error"]["code"] == "not_found"


def test_hosts_a_developer_uses_are_served(front_door: FrontDoor) -> None:
    for host in ("localhost", f"localhost:{front_door.port}", "127.0.0.1", f"[::1]:{front_door.port}"):
        assert httpx.get(f"{front_door.base_url}/healthz", headers={"Host": host}).status_code == 200, host


def test_the_marker_never_reaches_what_the_process_wrote(front_door: FrontDoor, tenant: TenantKey) -> None:
    """Runs last: the marker went out in heads, bodies, file names and paths above; add the rest, then grep."""
    with httpx.Client(base_url=front_door.base_url, timeout=10) as client:
        client.get(f"/v1/extractions/{MARKER}?q={MARKER}", headers={"X-API-Key": MARKER, "User-Agent": MARKER})
        client.post("/v1/schemas", json={"name": MARKER.lower(), MARKER: 1}, headers=tenant.headers)
        client.get("/healthz", headers={"X-Request-ID": MARKER * 10, "Cookie": f"s={MARKER}"})
    _still_serving(front_door)
    log = front_door.log_path.read_text(encoding="utf-8", errors="replace")
    assert '"msg": "request"' in log  # the access log (DEBUG) really ran
    assert MARKER not in log and MARKER.lower() not in log.lower()
    with sqlite3.connect(front_door.data_dir / "abstractor.db") as db:
        rows = db.execute("SELECT * FROM audit_events").fetchall()
        documents = db.execute("SELECT count(*) FROM documents").fetchone()[0]
    assert rows and MARKER.lower() not in repr(rows).lower()
    assert documents == 0  # nothing of a refused upload was kept


def test_host_rules() -> None:
    rule = HostRule.parse(["localhost", "::1", "*.corp.example", "10.42.0.0/16", "API.Example."])
    allowed = ["localhost", "LOCALHOST:8000", "[::1]:8000", "a.corp.example", "b.a.corp.example:443"]
    allowed += ["10.42.7.9:8000", "api.example", "api.example."]
    refused = ["corp.example", "evilcorp.example", "10.43.0.1", "[::2]", "", "localhost.attacker.example", "[::1"]
    assert [h for h in allowed if not rule.allows(h)] == []
    assert [h for h in refused if rule.allows(h)] == []
    assert not rule.allows(None) and HostRule.parse(["*"]).allows("anything")
    with pytest.raises(ValueError):
        Settings(_env_file=None, allowed_hosts="localhost,10.0.0.0/99")  # type: ignore[call-arg]


def test_abstractor_api_has_the_same_front_door(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABSTRACTOR_")}
    env.update(
        {
            "ABSTRACTOR_DATA_DIR": str(tmp_path / "var"),
            "ABSTRACTOR_ENVIRONMENT": "test",
            "ABSTRACTOR_HTTP_HEADER_TIMEOUT_S": "1",
            "ABSTRACTOR_MAX_JSON_BODY_BYTES": "2048",
        }
    )
    cli = [sys.executable, "-m", "service.cli"]
    subprocess.run([*cli, "migrate"], cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
    port = free_port()
    proc = subprocess.Popen(
        [*cli, "api", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url, timeout=120, proc=proc)
        sock = open_socket(base_url)
        started = time.monotonic()
        send_slowly(sock, _head("/healthz", "GET"), every_s=0.05, until=started + 3)
        _is_error(read_response(sock, started), 408, "request_timeout")
        sock.close()
        sock = open_socket(base_url)
        started = time.monotonic()
        sock.sendall(_head(**{"Content-Type": "application/json", "Content-Length": "4096"}))
        _is_error(read_response(sock, started), 413, "too_large")
        sock.close()
        forged = httpx.get(f"{base_url}/v1/schemas/", headers={"Host": ATTACKER_HOST})
        assert forged.status_code == 400 and ATTACKER_HOST not in forged.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
