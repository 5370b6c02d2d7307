"""Run google's langextract on one document for `bench/peers.py`, inside langextract's own virtual environment.

Run: .tools/langextract-venv/bin/python bench/langextract_runner.py < job.json > result.json

This file imports nothing of ours (it runs with a different interpreter and package set): the job on
stdin carries the document text, the prompt, the few-shot examples and the server settings; stdout gets
one JSON object with the extractions, the seconds `lx.extract` took and the tokens the server reported.
Any failure is answered as `{"error": "<exception type>"}` with exit status 0, so the caller scores the
document as empty without having to read a traceback (which could quote the document).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


class UsageCounter:
    """Adds up the `usage` of every chat completion the provider receives.

    langextract keeps only the text of each answer, so the counts are taken where the OpenAI client
    returns them; nothing about the request or the answer is changed.
    """

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.requests = 0
        self.cut_answers = 0

    def wrap(self, create: Any) -> Any:
        """`create` with the usage of each response added to this counter."""

        def counted(*args: Any, **kwargs: Any) -> Any:
            response = create(*args, **kwargs)
            usage = getattr(response, "usage", None)
            self.requests += 1
            choices = getattr(response, "choices", None) or []
            if choices and getattr(choices[0], "finish_reason", None) == "length":
                self.cut_answers += 1  # langextract then fails to parse the chunk and, by default, skips it
            if usage is not None:
                self.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
                self.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
            return response

        return counted


def _examples(lx: Any, raw: list[dict[str, Any]]) -> list[Any]:
    """langextract `ExampleData` from the job's plain JSON examples."""
    return [
        lx.data.ExampleData(
            text=example["text"],
            extractions=[
                lx.data.Extraction(
                    extraction_class=e["extraction_class"],
                    extraction_text=e["extraction_text"],
                    attributes=e.get("attributes") or None,
                )
                for e in example["extractions"]
            ],
        )
        for example in raw
    ]


def _model(lx: Any, job: dict[str, Any], counter: UsageCounter) -> Any:
    """The OpenAI-compatible provider pointed at the local server, each request bounded in time.

    The provider builds its OpenAI client without a timeout of ours (the SDK's default is 10 minutes
    with two retries), so the client is replaced by a copy with the job's timeout and no retries.
    """
    config = lx.factory.ModelConfig(
        model_id=job["model_id"],
        provider="OpenAILanguageModel",
        provider_kwargs={
            "base_url": job["base_url"],
            "api_key": "local",  # the local server checks none, the SDK insists on one
            "temperature": 0.0,
            "max_workers": 1,  # llama.cpp's server runs one request at a time anyway
            "max_output_tokens": job["max_output_tokens"],
            "seed": 0,
        },
    )
    model = lx.factory.create_model(config)
    client = getattr(model, "_client", None)
    if client is not None:
        client = client.with_options(timeout=job["request_timeout_s"], max_retries=0)
        client.chat.completions.create = counter.wrap(client.chat.completions.create)
        model._client = client
    return model


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Extract one document as the job says; the result is plain JSON."""
    import langextract as lx

    counter = UsageCounter()
    model = _model(lx, job, counter)
    started = time.perf_counter()
    result = lx.extract(
        text_or_documents=job["text"],
        prompt_description=job["prompt_description"],
        examples=_examples(lx, job["examples"]),
        model=model,
        use_schema_constraints=False,  # llama-cpp-python's server answers 500 to a json_schema response_format
        max_char_buffer=job["max_char_buffer"],
        batch_length=job.get("batch_length", 10),
        max_workers=1,
        extraction_passes=job.get("extraction_passes", 1),
        show_progress=False,
    )
    seconds = time.perf_counter() - started
    extractions = []
    for e in result.extractions or []:
        interval = e.char_interval
        extractions.append(
            {
                "extraction_class": e.extraction_class,
                "extraction_text": e.extraction_text,
                "attributes": e.attributes or {},
                "start": interval.start_pos if interval is not None else None,
                "end": interval.end_pos if interval is not None else None,
            }
        )
    counted = counter.requests > 0  # zero when the provider's client could not be wrapped
    return {
        "extractions": extractions,
        "seconds": seconds,
        "requests": counter.requests,
        "cut_answers": counter.cut_answers if counted else None,
        "prompt_tokens": counter.prompt_tokens if counted else None,
        "completion_tokens": counter.completion_tokens if counted else None,
    }


def main() -> None:
    """Read one job from stdin, write one result to stdout; never a traceback on stdout."""
    job = json.load(sys.stdin)
    try:
        answer = run(job)
    except Exception as e:  # noqa: BLE001 - reported as the document's failure, by type only
        cause = e.__cause__ or getattr(e, "original", None)
        answer = {"error": type(e).__name__, "cause": type(cause).__name__ if cause is not None else None}
    sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
