"""Files on disk: `abstractor serve` keeps the store, blobs and upload temp files under ABSTRACTOR_DATA_DIR,
folders 0700 and files 0600 (the SQLite database, its -wal and -shm included), whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.store.files import private_dir, private_file, private_sqlite
from tests.support.api import make_tenant, upload
from tests.support.servers import REPO, free_port, wait_until_up

ADMIN_TOKEN = "dev-admin-token"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _serve(cwd: Path, data_dir: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABSTRACTOR_")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
            "ABSTRACTOR_DATA_DIR": data_dir,
            "ABSTRACTOR_BLOB_DIR": "blobs",  # relative: under the data folder
            "ABSTRACTOR_ADMIN_TOKEN": ADMIN_TOKEN,
            "ABSTRACTOR_ENVIRONMENT": "development",
        }
    )
    port = free_port()
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        umask=0o022,  # the usual default: files would be 0644 and folders 0755 if we left it to the umask
    )
    return proc, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_serve_keeps_its_files_under_the_data_dir_and_private(tmp_path: Path, where: str) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    data = tmp_path / "deep" / "data" if where == "absolute" else cwd / "rel" / "data"
    proc, base_url = _serve(cwd, str(data) if where == "absolute" else "rel/data", tmp_path)
    try:
        wait_until_up(base_url, timeout=120, proc=proc)
        with httpx.Client(base_url=base_url, timeout=30) as client:
            tenant = make_tenant(client, ADMIN_TOKEN)
            upload(client, tenant, f"Private note {uuid.uuid4().hex}.\n".encode())
        database = data / "abstractor.db"
        assert database.is_file(), sorted(p.name for p in data.iterdir())
        files = [database, database.with_name("abstractor.db-wal"), database.with_name("abstractor.db-shm")]
        blobs = [p for p in (data / "blobs").rglob("*") if p.is_file()]
        assert blobs, "the document went to the blob folder"
        for path in [*files, *blobs]:
            assert _mode(path) == 0o600, (path, oct(_mode(path)))
        folders = [data, data / "tmp", data / "tmp" / "uploads", data / "blobs"]
        folders += [p for p in (data / "blobs").rglob("*") if p.is_dir()]
        for folder in folders:
            assert _mode(folder) == 0o700, (folder, oct(_mode(folder)))
        if where == "absolute":
            assert _mode(tmp_path / "deep") == 0o700  # parents we made are ours too
            assert list(cwd.iterdir()) == []  # nothing in the working directory (no ./var)
        else:
            assert [p.name for p in cwd.iterdir()] == ["rel"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_default_store_follows_the_data_dir() -> None:
    s = Settings(_env_file=None, data_dir=Path("/srv/abstractor"))  # type: ignore[call-arg]
    assert s.database_url == "sqlite:////srv/abstractor/abstractor.db"
    assert Settings(_env_file=None).database_url == "sqlite:///var/abstractor.db"  # type: ignore[call-arg]
    explicit = Settings(_env_file=None, data_dir=Path("/x"), database_url="postgresql+psycopg://h/db")  # type: ignore[call-arg]
    assert explicit.database_url == "postgresql+psycopg://h/db"
    blobs = Settings(_env_file=None, data_dir=Path("/x"), blob_dir=Path("b"))  # type: ignore[call-arg]
    assert blobs.blob_dir == Path("/x/b")
    absolute = Settings(_env_file=None, data_dir=Path("/x"), blob_dir=Path("/elsewhere"))  # type: ignore[call-arg]
    assert absolute.blob_dir == Path("/elsewhere")


def test_private_paths_ignore_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        folder = private_dir(tmp_path / "a" / "b")
        file = private_file(tmp_path / "c" / "f")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a") == _mode(folder) == _mode(tmp_path / "c") == 0o700
    assert _mode(file) == 0o600


def test_an_existing_database_of_ours_is_tightened(tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    for path in (database, tmp_path / "old.db-wal", tmp_path / "old.db-shm"):
        path.write_bytes(b"")
        path.chmod(0o644)
    private_sqlite(database)
    assert {_mode(p) for p in tmp_path.iterdir()} == {0o600}
