"""Grounding reviewers' corrections in a child process (`python -m workers.pipeline.grounding.child`).

The API never parses a document nor loads the pipeline: to ground a corrected value again it starts
this child (with the document limits as rlimits, see `workers.documents.sandbox`), which reads the
document exactly as a job did (its own parser children included) and looks the values up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workers.documents.sandbox import child_main


def ground_values(payload: dict[str, Any]) -> dict[str, Any]:
    """Child side: read the document, ground `values` (a partial record), return evidence and flags."""
    from workers.documents.errors import DocumentError
    from workers.documents.model import LimitsSpec, OcrSpec
    from workers.documents.reader import read_document
    from workers.documents.sandbox import error_result
    from workers.pipeline.grounding.record import ground_record

    limits = dict(payload["limits"])
    ocr = limits.pop("ocr", None)
    spec = LimitsSpec(**limits, ocr=None if ocr is None else OcrSpec(**ocr))
    try:
        doc = read_document(Path(payload["path"]), media_type=payload["media_type"], limits=spec)
    except DocumentError as e:
        return error_result(e.code)
    evidence, flags = ground_record(payload["values"], doc)
    return {
        "ok": {
            "evidence": {path: [e.to_dict() for e in items] for path, items in evidence.items()},
            "flags": [{"path": f.path, "code": f.code} for f in flags],
        }
    }


if __name__ == "__main__":
    child_main(ground_values)
