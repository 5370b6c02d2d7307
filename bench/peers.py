"""Side by side with what a user would pick instead: Abstractor, llama.cpp's own JSON-schema grammar, langextract.

Run: .venv/bin/python -m bench.peers [--kleister 10] [--aci 10] [--seed 14]
         [--systems abstractor,llamacpp_grammar,langextract] [--timeout 3600] [--predictions FILE]

`--predictions FILE` keeps every outcome as a JSON line and resumes: an outcome already in the file (same
system, dataset and document) is read back rather than run again, so a cut run, or one system run at a time
(`--systems langextract`, later `--systems abstractor`), ends in the same table.

On the same documents (Kleister-NDA train PDFs and ACI-Bench train notes, drawn with a fixed seed) and
the same embedded GGUF, one system after another:

- `abstractor`: `read_document` + `extract_document` with the embedded `LlamaCppEngine` and the built-in
  schema (`nda`, `clinical_note`), default pipeline options;
- `llamacpp_grammar`: the whole document (truncated to fit the context with room for the answer) and
  the schema in one `create_chat_completion` with `response_format={"type": "json_object", "schema": ...}`,
  i.e. llama.cpp's GBNF grammar sampler, behind a short instruction prompt;
- `langextract`: google's langextract in its own virtual environment (`bench/setup-langextract`), with
  its OpenAI-compatible provider against `python -m llama_cpp.server` serving the same GGUF, and a
  few-shot example per schema; its extractions are mapped onto our schemas' fields.

All are scored by our own scorers. Progress goes to stderr (names, counts, timings only); stdout gets
one table and, last, one `peers <dataset> <system> micro_f1=<x> seconds_per_page=<y>` line per row.
A system that fails on a document scores it as empty and counts a failure; the run never aborts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.peer_grammar import LlamaCppGrammarSystem
from bench.peer_langextract import LangExtractSystem
from bench.peer_report import format_table, format_tokens, summarize, summary_lines
from bench.peer_types import (
    DATASET_SCHEMA,
    N_CTX,
    ROOT,
    SYSTEMS,
    Answer,
    Item,
    Outcome,
    System,
    error_code,
    evaluation,
    load_items,
)

# --- the systems ------------------------------------------------------------------------------------------


class AbstractorSystem:
    """Abstractor end to end: the embedded `LlamaCppEngine`, the built-in schema, default options."""

    name = "abstractor"

    def __init__(self) -> None:
        from workers.engines.llamacpp import LlamaCppEngine

        self._engine: Any = LlamaCppEngine(cache_dir=ROOT / "var/models", n_ctx=N_CTX)
        self.threads = int(self._engine.info.extra["n_threads"])

    def extract(self, doc: Any, schema_name: str, deadline: float) -> Answer:
        """`extract_document` with default options; the deadline stops new engine calls past it."""
        from schemas.registry import get_schema
        from workers.pipeline.run import PipelineOptions, extract_document

        record = extract_document(doc, get_schema(schema_name), self._engine, PipelineOptions(deadline=deadline))
        timings = record["timings"]
        return Answer(record["data"], int(timings["prompt_tokens"]), int(timings["completion_tokens"]))

    def close(self) -> None:
        """Free the model before the next system loads its own copy."""
        del self._engine
        gc.collect()


def open_system(name: str, model_path: Path, threads: int | None, options: argparse.Namespace) -> System:
    """Load one system; the peers use Abstractor's thread count (and, without it, every core as it does)."""
    from workers.engines.llamacpp import available_cores
    from workers.pipeline.run import PipelineOptions

    # Every model answer gets Abstractor's answer budget per request (its first try on a chunk).
    answer_tokens = PipelineOptions().max_new_tokens
    n_threads = threads or available_cores()
    if name == "abstractor":
        return AbstractorSystem()
    if name == "llamacpp_grammar":
        return LlamaCppGrammarSystem(model_path, n_threads, answer_tokens)
    if name == "langextract":
        return LangExtractSystem(model_path, n_threads, answer_tokens, options.request_timeout)
    raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")


# --- running and scoring ----------------------------------------------------------------------------------


def load_average() -> float | None:
    """The 1-minute load average, where the platform has one."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def run_one(system: System, item: Item, timeout_s: float) -> Outcome:
    """Read and extract one document, timed; any failure becomes an empty prediction with its code."""
    outcome = _run_one(system, item, timeout_s)
    outcome.load = load_average()
    return outcome


def _run_one(system: System, item: Item, timeout_s: float) -> Outcome:
    from workers.documents import read_document

    outcome = Outcome(system.name, item.dataset, item.name)
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    try:
        doc = read_document(item.source)
        outcome.pages, outcome.chars = len(doc.pages), len(doc.text)
        read_s = time.perf_counter() - started
        answer = system.extract(doc, DATASET_SCHEMA[item.dataset], deadline)
    except Exception as e:  # noqa: BLE001 - a failed document is scored as empty, never aborts the run
        outcome.error = error_code(e)
        outcome.seconds = time.perf_counter() - started
        return outcome
    elapsed = time.perf_counter() - started
    outcome.seconds = (read_s + answer.model_seconds) if answer.model_seconds is not None else elapsed
    outcome.record = answer.record
    outcome.prompt_tokens = answer.prompt_tokens
    outcome.completion_tokens = answer.completion_tokens
    outcome.truncated = answer.truncated
    outcome.chars_sent = answer.chars_sent
    outcome.requests = answer.requests
    outcome.cut_answers = answer.cut_answers
    return outcome


def outcome_key(outcome: Outcome) -> tuple[str, str, str]:
    """What identifies an outcome in a predictions file: system, dataset, document."""
    return (outcome.system, outcome.dataset, outcome.name)


def read_predictions(path: Path | None) -> dict[tuple[str, str, str], Outcome]:
    """Outcomes kept by an earlier run; a line cut by a kill (the last one) is skipped, the rest must parse."""
    if path is None or not path.is_file():
        return {}
    kept: dict[tuple[str, str, str], Outcome] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        try:
            outcome = Outcome(**json.loads(line))
        except (json.JSONDecodeError, TypeError):
            if i == len(lines) - 1:
                break
            raise
        kept[outcome_key(outcome)] = outcome
    return kept


def failed_outcomes(name: str, items: Sequence[Item], code: str) -> list[Outcome]:
    """Every document counted as failed, for a system that could not even be loaded."""
    return [Outcome(name, item.dataset, item.name, error=code) for item in items]


def progress_line(index: int, total: int, outcome: Outcome) -> str:
    """A stderr progress line: names, counts and timings only, never document content or values."""
    status = "ok" if outcome.error is None else f"failed={outcome.error}"
    tokens = f"prompt={format_tokens(outcome.prompt_tokens)} gen={format_tokens(outcome.completion_tokens)}"
    cut = " truncated" if outcome.truncated else ""
    load = f" load={outcome.load:.1f}" if outcome.load is not None else ""
    return (
        f"[{outcome.dataset} {index}/{total}] {outcome.system} {outcome.name[:16]} pages={outcome.pages} "
        f"seconds={outcome.seconds:.1f} {tokens}{cut}{load} {status}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; `--systems` is a comma-separated subset of SYSTEMS, run in the order given."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kleister", type=int, default=10, help="Kleister-NDA train PDFs (0: none).")
    parser.add_argument("--aci", type=int, default=10, help="ACI-Bench train notes (0: none).")
    parser.add_argument("--seed", type=int, default=14, help="Seed of the document draw.")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="Comma-separated, from: " + ", ".join(SYSTEMS))
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="Seconds allowed per system and document (generous: the machine is shared, and nice'd runs crawl).",
    )
    parser.add_argument("--request-timeout", type=float, default=1800.0, help="Seconds per langextract request.")
    parser.add_argument("--predictions", type=Path, help="Write every outcome (records included) as JSON lines.")
    args = parser.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    return args


def log(message: str) -> None:
    """One progress line on stderr, flushed (the run is long and often piped through tee)."""
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Run every chosen system on every chosen document, then print the table and the summary lines."""
    from workers.engines.model_files import ensure_embedded_model

    args = parse_args(argv)
    started = time.perf_counter()
    ev = evaluation()
    datasets = {
        d: load_items(ev, d, n, args.seed) for d, n in (("kleister", args.kleister), ("aci", args.aci)) if n > 0
    }
    model_path = ensure_embedded_model(ROOT / "var/models")
    log(f"model={model_path.name} n_ctx={N_CTX} seed={args.seed} systems={','.join(args.systems)}")
    for d, items in datasets.items():
        log(f"{d}: {' '.join(item.name[:12] for item in items)}")
    outcomes: dict[tuple[str, str], list[Outcome]] = {}
    kept = read_predictions(args.predictions)
    if kept:
        log(f"predictions: {len(kept)} outcomes kept from {args.predictions.name}")
    if args.predictions:
        # Rewritten whole from what was kept, so a line cut by a kill never sits before new ones.
        args.predictions.write_text("".join(json.dumps(o.__dict__, ensure_ascii=False) + "\n" for o in kept.values()))
    predictions = args.predictions.open("a", encoding="utf-8") if args.predictions else None
    threads: int | None = None
    for name in args.systems:
        todo = {d: [i for i in items if (name, d, i.name) not in kept] for d, items in datasets.items()}
        for d, items in datasets.items():
            outcomes[(d, name)] = [kept[(name, d, i.name)] for i in items if (name, d, i.name) in kept]
        if not any(todo.values()):
            log(f"{name}: every document kept from the predictions file")
            continue
        t0 = time.perf_counter()
        try:
            system = open_system(name, model_path, threads, args)
        except Exception as e:  # noqa: BLE001 - a system that cannot start fails every document
            log(f"{name}: could not start ({error_code(e)})")
            for d, items in todo.items():
                outcomes[(d, name)] += failed_outcomes(name, items, f"start_{error_code(e)}")
            continue
        threads = threads or system.threads
        log(f"{name}: loaded in {time.perf_counter() - t0:.1f} s, threads={system.threads}")
        try:
            for d, items in todo.items():
                done = outcomes[(d, name)]
                for item in items:
                    outcome = run_one(system, item, args.timeout)
                    done.append(outcome)
                    log(progress_line(len(done), len(datasets[d]), outcome))
                    if predictions:
                        predictions.write(json.dumps(outcome.__dict__, ensure_ascii=False) + "\n")
                        predictions.flush()
        finally:
            system.close()
        log(f"{name}: done in {time.perf_counter() - t0:.0f} s")
    if predictions:
        predictions.close()
    for (d, _), done in outcomes.items():  # the table reads outcomes in the documents' drawn order
        order = {item.name: k for k, item in enumerate(datasets[d])}
        done.sort(key=lambda o: order[o.name])
    summaries = [summarize(ev, items, outcomes[(d, name)]) for d, items in datasets.items() for name in args.systems]
    print(f"documents: kleister={args.kleister} aci={args.aci} seed={args.seed} model={model_path.name} n_ctx={N_CTX}")
    shown = threads if threads is not None else "n/a (every outcome kept)"
    print(f"threads={shown} wall_seconds={time.perf_counter() - started:.0f}")
    for row in format_table(summaries):
        print(row)
    for row in summary_lines(summaries):
        print(row)


if __name__ == "__main__":
    main()
