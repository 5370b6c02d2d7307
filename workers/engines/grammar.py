"""Compile a JSON Schema with a grammar backend (a setting, not a code fork) and say plainly when the
backend cannot enforce it, before any model time is spent on a request it would get wrong.

No model tokenizer is needed: llguidance validates a grammar on its own, and outlines-core builds its
DFA against a 256-entry byte vocabulary. The same byte vocabulary lets `CompiledGrammar.accepts` run a
JSON text through the grammar, which is how the schema check measures what a backend really enforces.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Literal, get_args

from workers.errors import BadInputError, ConfigError

GrammarBackend = Literal["llguidance", "outlines_core", "xgrammar"]
GRAMMAR_BACKENDS: tuple[str, ...] = get_args(GrammarBackend)

LLGUIDANCE_JSON_OVERRIDES: dict[str, Any] = {
    # llguidance 1.9 allows free whitespace by default; a small model then pads JSON with newlines until
    # max_tokens. Compact JSON: no whitespace between tokens at all.
    "whitespace_flexible": False,
    "item_separator": ",",
    "key_separator": ":",
    # Approximating oneOf by anyOf (or ignoring keywords) would let through records the validator
    # rejects: an exact grammar or an honest "unsupported".
    "coerce_one_of": False,
    "lenient": False,
}
"""Applied after the schema's own `x-guidance`, so a user schema cannot loosen them."""

OUTLINES_CORE_WHITESPACE = ""
"""outlines-core's whitespace pattern: empty means compact JSON, as for llguidance."""

_EOS = 256  # the byte vocabulary's end-of-sequence token: bytes are tokens 0..255


class UnsupportedSchemaError(BadInputError):
    """A valid JSON Schema that this grammar backend cannot compile (or cannot enforce exactly)."""

    code = "unsupported_schema"


@dataclass(frozen=True, eq=False)
class CompiledGrammar:
    """A backend's compiled form of a schema: `grammar` is what a logits processor is built from."""

    backend: str
    grammar: str
    _index: Any = None  # outlines-core Index over the byte vocabulary

    def accepts(self, text: str) -> bool | None:
        """Whether the grammar lets a model write exactly `text` (None: this backend cannot tell)."""
        data = text.encode("utf-8")
        if self.backend == "llguidance":
            import llguidance

            matcher = llguidance.LLMatcher(_byte_tokenizer(), self.grammar, log_level=0)
            return matcher.consume_tokens(list(data)) and matcher.is_accepting()
        if self.backend == "outlines_core" and self._index is not None:
            state = self._index.get_initial_state()
            for byte in data:
                state = self._index.get_next_state(state, byte)
                if state is None:
                    return False
            return bool(self._index.is_final_state(state))
        return None

    def model_index_bytes(self, vocab_size: int) -> int | None:
        """outlines-core only: about how much memory its index over a model's vocabulary would take."""
        if self.backend != "outlines_core" or self._index is None:
            return None
        return _index_bytes(self._index, vocab_size)


def compile_json_schema(schema: dict[str, Any] | str, backend: GrammarBackend) -> None:
    """Raise `UnsupportedSchemaError` (with the backend's reason) unless `backend` can compile `schema`."""
    build_grammar(schema, backend)


def build_grammar(schema: dict[str, Any] | str, backend: GrammarBackend) -> CompiledGrammar:
    """Compile `schema` with `backend` in compact-JSON mode; errors as in `compile_json_schema`."""
    parsed = _as_object(schema)
    if backend == "llguidance":
        return CompiledGrammar(backend, llguidance_grammar(parsed))
    if backend == "outlines_core":
        return _outlines_core(parsed)
    if backend == "xgrammar":
        return _xgrammar(parsed)
    raise ConfigError(f"unknown grammar backend {backend!r}; choose one of {GRAMMAR_BACKENDS}")


def llguidance_grammar(schema: dict[str, Any]) -> str:
    """The llguidance grammar for `schema`, validated; warnings count as errors because llguidance only
    warns about keywords it leaves unenforced (e.g. `not`, `dependencies`, unknown formats)."""
    import llguidance

    # The schema's own `x-guidance` is dropped: options such as `whitespace_pattern` survive even
    # `whitespace_flexible: false`, and how the grammar is built is our setting, not the user's.
    own = {k: v for k, v in schema.items() if k != "x-guidance"}
    _overrides: Any = LLGUIDANCE_JSON_OVERRIDES  # a plain dict where llguidance declares a TypedDict
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(own, overrides=_overrides)
    except ValueError as e:
        raise UnsupportedSchemaError(f"llguidance: {e}") from e
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error or messages:
        raise UnsupportedSchemaError(f"llguidance: {_one_line(messages)}")
    return grammar


def outlines_core_regex(schema: dict[str, Any]) -> str:
    """The regular expression outlines-core enforces for `schema`: compact whitespace, as for llguidance.

    Schema checks build it over a byte vocabulary, the engine over the model's: one definition for both."""
    from outlines_core.json_schema import build_regex_from_schema

    regex: str = build_regex_from_schema(json.dumps(schema), OUTLINES_CORE_WHITESPACE)
    return regex


OUTLINES_CORE_BYTES_PER_STATE_AND_TOKEN = 1.6
"""Memory of an outlines-core index over a model's vocabulary, per state of the same regex's byte-level
index and per token of the vocabulary. Measured with Qwen2.5's 151,936 tokens (resident memory after
building): 97 MB for one string of at most 50 characters (512 byte-level states), 679 MB for 300 (3,012),
6.9 GB for the NDA schema (30,129): 1.3 to 1.5 bytes, so 1.6 errs on the side of refusing."""


def outlines_core_index_bytes(regex: str, vocab_size: int) -> int:
    """About how much memory outlines-core's index of `regex` takes over a vocabulary of `vocab_size` tokens.

    Known before building it, from the same regex's index over 256 bytes, which builds in well under a
    second for the built-in schemas (the model's index takes a minute and gigabytes for the NDA schema; the
    clinical note's would take about 90 GB). Its time is bounded as schema admission bounds it."""
    import outlines_core

    return _index_bytes(outlines_core.Index(regex, _byte_vocabulary()), vocab_size)


GRAMMAR_TOO_LARGE = "grammar_too_large"
"""The code of a schema whose outlines-core index would not fit the engine's budget."""


def index_too_large(size: int, budget_bytes: int) -> UnsupportedSchemaError | None:
    """The refusal of an outlines-core index of `size` bytes over `budget_bytes`, or None if it fits.

    One check for the engine, which raises it before building, and schema admission, which reports it:
    sizes and the setting to change, nothing of the schema."""
    if size <= budget_bytes:
        return None
    return UnsupportedSchemaError(
        f"outlines-core's index for this schema would take about {size / 2**30:.1f} GiB over the model's "
        f"vocabulary, more than ABSTRACTOR_GRAMMAR_INDEX_MAX_GIB ({budget_bytes / 2**30:.1f} GiB); use the "
        "llguidance backend or shorten the schema's maxLength and maxItems",
        code=GRAMMAR_TOO_LARGE,
        details={"estimated_bytes": size, "budget_bytes": budget_bytes},
    )


def _index_bytes(byte_index: Any, vocab_size: int) -> int:
    states = len(byte_index.get_transitions())
    return int(states * vocab_size * OUTLINES_CORE_BYTES_PER_STATE_AND_TOKEN)


def _outlines_core(schema: dict[str, Any]) -> CompiledGrammar:
    import outlines_core

    try:
        regex = outlines_core_regex(schema)
    except ValueError as e:  # the Rust side raises ValueError subclasses with its reason
        raise UnsupportedSchemaError(f"outlines_core: {_one_line([str(e)])}") from e
    try:
        index = outlines_core.Index(regex, _byte_vocabulary())
    except ValueError as e:
        raise UnsupportedSchemaError(f"outlines_core index: {_one_line([str(e)])}") from e
    return CompiledGrammar("outlines_core", regex, index)


def _xgrammar(schema: dict[str, Any]) -> CompiledGrammar:
    try:
        import xgrammar
    except ImportError as e:
        # xgrammar requires torch, triton and transformers (multi-GB CUDA wheels): not installed here.
        raise ConfigError("xgrammar is not installed", code="backend_missing") from e
    try:
        grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False, strict_mode=True)
    except (RuntimeError, ValueError) as e:
        raise UnsupportedSchemaError(f"xgrammar: {_one_line([str(e)])}") from e
    return CompiledGrammar("xgrammar", str(grammar))


def _as_object(schema: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as e:
            raise BadInputError(f"schema is not valid JSON: {e}", code="invalid_schema") from e
    if not isinstance(schema, dict):
        raise BadInputError("a JSON Schema must be a JSON object", code="invalid_schema")
    return schema


def _one_line(messages: list[str]) -> str:
    text = " / ".join(" ".join(m.split()) for m in messages) or "unknown error"
    return text if len(text) <= 300 else text[:300] + "…"


class _ByteTokenizer:
    """Just enough of a tokenizer for llguidance: one token per byte, plus EOS."""

    def __init__(self) -> None:
        self.eos_token_id = _EOS
        self.bos_token_id = None
        self.tokens = [bytes([b]) for b in range(256)] + [b"<eos>"]
        self.special_token_ids = [_EOS]

    def __call__(self, text: str | bytes) -> list[int]:
        return list(text.encode("utf-8") if isinstance(text, str) else text)


@functools.cache
def _byte_tokenizer() -> Any:
    import llguidance

    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(_ByteTokenizer()))


@functools.cache
def _byte_vocabulary() -> Any:
    import outlines_core

    return outlines_core.Vocabulary(_EOS, {bytes([b]): [b] for b in range(256)})
