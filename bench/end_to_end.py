"""End-to-end seconds per page on the embedded default: read, chunk, generate, merge, ground.

Run: .venv/bin/python -m bench.end_to_end [--limit 5] [--schema nda] [DIR]
Prints one line per document and a summary line `seconds_per_page=<x>`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from schemas.registry import get_schema
from workers.documents import read_document
from workers.engines.llamacpp import LlamaCppEngine
from workers.pipeline.run import PipelineOptions, extract_document

DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/kleister-nda/train"


def main() -> None:
    """Extract the first `--limit` PDFs of a folder and report seconds per page and tokens."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--schema", default="nda")
    parser.add_argument("--backend", default="llguidance")
    args = parser.parse_args()
    spec = get_schema(args.schema)
    started = time.perf_counter()
    engine = LlamaCppEngine(grammar_backend=args.backend)
    print(f"engine_load_s={time.perf_counter() - started:.2f} threads={engine.info.extra.get('n_threads')}")
    pages = seconds = prompt = completion = 0.0
    for pdf in sorted(args.directory.glob("*.pdf"))[: args.limit]:
        t0 = time.perf_counter()
        doc = read_document(pdf)
        record = extract_document(doc, spec, engine, PipelineOptions())
        dt = time.perf_counter() - t0
        t = record["timings"]
        pages += len(doc.pages)
        seconds += dt
        prompt += t["prompt_tokens"]
        completion += t["completion_tokens"]
        print(
            f"{pdf.name[:16]} pages={len(doc.pages):3d} chunks={record['document']['chunks']:2d} "
            f"seconds={dt:6.1f} prompt_tokens={t['prompt_tokens']:6d} completion_tokens={t['completion_tokens']:4d}"
        )
    print(f"documents={args.limit} pages={pages:.0f} seconds={seconds:.1f} prompt_tokens={prompt:.0f}")
    print(f"prompt_tokens_per_s={prompt / seconds:.1f} completion_tokens={completion:.0f}")
    print(f"seconds_per_page={seconds / pages:.2f}")


if __name__ == "__main__":
    main()
