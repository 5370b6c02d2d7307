"""End-to-end seconds per page on the embedded default: read, chunk, generate, merge, ground.

Run: .venv/bin/python -m bench.end_to_end [--limit 5] [--schema nda] [--flash-attn both|on|off] [DIR]
Prints one line per document and configuration, one summary line per configuration, then (with both)
the ratio of flash attention's seconds per page to the plain attention's, measured in the same run.
The last line is `seconds_per_page=<x>` of the default configuration (flash attention on).
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import dataclass
from pathlib import Path

from schemas.registry import get_schema
from workers.documents import read_document
from workers.engines.llamacpp import LlamaCppEngine
from workers.pipeline.run import PipelineOptions, extract_document

DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/kleister-nda/train"


@dataclass
class _Totals:
    pages: int = 0
    seconds: float = 0.0
    prompt: int = 0
    completion: int = 0

    @property
    def seconds_per_page(self) -> float:
        return self.seconds / self.pages

    @property
    def prompt_per_s(self) -> float:
        return self.prompt / self.seconds

    def line(self, label: str) -> str:
        return (
            f"{label}: pages={self.pages} seconds={self.seconds:.1f} prompt_tokens={self.prompt} "
            f"completion_tokens={self.completion} prompt_tokens_per_s={self.prompt_per_s:.1f} "
            f"seconds_per_page={self.seconds_per_page:.2f}"
        )


def _run(pdfs: list[Path], schema: str, backend: str, flash_attn: bool) -> _Totals:
    spec = get_schema(schema)
    started = time.perf_counter()
    engine = LlamaCppEngine(grammar_backend=backend, flash_attn=flash_attn)
    label = f"flash_attn={'on' if flash_attn else 'off'}"
    print(f"{label} engine_load_s={time.perf_counter() - started:.2f} threads={engine.info.extra.get('n_threads')}")
    totals = _Totals()
    for pdf in pdfs:
        t0 = time.perf_counter()
        doc = read_document(pdf)
        record = extract_document(doc, spec, engine, PipelineOptions())
        dt = time.perf_counter() - t0
        t = record["timings"]
        totals.pages += len(doc.pages)
        totals.seconds += dt
        totals.prompt += t["prompt_tokens"]
        totals.completion += t["completion_tokens"]
        print(
            f"{label} {pdf.name[:16]} pages={len(doc.pages):3d} chunks={record['document']['chunks']:2d} "
            f"seconds={dt:6.1f} prompt_tokens={t['prompt_tokens']:6d} completion_tokens={t['completion_tokens']:4d}"
        )
    del engine
    gc.collect()  # free the model before the next configuration loads its own
    print(totals.line(label))
    return totals


def main() -> None:
    """Extract the first `--limit` PDFs of a folder per configuration; report seconds per page and tokens."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--schema", default="nda")
    parser.add_argument("--backend", default="llguidance")
    parser.add_argument("--flash-attn", choices=("both", "on", "off"), default="both")
    args = parser.parse_args()
    pdfs = sorted(args.directory.glob("*.pdf"))[: args.limit]
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.flash_attn]
    results = {mode: _run(pdfs, args.schema, args.backend, mode) for mode in modes}
    if len(results) == 2:
        off, on = results[False], results[True]
        print(
            f"flash_attn on/off: seconds_per_page ratio={on.seconds_per_page / off.seconds_per_page:.2f} "
            f"prompt_tokens_per_s ratio={on.prompt_per_s / off.prompt_per_s:.2f}"
        )
    print(f"seconds_per_page={results[modes[-1]].seconds_per_page:.2f}")


if __name__ == "__main__":
    main()
