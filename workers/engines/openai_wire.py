"""The chat-completions wire format: the request body we send and what we make of the answers.

Pure functions, no I/O: `openai_compat` sends these bodies and hands the answers back through them.
Server errors may echo request fields, so error texts keep only the server's first line, cut before
any `input_value=` part, and never the prompt.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import httpx

from workers.engines.protocol import FinishReason, GenerationRequest, GenerationResult, TokenLogprob, token_spans

_SCHEMA_NAME = re.compile(r"[^A-Za-z0-9_-]+")
ResponseFormatStyle = Literal["json_schema", "json_object"]


def schema_name(schema: dict[str, Any]) -> str:
    """The `json_schema.name` OpenAI requires (`^[A-Za-z0-9_-]{1,64}$`), from the schema title."""
    name = _SCHEMA_NAME.sub("_", str(schema.get("title") or "record")).strip("_")
    return (name or "record")[:64]


def response_format(schema: dict[str, Any], style: ResponseFormatStyle = "json_schema") -> dict[str, Any]:
    """The `response_format` that makes the server enforce `schema`.

    "json_schema" is OpenAI's and vLLM's form. "json_object" with a `schema` key is the older form that
    llama-cpp-python's server (0.3.x) understands; it answers 500 to "json_schema", and vLLM would
    ignore the schema in this form, so the style is a setting, never guessed.
    """
    if style == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": schema_name(schema), "schema": schema, "strict": True}}


def chat_payload(
    request: GenerationRequest,
    model: str,
    *,
    disable_any_whitespace: bool = True,
    style: ResponseFormatStyle = "json_schema",
) -> dict[str, Any]:
    """The chat-completions body: greedy, one choice, the schema as a strict `response_format`.

    `structured_outputs` is vLLM's own field (vLLM >= 0.12): it carries the schema again, because vLLM
    refuses a `structured_outputs` object without a constraint, plus `disable_any_whitespace`, so the
    model cannot pad JSON with whitespace until `max_tokens`. vLLM merges the two (response_format
    wins, with the same schema); servers that do not know the field ignore it.
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": 0.0,
        "n": 1,
        "stream": False,
        "response_format": response_format(request.json_schema, style),
    }
    if disable_any_whitespace:
        body["structured_outputs"] = {"json": request.json_schema, "disable_any_whitespace": True}
    if style == "json_schema":
        # The chosen tokens' log-probabilities (vLLM: under the grammar mask; see vllm_release). Not asked
        # of llama-cpp-python's server (the json_object style), which refuses them without logits_all.
        body["logprobs"] = True
        body["top_logprobs"] = 0
    return body


def _tokens(choice: dict[str, Any]) -> tuple[list[bytes], list[float]]:
    """Each answer token's bytes and log-probability from an OpenAI `logprobs.content` list."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return [], []
    pieces: list[bytes] = []
    values: list[float] = []
    for item in content:
        if not isinstance(item, dict) or not isinstance(item.get("logprob"), int | float):
            return [], []
        raw = item.get("bytes")
        piece = bytes(raw) if isinstance(raw, list) else str(item.get("token", "")).encode("utf-8")
        pieces.append(piece)
        values.append(float(item["logprob"]))
    return pieces, values


def parse_completion(body: Any, seconds: float) -> GenerationResult:
    """One chat-completions response as a result; anything short of a finished answer carries no text."""
    choices = body.get("choices") if isinstance(body, dict) else None
    usage = (body.get("usage") if isinstance(body, dict) else None) or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    completion_tokens = int(usage.get("completion_tokens") or 0)

    def result(
        finish: FinishReason, text: str = "", error: str | None = None, tokens: tuple[TokenLogprob, ...] = ()
    ) -> GenerationResult:
        return GenerationResult(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            seconds=seconds,
            timings={"request_s": seconds},
            error=error,
            tokens=tokens,
        )

    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return result("error", error="server response has no choices")
    choice = choices[0]
    finish = choice.get("finish_reason")
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if finish == "length":
        return result("length")  # truncated JSON: never handed on as text
    if finish != "stop":
        return result("error", error=f"server finished with {finish!r}")
    if not isinstance(content, str) or not content:
        return result("error", error="server returned no content")
    return result("stop", content, tokens=token_spans(*_tokens(choice), content))


def error_detail(response: httpx.Response) -> str:
    """A short, content-free description of an error response (status and the server's first line)."""
    try:
        body: Any = response.json()
    except ValueError:
        text = response.text
    else:
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            text = str(body["error"].get("message") or body["error"].get("type") or "")
        elif isinstance(body, dict) and isinstance(body.get("detail"), list):
            # FastAPI validation errors: keep where and what, never the rejected input itself.
            text = "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', '')}"
                for d in body["detail"]
                if isinstance(d, dict)
            )
        elif isinstance(body, dict) and "detail" in body:
            text = str(body["detail"])
        else:
            text = str(body)
    first = text.strip().splitlines()[0] if text.strip() else ""
    first = first.split("input_value=")[0].rstrip(" ,[")
    return first[:240]
