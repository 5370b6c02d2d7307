"""Token spans: where each generated token lies in the answer, from exact bytes or per-token decodings."""

from __future__ import annotations

import itertools

from workers.engines.protocol import token_spans

TEXT = '{"name":"Zoë","n":3}'


def test_exact_bytes_tile_the_text_and_a_split_character_ends_with_its_last_byte() -> None:
    raw = TEXT.encode()
    e = raw.index("ë".encode())
    pieces = [raw[:9], raw[9:10], raw[10 : e + 1], raw[e + 1 :]]  # ë split between two tokens
    spans = token_spans(pieces, [-0.1, -0.2, -0.3, -0.4], TEXT)
    assert [TEXT[s.start : s.end] for s in spans] == ['{"name":"', "Z", "o", 'ë","n":3}']
    assert [s.logprob for s in spans] == [-0.1, -0.2, -0.3, -0.4]
    assert spans[-1].end == len(TEXT)


def test_per_token_decodings_with_replacement_marks_are_matched_against_the_text() -> None:
    # vLLM's server decodes each token alone: the halves of "ë" come back as replacement marks.
    pieces = [b'{"name":"Zo', "\ufffd".encode(), "\ufffd".encode(), b'","n":3}']
    spans = token_spans(pieces, [-1.0, -2.0, -3.0, -4.0], TEXT)
    assert [TEXT[s.start : s.end] for s in spans] == ['{"name":"Zo', "", "", 'ë","n":3}']
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


def test_tokens_that_do_not_spell_the_text_give_only_what_is_certain() -> None:
    spans = token_spans([b'{"a"', b"XYZ"], [-0.5, -0.5], '{"a":1}')
    assert [(s.start, s.end) for s in spans] == [(0, 4)]
    assert token_spans([b"{}"], [], "{}") == ()  # counts disagree: nothing rather than a guess
