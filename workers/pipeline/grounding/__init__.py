"""Grounding: find where each extracted value is written in the source, so a reviewer can check it.

A small model paraphrases, normalises (dates to ISO, "three (3) years" to "3 years") and sometimes
invents. Every leaf value of a record is therefore looked up in the document's canonical text, in
this order, and the first kind of match that finds anything wins:

1. ``exact``: the value as a substring, on word boundaries;
2. ``normalized``: the same words ignoring case, whitespace and punctuation, or a written form of a
   typed value (an ISO date as "April 18, 2001", 50 as "fifty", "female" as "she", "3 years" as
   "three (3) years");
3. ``fuzzy``: a token window whose similarity to the value is at least `FUZZY_THRESHOLD` (flagged
   ``weak_match``).

Values found nowhere are flagged ``not_found_in_source``. Every `Evidence` satisfies
``text == doc.text[start:end]`` and lies inside one page, so offsets can be highlighted as they are.
"""

from workers.pipeline.grounding.index import (
    FUZZY_THRESHOLD,
    MATCH_RANK,
    MAX_EVIDENCE,
    Evidence,
    MatchKind,
    SourceIndex,
    source_index,
)
from workers.pipeline.grounding.record import (
    LOW_OCR_CONFIDENCE,
    NOT_FOUND,
    WEAK_MATCH,
    Flag,
    ground_record,
    iter_leaves,
    low_confidence_flags,
)
from workers.pipeline.grounding.variants import normalize_text, number_to_words, parse_duration, words_to_number

__all__ = [
    "FUZZY_THRESHOLD",
    "LOW_OCR_CONFIDENCE",
    "MATCH_RANK",
    "MAX_EVIDENCE",
    "NOT_FOUND",
    "WEAK_MATCH",
    "Evidence",
    "Flag",
    "MatchKind",
    "SourceIndex",
    "ground_record",
    "iter_leaves",
    "low_confidence_flags",
    "normalize_text",
    "number_to_words",
    "parse_duration",
    "source_index",
    "words_to_number",
]
