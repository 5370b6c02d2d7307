"""The llama.cpp-grammar peer: the whole document (truncated to the context) and the schema in one
`response_format` request, i.e. llama.cpp's own GBNF sampler, run in a child process.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.peer_types import N_CTX, Answer, PeerError, error_code

GRAMMAR_INSTRUCTIONS = (
    "Extract a {title} record from the document the user sends. Reply with one JSON object that follows "
    "this JSON Schema. Copy values exactly as written in the document; use null (or [] for a list) for "
    "anything it does not state.\n\nJSON Schema:\n{schema}"
)
"""The few lines a user would write around llama.cpp's JSON-schema mode."""
CHAT_TEMPLATE_TOKENS = 32  # Qwen's chat template adds about ten tokens per turn; keep a margin


def truncate_to_tokens(text: str, budget: int, count_tokens: Callable[[str], int]) -> tuple[str, bool]:
    """The longest prefix of `text` within `budget` tokens, cut at a word boundary; and whether it was cut.

    A binary search over the prefix length needs only ~log2(len) token counts of a long document.
    """
    if count_tokens(text) <= budget:
        return text, False
    if budget <= 0:
        return "", True
    lo, hi = 0, len(text)  # invariant: text[:lo] fits, text[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count_tokens(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid
    prefix = text[:lo]
    space = max(prefix.rfind(" "), prefix.rfind("\n"))
    if space > len(prefix) - 200:  # back off to a whole word, unless the last word is absurdly long
        prefix = prefix[:space]
    return prefix.rstrip(), True


def grammar_messages(title: str, schema: dict[str, Any], text: str) -> list[dict[str, str]]:
    """The baseline's chat: instructions with the schema, then the (truncated) document."""
    system = GRAMMAR_INSTRUCTIONS.format(title=title, schema=json.dumps(schema, separators=(",", ":")))
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def _grammar_worker(conn: Connection, model_path: str, n_ctx: int, threads: int) -> None:
    """Child process holding `llama_cpp.Llama`: the only way to bound a running C call is to kill its process."""
    from llama_cpp import Llama

    llm = Llama(
        model_path=model_path,
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        seed=0,
        verbose=False,
    )

    def count(text: str) -> int:
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    conn.send({"ready": True})
    while True:
        job = conn.recv()
        if job is None:
            return
        started = time.perf_counter()
        schema, max_tokens = job["schema"], job["max_tokens"]
        overhead = count(grammar_messages(job["title"], schema, "")[0]["content"]) + CHAT_TEMPLATE_TOKENS
        text, truncated = truncate_to_tokens(job["text"], n_ctx - overhead - max_tokens, count)
        try:
            out: Any = llm.create_chat_completion(
                messages=grammar_messages(job["title"], schema, text),  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=0.0,
                response_format={"type": "json_object", "schema": schema},
            )
        except Exception as e:  # noqa: BLE001 - sent back as this document's failure
            conn.send({"error": error_code(e)})
            continue
        choice = out["choices"][0]
        conn.send(
            {
                "content": choice["message"].get("content") or "",
                "finish_reason": choice.get("finish_reason"),
                "usage": out.get("usage", {}),
                "truncated": truncated,
                "chars_sent": len(text),
                "seconds": time.perf_counter() - started,
            }
        )


class LlamaCppGrammarSystem:
    """llama.cpp's own JSON-schema mode, one request per document, in a child process that can be killed."""

    name = "llamacpp_grammar"

    def __init__(self, model_path: Path, threads: int, max_tokens: int) -> None:
        self.threads = threads
        self.max_tokens = max_tokens
        self._model_path = model_path
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._start()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=_grammar_worker, args=(child, str(self._model_path), N_CTX, self.threads), daemon=True
        )
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(300) or not parent.recv().get("ready"):
            raise PeerError("model_load_timeout")

    def _stop(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
        if self._proc is not None:
            self._proc.join(timeout=30)
        self._proc = None

    def extract(self, doc: Any, schema_name: str, deadline: float) -> Answer:
        """One constrained request; past the deadline the child is killed (and restarted for the next one)."""
        from schemas.registry import get_schema

        spec = get_schema(schema_name)
        schema = spec.json_schema()
        if self._proc is None:
            self._start()
        assert self._conn is not None
        job = {"title": str(schema.get("title") or spec.name), "schema": schema, "text": doc.text}
        self._conn.send({**job, "max_tokens": self.max_tokens})
        if not self._conn.poll(max(1.0, deadline - time.monotonic())):
            self._stop()
            raise PeerError("timeout")
        reply = self._conn.recv()
        if "error" in reply:
            raise PeerError(reply["error"])
        usage = reply["usage"]
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        try:
            record = json.loads(reply["content"])
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            raise PeerError("length" if reply["finish_reason"] == "length" else "invalid_json")
        return Answer(
            record,
            prompt,
            completion,
            truncated=bool(reply["truncated"]),
            model_seconds=float(reply["seconds"]),
            chars_sent=int(reply["chars_sent"]),
            requests=1,
            cut_answers=int(reply["finish_reason"] == "length"),
        )

    def close(self) -> None:
        """Ask the child to exit, then make sure it has."""
        with contextlib.suppress(OSError, ValueError):
            if self._conn is not None:
                self._conn.send(None)
        if self._proc is not None:
            self._proc.join(timeout=10)
        self._stop()


# --- langextract ------------------------------------------------------------------------------------------
