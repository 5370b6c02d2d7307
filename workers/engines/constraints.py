"""Grammar backends as a setting: one JSON Schema in, one logits processor out, compact whitespace."""

from __future__ import annotations

import copy
import json
import re
from collections import OrderedDict
from typing import Any

import numpy as np

from workers.engines.grammar import GRAMMAR_BACKENDS as COMPILE_BACKENDS
from workers.engines.grammar import (
    index_too_large,
    llguidance_grammar,
    outlines_core_index_bytes,
    outlines_core_regex,
)
from workers.errors import ConfigError

GRAMMAR_BACKENDS: tuple[str, ...] = (*COMPILE_BACKENDS, "none")
"""The compile backends plus "none" (unconstrained decoding, for benchmarks only)."""

GRAMMAR_INDEX_MAX_GIB = 8.0
"""Default memory an engine may hold in outlines-core indexes: enough for the NDA schema's (about 7 GB)."""


def generation_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema the grammar enforces: every property required, so "not stated" is an explicit null.

    Optional keys would let the model skip fields silently; requiring them forces a decision per field
    while Pydantic defaults still accept the null/empty value.
    """
    out = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict) and node.get("type") == "object":
                node["required"] = list(props)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(out)
    return out


def make_outlines_backend(backend: str, outlines_model: Any, *, vocab_size: int, index_budget_bytes: int) -> Any:
    """Build (once per engine) the outlines backend object that turns schemas into logits processors.

    `vocab_size` and `index_budget_bytes` size outlines-core's kept indexes (`OutlinesCoreIndexes`)."""
    try:
        if backend == "llguidance":
            from outlines.backends import LLGuidanceBackend

            return LLGuidanceBackend(outlines_model)
        if backend == "outlines_core":
            from outlines.backends import OutlinesCoreBackend

            return OutlinesCoreIndexes(OutlinesCoreBackend(outlines_model), vocab_size, index_budget_bytes)
        if backend == "xgrammar":
            from outlines.backends import XGrammarBackend

            return XGrammarBackend(outlines_model)
    except ImportError as e:
        raise ConfigError(f"grammar backend {backend!r} is not installed: {e}", code="backend_missing") from e
    raise ConfigError(f"unknown grammar backend {backend!r}; choose one of {GRAMMAR_BACKENDS}")


def logits_processor_for(backend_name: str, backend: Any, schema: dict[str, Any]) -> Any:
    """A fresh, stateful logits processor for one generation constrained to `schema`.

    The grammar is built exactly as `schema-check` and schema registration build it (compact
    whitespace, fixed separators, no lenient fallbacks), so what was accepted is what is enforced.
    """
    if backend_name == "llguidance":
        return LLGuidanceMask(backend.llg_tokenizer, llguidance_grammar(schema))
    if backend_name == "outlines_core":
        return backend.processor(schema)
    return backend.get_json_schema_logits_processor(json.dumps(schema))


class OutlinesCoreIndexes:
    """outlines' `OutlinesCoreBackend` with its indexes kept, one per grammar, within a memory budget.

    outlines builds a new `Index` over the model's whole vocabulary on every call: for the NDA schema over
    Qwen's 151,936 tokens that is about a minute on 2 cores and 7 GB, so a document of n chunks paid it n
    times and every later job again. An index is immutable and every processor walks it with a `Guide` of
    its own, so one index serves every generation under the same grammar.

    The memory is bounded, not only the count: an index's size is estimated before it is built
    (`outlines_core_index_bytes`), a grammar whose index alone exceeds the budget is refused with
    `grammar_too_large` (the clinical-note schema's would take about 90 GB, enough to get the worker
    killed), and the least recently used indexes are dropped before a new one is built until it fits.
    """

    def __init__(self, backend: Any, vocab_size: int, budget_bytes: int) -> None:
        self._backend = backend
        self._vocab_size = vocab_size
        self._budget = budget_bytes
        self._indexes: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.built = 0
        """Indexes built so far (a rebuilt one counts again)."""

    def processor(self, schema: dict[str, Any]) -> Any:
        """A fresh logits processor for `schema`, over the kept index of its grammar where there is one."""
        from outlines.backends.outlines_core import OutlinesCoreLogitsProcessor
        from outlines_core import Index

        regex = outlines_core_regex(schema)
        kept = self._indexes.pop(regex, None)
        if kept is None:
            size = outlines_core_index_bytes(regex, self._vocab_size)
            refusal = index_too_large(size, self._budget)
            if refusal is not None:
                raise refusal
            while self._indexes and sum(b for _, b in self._indexes.values()) + size > self._budget:
                self._indexes.popitem(last=False)
            kept = (Index(regex, self._backend.vocabulary), size)
            self.built += 1
        self._indexes[regex] = kept
        return OutlinesCoreLogitsProcessor(kept[0], self._backend.tensor_library_name)


class GrammarFailure(Exception):
    """The grammar engine failed during a generation; `reason` is its own stop code, never its message
    (llguidance's error text carries the tokens generated so far and the whole grammar)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


STOP_REASONS = frozenset(
    {"MaxTokensTotal", "MaxTokensParser", "ParserTooComplex", "LexerTooComplex", "NoExtension",
     "NoExtensionBias", "EndOfSentence", "InternalError"}
)  # fmt: skip
"""llguidance's stop reasons (`llguidance._util.StopReason`): the only words of a failure we keep."""

_STOP_LINE = re.compile(r"^Stop: (\w+)$", re.MULTILINE)


class LLGuidanceMask:
    """llguidance's token mask for one greedy generation, as a numpy logits processor `(ids, scores) -> scores`.

    Used instead of outlines' `LLGuidanceLogitsProcessor`, which builds its matcher at llguidance's
    default log level (its Rust side then writes errors to fd 2) and `warnings.warn`s a failed matcher's
    error text; this one is silent (`log_level=0`) and raises `GrammarFailure` with the stop reason.
    """

    def __init__(self, tokenizer: Any, grammar: str) -> None:
        import llguidance
        import llguidance.numpy

        self._fill = llguidance.numpy.fill_next_token_bitmask
        self._matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        self._bitmask = llguidance.numpy.allocate_token_bitmask(1, tokenizer.vocab_size)
        self._vocab_size = int(tokenizer.vocab_size)
        self._started = False
        self._check()

    def _check(self) -> None:
        if self._matcher.is_error():
            raise GrammarFailure(self._reason())

    def _reason(self) -> str:
        reason = str(self._matcher.stop_reason())
        if reason == "InternalError":
            # A lexer or parser limit reports InternalError here; the error's state dump names the real
            # reason on a line of its own. Only a known reason's name is kept, nothing else of that text.
            found = _STOP_LINE.search(self._matcher.get_error())
            reason = found.group(1) if found else reason
        return reason if reason in STOP_REASONS else "matcher_error"

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """outlines' processor interface: the previous call's choice is read back from `input_ids`."""
        # The first call comes before any token was generated: the last id is the prompt's.
        if self._started:
            self.consume(int(input_ids[-1]))
        self._started = True
        return self.mask(scores)

    def consume(self, token: int) -> None:
        """Advance the grammar by the token the decoder chose."""
        self._matcher.consume_token(token)
        self._check()

    def fast_forward(self) -> list[int]:
        """The tokens the grammar allows no alternative to from here (keys, separators), already consumed.

        A decoder feeds them to the model in one batch instead of one decode step each: same answer
        bytes, a fraction of the forward passes."""
        forced = [int(t) for t in self._matcher.compute_ff_tokens()]
        if forced:
            self._matcher.consume_tokens(forced)
        self._check()
        return forced

    def finished(self) -> bool:
        """The grammar is complete: nothing but the end of text can follow."""
        return bool(self._matcher.is_stopped())

    def mask(self, scores: Any) -> Any:
        """`scores` with every token the grammar forbids next set to -inf."""
        self._fill(self._matcher, self._bitmask, 0)
        self._check()
        allowed = np.unpackbits(self._bitmask[0].astype("<i4", copy=False).view(np.uint8), bitorder="little")[
            : self._vocab_size
        ]
        keep = np.flatnonzero(allowed[: len(scores)])
        masked = np.full(len(scores), -np.inf, dtype=np.float32)
        masked[keep] = scores[keep]
        return masked
