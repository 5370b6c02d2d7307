"""Two llama.cpp builds side by side on the same documents: prompt tokens/s, decode tokens/s, seconds per page.

Why: a build choice (AVX-512 against AVX2, `scripts/setup-env`) is judged by what it does to the embedded
engine on our own prompts, not by a kernel benchmark. The machine may be shared with other work, whose
load drifts; so the two interpreters' runs alternate (A B A B ...), each run is a fresh child process, and
each figure is the median of its side's runs, beside the ratio B/A.

Run: .venv/bin/python -m bench.build_speed --a OTHER/.venv/bin/python [--b .venv/bin/python]
     [--limit 3] [--rounds 2] [--threads N] [DIR]
Each child runs this checkout's code (PYTHONPATH) on its own interpreter's llama-cpp-python, on the first
`--limit` PDFs of DIR: the first chunk's prompt evaluated from an empty cache (prompt tokens/s), 32 tokens
decoded after it, then `extract_document` on every document (seconds per page; the end-to-end prompt
tokens/s of `bench.end_to_end`), the grammar backend warmed first. Nothing of the documents is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT.parent / "shared/data/kleister-nda/train"
DECODE_TOKENS = 32

# (label, key in a child's figures, whether higher is better: the speed-up is B/A, or A/B for seconds)
ROWS = (
    ("prompt eval, tokens/s", "pp_tokens_per_s", True),
    ("decode, tokens/s", "decode_tokens_per_s", True),
    ("end to end, prompt tokens/s", "e2e_prompt_tokens_per_s", True),
    ("end to end, seconds per page", "seconds_per_page", False),
)


def _features() -> str:
    """The instruction sets the loaded llama.cpp was compiled with, e.g. `AVX2,AVX512,AVX512_VNNI`."""
    from workers.engines.llamacpp import build_features

    return ",".join(f for f in build_features() if "AVX" in f or "AMX" in f)


def child(directory: Path, limit: int, schema_name: str, threads: int | None) -> dict[str, Any]:
    """One run on this interpreter's build; returns its figures (printed as one JSON line)."""
    import llama_cpp

    from schemas.registry import get_schema
    from workers.documents import read_document
    from workers.engines.llamacpp import LlamaCppEngine, available_cores
    from workers.engines.model_files import ensure_embedded_model
    from workers.engines.protocol import GenerationRequest
    from workers.pipeline.run import PipelineOptions, extract_document, plan_requests

    spec = get_schema(schema_name)
    options = PipelineOptions()
    engine = LlamaCppEngine(cache_dir=ROOT / "var/models", n_threads=threads)
    docs = [read_document(pdf) for pdf in sorted(directory.glob("*.pdf"))[:limit]]
    firsts = [plan_requests(doc, spec, engine, options)[1][0] for doc in docs]
    prompts = ["\n".join(m.content for m in request.messages) for request in firsts]
    threads = threads or available_cores()
    raw: Any = llama_cpp.Llama(
        model_path=str(ensure_embedded_model(ROOT / "var/models")),
        n_ctx=engine.context_tokens,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
        seed=0,
    )
    raw.eval(raw.tokenize(b"warm up: weights repacked, threads started"))
    pp_tokens = decode_tokens = 0
    pp_s = decode_s = 0.0
    for prompt in prompts:
        tokens = raw.tokenize(prompt.encode("utf-8"))
        raw.reset()
        t0 = time.perf_counter()
        raw.eval(tokens)
        t1 = time.perf_counter()
        # The prompt is in the cache: what remains is decoding (one prompt token is evaluated again).
        out: Any = raw.create_completion(tokens, max_tokens=DECODE_TOKENS, temperature=0.0)
        t2 = time.perf_counter()
        pp_tokens += len(tokens)
        pp_s += t1 - t0
        decode_tokens += int(out["usage"]["completion_tokens"])
        decode_s += t2 - t1
    del raw
    # The grammar backend reads the vocabulary on the first request: once per process, not per page.
    engine.generate([GenerationRequest(firsts[0].messages, firsts[0].json_schema, max_tokens=1)])
    pages = 0
    seconds = 0.0
    prompt_tokens = 0
    for doc in docs:
        t0 = time.perf_counter()
        record = extract_document(doc, spec, engine, options)
        seconds += time.perf_counter() - t0
        pages += len(doc.pages)
        prompt_tokens += int(record["timings"]["prompt_tokens"])
    return {
        "features": _features(),
        "threads": threads,
        "documents": len(docs),
        "pages": pages,
        "pp_tokens_per_s": pp_tokens / pp_s,
        "decode_tokens_per_s": decode_tokens / decode_s,
        "e2e_prompt_tokens_per_s": prompt_tokens / seconds,
        "seconds_per_page": seconds / pages,
    }


def _run(python: str, args: argparse.Namespace) -> dict[str, Any]:
    """One child on `python`; its last stdout line is its figures. A failed child fails the benchmark."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [python, "-m", "bench.build_speed", "--child", "--limit", str(args.limit), str(args.directory)]
    command += ["--schema", args.schema] + (["--threads", str(args.threads)] if args.threads else [])
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-2000:])
        raise SystemExit(f"the run on {python} failed with exit status {done.returncode}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    """Alternate the two interpreters' runs and print every run, the medians side by side, and B/A."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--a", help="interpreter of the baseline build (e.g. another checkout's .venv/bin/python)")
    parser.add_argument("--b", default=str(ROOT / ".venv/bin/python"), help="interpreter of the build judged")
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--schema", default="nda")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: the cores this process may use)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.directory, args.limit, args.schema, args.threads)))
        return
    if not args.a:
        parser.error("--a (the baseline's interpreter) is required")
    runs: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    for round_no in range(1, args.rounds + 1):
        for side, python in (("A", args.a), ("B", args.b)):
            figures = _run(python, args)
            runs[side].append(figures)
            shown = " ".join(f"{key}={figures[key]:.2f}" for _, key, _ in ROWS)
            print(f"round={round_no} side={side} features={figures['features']} {shown}", flush=True)
    first = runs["A"][0]
    print(f"documents={first['documents']} pages={first['pages']} threads={first['threads']} rounds={args.rounds}")
    print(f"A={args.a} [{first['features']}]")
    print(f"B={args.b} [{runs['B'][0]['features']}]")
    print(f"{'':30s} {'A':>9s} {'B':>9s} {'B/A':>7s} {'speed-up':>9s}")
    for label, key, higher_is_better in ROWS:
        a = statistics.median(r[key] for r in runs["A"])
        b = statistics.median(r[key] for r in runs["B"])
        speedup = b / a if higher_is_better else a / b
        print(f"{label:30s} {a:9.2f} {b:9.2f} {b / a:7.3f} {speedup:8.3f}x")


if __name__ == "__main__":
    main()
