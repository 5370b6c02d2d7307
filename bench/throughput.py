"""Throughput against one vLLM server: Abstractor end to end beside vLLM's raw speed on the same prompts.

Run (CPU, a server started here):  .venv/bin/python -m bench.throughput [--limit 20] [--in-flight 8]
Run (a GPU host's running server): .venv/bin/python -m bench.throughput --base-url http://gpu:8000/v1

(a) Abstractor: the production processes for real — `abstractor api` (the outbox relay inside it) over a
    throwaway Postgres database, Redis, and one `abstractor worker` (ENGINE=openai, the threads pool) —
    take a batch of documents submitted over HTTP to stored records. The clock runs from the batch's
    creation to its last job's end, by the store's own timestamps.
(b) Raw vLLM: the very requests the pipeline sent (rebuilt by `workers.pipeline.run.plan_requests`, the
    function the worker uses), each asked for exactly the tokens it generated (`ignore_eos`, no grammar),
    with the same number in flight, straight to the server.

The prefix cache is emptied before each run (vLLM's dev-mode endpoint, which the CPU server started here
has); where the server lacks it, the raw prompts carry a run nonce instead so neither run reuses the
other's cache. Prints both runs, then `ratio=<abstractor tok/s ÷ raw tok/s> docs_per_hour=<abstractor>`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.vllm_cpu import REPO, VllmServer, load_env
from schemas.registry import get_schema
from workers.documents import read_document
from workers.engines.openai_compat import OpenAICompatEngine
from workers.engines.vllm_release import SERVED_MODEL_NAME
from workers.pipeline.run import PipelineOptions, plan_requests

SHARED = REPO.parent / "shared" / "data"
ADMIN_TOKEN = "bench-" + secrets.token_hex(16)


def _documents(kind: str, limit: int, seed: int) -> list[tuple[str, bytes]]:
    """(name, bytes) of `limit` documents drawn with a fixed seed: ACI-Bench notes or Kleister-NDA PDFs."""
    if kind == "aci":
        from evaluation import load_aci

        items = [(f"{eid}.txt", text.encode("utf-8")) for eid, text, _ in load_aci(SHARED / "aci-bench")]
    else:
        items = [(p.name, p.read_bytes()) for p in sorted((SHARED / "kleister-nda" / "train").glob("*.pdf"))]
    random.Random(seed).shuffle(items)
    return items[:limit]


@contextlib.contextmanager
def _database(admin_url: str) -> Iterator[str]:
    """A fresh Postgres database, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"abstractor_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout:g} s")


def _reset_prefix_cache(root_url: str) -> bool:
    try:
        return httpx.post(f"{root_url}/reset_prefix_cache", timeout=60.0).status_code == 200
    except httpx.TransportError:
        return False


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def run_abstractor(
    base_url: str, docs: list[tuple[str, bytes]], schema: str, in_flight: int, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Submit the documents as one batch through the real API and worker; the records and the timings."""
    port = int(args.api_port)
    with _database(args.postgres_admin_url) as database_url:
        env = {
            **os.environ,
            "ABSTRACTOR_ENVIRONMENT": "development",
            "ABSTRACTOR_DATA_DIR": str(work / "data"),
            "ABSTRACTOR_DATABASE_URL": database_url,
            "ABSTRACTOR_BROKER_URL": args.broker_url,
            "ABSTRACTOR_ADMIN_TOKEN": ADMIN_TOKEN,
            "ABSTRACTOR_ENGINE": "openai",
            "ABSTRACTOR_OPENAI_BASE_URL": base_url,
            "ABSTRACTOR_OPENAI_MODEL": args.served_model,
            "ABSTRACTOR_WORKER_CONCURRENCY": str(in_flight),
            "ABSTRACTOR_ENGINE_CONCURRENCY": str(in_flight),
            "ABSTRACTOR_REQUEST_TIMEOUT_S": "1800",
            "ABSTRACTOR_OCR_ENABLED": "false",
            "ABSTRACTOR_LOG_LEVEL": "WARNING",
        }
        subprocess.run([sys.executable, "-m", "service.cli", "migrate"], cwd=REPO, env=env, check=True)
        import redis

        redis.Redis.from_url(args.broker_url).flushdb()
        api = _process(["api", "--host", "127.0.0.1", "--port", str(port)], env, work / "api.log")
        worker = _process(["worker"], env, work / "worker.log")
        api_url = f"http://127.0.0.1:{port}"
        try:
            _wait_http(f"{api_url}/healthz", api)
            with httpx.Client(base_url=api_url, timeout=120.0) as client:
                admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
                tenant = client.post("/v1/admin/tenants", json={"name": "bench"}, headers=admin).json()["id"]
                key = client.post(f"/v1/admin/tenants/{tenant}/keys", json={"name": "bench"}, headers=admin).json()
                auth = {"Authorization": f"Bearer {key['key']}"}
                ids = []
                for name, content in docs:
                    response = client.post("/v1/documents", files={"file": (name, content)}, headers=auth)
                    response.raise_for_status()
                    ids.append(response.json()["id"])
                batch = client.post(
                    "/v1/batches", json={"document_ids": ids, "schema_name": schema, "name": "bench"}, headers=auth
                )
                batch.raise_for_status()
                batch_id = batch.json()["id"]
                while not (state := client.get(f"/v1/batches/{batch_id}", headers=auth).json())["done"]:
                    if worker.poll() is not None:
                        raise RuntimeError(f"the worker exited with {worker.returncode}; see {work / 'worker.log'}")
                    time.sleep(1.0)
                rows = [
                    json.loads(line)
                    for line in client.get(f"/v1/batches/{batch_id}/results", params={"format": "jsonl"}, headers=auth)
                    .text.strip()
                    .splitlines()
                ]
                jobs = [client.get(f"/v1/extractions/{row['job_id']}", headers=auth).json() for row in rows]
        finally:
            for proc in (worker, api):
                proc.terminate()
            for proc in (worker, api):
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    by_id = dict(zip(ids, (content for _, content in docs), strict=True))
    contents = [by_id[row["document_id"]] for row in rows]
    succeeded = [j for j in jobs if j["status"] == "succeeded"]
    end = max(_stamp(j["updated_at"]) for j in jobs)
    seconds = end - _stamp(state["created_at"])
    return {
        "documents": len(jobs),
        "succeeded": len(succeeded),
        "seconds": seconds,
        "generated_tokens": sum(int(j["timings"]["completion_tokens"]) for j in succeeded),
        "prompt_tokens": sum(int(j["timings"]["prompt_tokens"]) for j in succeeded),
        "jobs": jobs,
        "contents": contents,
    }


async def _raw(base_url: str, model: str, plans: list[tuple[Any, int]], in_flight: int, nonce: str) -> dict[str, Any]:
    gate = asyncio.Semaphore(in_flight)
    generated = prompt = 0

    async def one(client: httpx.AsyncClient, request: Any, tokens: int) -> None:
        nonlocal generated, prompt
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if nonce:
            messages[0]["content"] = f"[{nonce}] " + messages[0]["content"]
        body = {
            "model": model,
            "messages": messages,
            "max_tokens": max(1, tokens),
            "temperature": 0.0,
            "ignore_eos": True,
        }
        async with gate:
            response = await client.post(f"{base_url}/chat/completions", json=body)
        response.raise_for_status()
        usage = response.json()["usage"]
        generated += int(usage["completion_tokens"])
        prompt += int(usage["prompt_tokens"])

    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(timeout=1800.0, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(one(client, request, tokens) for request, tokens in plans))
        seconds = time.perf_counter() - started
    return {"requests": len(plans), "seconds": seconds, "generated_tokens": generated, "prompt_tokens": prompt}


def raw_plans(base_url: str, model: str, schema: str, run: dict[str, Any]) -> list[tuple[Any, int]]:
    """Every request the worker sent (retries too), rebuilt, with the tokens it generated."""
    engine = OpenAICompatEngine(base_url=base_url, model=model, timeout_s=600.0)
    spec = get_schema(schema)
    plans: list[tuple[Any, int]] = []
    try:
        for job, content in zip(run["jobs"], run["contents"], strict=True):
            if job["status"] != "succeeded":
                continue
            media = "application/pdf" if content.startswith(b"%PDF") else "text/plain"
            doc = read_document(content, media_type=media)
            _, requests = plan_requests(doc, spec, engine, PipelineOptions())
            for chunk, _prompt_tokens, completion in job["timings"]["requests"]:
                plans.append((requests[chunk], int(completion)))
    finally:
        engine.close()
    return plans


def main() -> None:
    """Both runs, side by side, then the ratio line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", help="a running vLLM's /v1 URL; default: start the CPU build here")
    parser.add_argument("--served-model", default=SERVED_MODEL_NAME)
    parser.add_argument("--documents", choices=("aci", "kleister"), default="aci")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--in-flight", type=int, default=8, help="jobs (and requests) in flight, both runs")
    parser.add_argument("--postgres-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--api-port", default="8790")
    args = parser.parse_args()
    schema = "clinical_note" if args.documents == "aci" else "nda"
    docs = _documents(args.documents, args.limit, args.seed)

    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-throughput-")))
        base_url = args.base_url
        if base_url is None:
            env = load_env()
            if env is None:
                raise SystemExit("no vLLM environment here: run `bash scripts/setup-vllm`, or pass --base-url")
            os.environ["VLLM_SERVER_DEV_MODE"] = "1"  # the prefix-cache reset endpoint
            server = stack.enter_context(VllmServer(env, log_path=work / "vllm.log"))
            base_url = server.base_url
        root = base_url.rstrip("/").removesuffix("/v1")
        resettable = _reset_prefix_cache(root)
        print(f"server={base_url} documents={len(docs)} ({args.documents}) in_flight={args.in_flight}", flush=True)
        ours = run_abstractor(base_url, docs, schema, args.in_flight, work, args)
        plans = raw_plans(base_url, args.served_model, schema, ours)
        nonce = "" if resettable and _reset_prefix_cache(root) else secrets.token_hex(4)
        raw = asyncio.run(_raw(base_url, args.served_model, plans, args.in_flight, nonce))

    ours_tps = ours["generated_tokens"] / ours["seconds"]
    raw_tps = raw["generated_tokens"] / raw["seconds"]
    docs_per_hour = ours["succeeded"] / ours["seconds"] * 3600
    print(
        f"abstractor end to end: documents={ours['documents']} succeeded={ours['succeeded']} "
        f"seconds={ours['seconds']:.1f} prompt_tokens={ours['prompt_tokens']} "
        f"generated_tokens={ours['generated_tokens']} tokens_per_s={ours_tps:.2f}"
    )
    print(
        f"raw vllm, same requests: requests={raw['requests']} seconds={raw['seconds']:.1f} "
        f"prompt_tokens={raw['prompt_tokens']} generated_tokens={raw['generated_tokens']} "
        f"tokens_per_s={raw_tps:.2f} prefix_cache={'reset' if not nonce else 'nonce'}"
    )
    print(f"ratio={ours_tps / raw_tps:.3f} docs_per_hour={docs_per_hour:.1f}")


if __name__ == "__main__":
    main()
