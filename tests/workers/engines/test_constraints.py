"""The grammar sees every property as required (explicit nulls) and compact whitespace."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from schemas.registry import get_schema
from workers.engines.constraints import GRAMMAR_INDEX_MAX_GIB, GrammarFailure, LLGuidanceMask, generation_schema
from workers.engines.grammar import _byte_tokenizer, build_grammar, llguidance_grammar
from workers.engines.model_files import QWEN25_CODER_05B


def test_every_object_property_is_required_for_generation() -> None:
    schema = generation_schema(get_schema("clinical_note").json_schema())
    assert schema["required"] == list(schema["properties"])
    for name, sub in schema["$defs"].items():
        assert sub["required"] == list(sub["properties"]), name


def test_the_source_schema_is_not_modified() -> None:
    spec = get_schema("nda")
    original = spec.json_schema()
    generation_schema(original)
    assert "required" not in original


def _mask(properties: dict[str, Any]) -> LLGuidanceMask:
    """The mask over llguidance's byte vocabulary (tokens 0..255 are the bytes, 256 the end)."""
    schema = generation_schema({"type": "object", "properties": properties})
    return LLGuidanceMask(_byte_tokenizer(), llguidance_grammar(schema))


def _feed(mask: LLGuidanceMask, text: bytes) -> None:
    """Walk `text` through the mask as greedy decoding would, each byte checked as allowed first."""
    ids, scores = [0], np.zeros(257, dtype=np.float32)
    for byte in text:
        allowed = mask(np.array(ids), scores)
        assert np.isfinite(allowed[byte]), f"{bytes([byte])!r} refused after {bytes(ids[1:])!r}"
        ids.append(byte)
    mask(np.array(ids), scores)


def test_the_llguidance_mask_allows_what_the_grammar_allows_and_nothing_else() -> None:
    _feed(_mask({"n": {"type": "integer"}}), b'{"n":42}')
    with pytest.raises(AssertionError, match="refused"):
        _feed(_mask({"n": {"type": "integer"}}), b'{"n":"x"')


def test_a_grammar_breaking_mid_generation_raises_its_stop_reason_only() -> None:
    # llguidance compiles the pattern, then its lexer gives up when the answer reaches it.
    mask = _mask({"name": {"type": "string"}, "code": {"type": "string", "pattern": "^(a|aa){1000,}b$"}})
    with pytest.raises(GrammarFailure) as info:
        _feed(mask, b'{"name":"Zorblax Quintavius","code":"a')
    assert info.value.reason == "LexerTooComplex" and str(info.value) == "LexerTooComplex"


def _allowed(processor: Any, ids: list[int]) -> set[int]:
    """The byte tokens `processor` allows after `ids` (the first id stands for the prompt)."""
    masked = processor(np.array(ids), np.zeros(257, dtype=np.float32))
    return {int(t) for t in np.flatnonzero(np.isfinite(masked))}


def test_outlines_core_indexes_are_built_once_per_grammar_and_kept_within_the_budget() -> None:
    from types import SimpleNamespace

    from workers.engines.constraints import OutlinesCoreIndexes
    from workers.engines.grammar import _byte_vocabulary, outlines_core_index_bytes, outlines_core_regex

    schemas = [generation_schema({"type": "object", "properties": {key: {"type": "integer"}}}) for key in "abc"]
    sizes = {outlines_core_index_bytes(outlines_core_regex(s), 257) for s in schemas}
    assert len(sizes) == 1 and min(sizes) > 0  # the same shape under three keys: room for two
    backend = SimpleNamespace(vocabulary=_byte_vocabulary(), tensor_library_name="numpy")
    indexes = OutlinesCoreIndexes(backend, vocab_size=257, budget_bytes=2 * sizes.pop())
    first, second = indexes.processor(schemas[0]), indexes.processor(schemas[0])
    assert indexes.built == 1
    # One index, two walks: the first processor's progress is not the second's.
    ids = [0]
    for byte in b'{"a":':
        assert byte in _allowed(first, ids)
        ids.append(byte)
    after_key = _allowed(first, ids)
    assert ord("1") in after_key and ord("{") not in after_key
    assert _allowed(second, [0]) == {ord("{")}
    indexes.processor(schemas[1])
    indexes.processor(schemas[2])
    assert indexes.built == 3
    indexes.processor(schemas[2])  # kept
    assert indexes.built == 3
    indexes.processor(schemas[0])  # the least recently used, dropped to make room for the third
    assert indexes.built == 4


def test_an_outlines_core_index_over_the_budget_is_refused_before_it_is_built() -> None:
    from types import SimpleNamespace

    from workers.engines.constraints import OutlinesCoreIndexes
    from workers.engines.grammar import GRAMMAR_TOO_LARGE, UnsupportedSchemaError, _byte_vocabulary

    backend = SimpleNamespace(vocabulary=_byte_vocabulary(), tensor_library_name="numpy")
    indexes = OutlinesCoreIndexes(backend, vocab_size=151_936, budget_bytes=2**30)
    # Eight names of up to 300 characters: about 5.5 GiB over a 151,936-token vocabulary.
    names = {"type": "array", "items": {"type": "string", "maxLength": 300}, "maxItems": 8}
    schema = generation_schema({"type": "object", "properties": {"signatories": names}})
    with pytest.raises(UnsupportedSchemaError) as refused:
        indexes.processor(schema)
    assert refused.value.code == GRAMMAR_TOO_LARGE and indexes.built == 0
    # Sizes and the setting to change; nothing of the schema.
    assert 4 * 2**30 < refused.value.details["estimated_bytes"] < 8 * 2**30
    assert refused.value.details["budget_bytes"] == 2**30
    assert "ABSTRACTOR_GRAMMAR_INDEX_MAX_GIB" in refused.value.message
    assert "signatories" not in refused.value.message


def test_the_built_in_nda_fits_the_default_outlines_core_budget() -> None:
    """outlines_core is usable for the NDA schema as shipped: its index over the model's vocabulary, by the
    engine's own estimate (about 6.8 GiB), is under the default budget; the clinical note's is not (the real
    engine's refusal, test_llamacpp.py)."""
    grammar = build_grammar(generation_schema(get_schema("nda").json_schema()), "outlines_core")
    size = grammar.model_index_bytes(QWEN25_CODER_05B.vocab_size)
    assert size is not None and 4 * 2**30 < size < GRAMMAR_INDEX_MAX_GIB * 2**30
