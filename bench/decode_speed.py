"""Decode speed of the embedded model with and without the grammar, on the same prompts.

Run: .venv/bin/python -m bench.decode_speed [--backends llguidance outlines_core] [--runs 3]
Prints one line per backend (tokens, seconds, tokens/s) and the grammar overhead against no grammar,
then llguidance with fast-forwarding off beside it on (same answers: the ratio is what batching the
forced tokens gains).
The prompt prefix is warmed first, so the figures are decode speed, not prompt processing. Tokens are
the answer's: under a grammar the ones it forces (keys, separators) are evaluated in batches with the
token before them, so the constrained run can answer faster than the unconstrained one (a negative
overhead).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from schemas.registry import get_schema
from workers.documents import read_document
from workers.engines.constraints import generation_schema
from workers.engines.llamacpp import LlamaCppEngine
from workers.engines.protocol import GenerationRequest
from workers.pipeline.prompting import build_messages

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/kleister-nda/train"


def _requests(schema_name: str, n_chars: int) -> list[GenerationRequest]:
    spec = get_schema(schema_name)
    schema = spec.json_schema()
    out = []
    for pdf in sorted(SAMPLE.glob("*.pdf"))[:3]:
        doc = read_document(pdf)
        text = doc.text[:n_chars]
        out.append(
            GenerationRequest(
                messages=build_messages(spec.ref, schema, text, 1, 1, (1,)),
                json_schema=generation_schema(schema),
                max_tokens=256,
            )
        )
    return out


def measure(engine: LlamaCppEngine, requests: list[GenerationRequest], runs: int) -> tuple[int, float]:
    """Total completion tokens and decode seconds over `runs` passes (each prompt warmed first)."""
    tokens, seconds = 0, 0.0
    for req in requests:
        engine.generate([req])  # warm the prompt: the measured runs evaluate only its last token
        for _ in range(runs):
            result = engine.generate([req])[0]
            tokens += result.completion_tokens
            seconds += result.timings["generate_s"]
    return tokens, seconds


def rate(label: str, engine: LlamaCppEngine, requests: list[GenerationRequest], runs: int) -> float:
    """Measure one configuration, print its line (`label`, tokens, seconds, tokens/s), return its tokens/s."""
    tokens, seconds = measure(engine, requests, runs)
    print(f"{label} tokens={tokens:5d} seconds={seconds:7.2f} tokens_per_s={tokens / seconds:6.1f}")
    return tokens / seconds


def main() -> None:
    """Print tokens/s per grammar backend and the overhead against unconstrained decoding."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", nargs="+", default=["llguidance"])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--schema", default="nda")
    parser.add_argument("--chars", type=int, default=2500)
    args = parser.parse_args()
    requests = _requests(args.schema, args.chars)
    rates: dict[str, float] = {}
    for backend in ["none", *args.backends]:
        engine = LlamaCppEngine(grammar_backend=backend)
        rates[backend] = rate(f"backend={backend:14s}", engine, requests, args.runs)
        del engine
    for backend in args.backends:
        overhead = (rates["none"] - rates[backend]) / rates["none"] * 100
        print(f"grammar_overhead[{backend}]={overhead:.1f}%")
    print(f"median_tokens_per_s_with_grammar={statistics.median(rates[b] for b in args.backends):.1f}")
    if "llguidance" in args.backends:
        engine = LlamaCppEngine(grammar_backend="llguidance", fast_forward=False)
        stepwise = rate("backend=llguidance fast_forward=off", engine, requests, args.runs)
        print(f"fast_forward_speedup[llguidance]={rates['llguidance'] / stepwise:.3f}")


if __name__ == "__main__":
    main()
