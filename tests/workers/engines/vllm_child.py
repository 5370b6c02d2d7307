"""Run the in-process vLLM engine for real, in the vLLM environment (`scripts/setup-vllm`), and report.

vLLM spawns its engine core, so it must be built in a main program: the tests start this module with
the vLLM environment's Python (`python -m tests.workers.engines.vllm_child SPEC OUT`). SPEC is JSON:
the settings (ABSTRACTOR_* names without the prefix) and the cases to run; OUT receives one JSON object
per case: the record, or the error code and message that ended it. The engine is built once, through
the same settings-to-engine mapping the worker uses, and serves every case.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from schemas.errors import SchemaError
from schemas.registry import get_schema
from schemas.user_schema import load_user_schema
from service.config import Settings
from service.jobs.resolve import UserSchemaSpec
from service.runtime import engine_from, limits_from, options_from
from workers.documents import read_document
from workers.errors import WorkerError
from workers.pipeline.run import extract_document


def _schema(case: dict[str, Any]) -> Any:
    if "json_schema" in case:
        return UserSchemaSpec(ref="user@1", user=load_user_schema(case["json_schema"], name="user"))
    return get_schema(case["schema"])


def main(spec_path: str, out_path: str) -> None:
    """Build the engine from the spec's settings, run each case, write the outcomes."""
    spec = json.loads(Path(spec_path).read_text())
    settings = Settings(_env_file=None, **spec["settings"])  # type: ignore[call-arg]
    started = time.perf_counter()
    engine = engine_from(settings)
    outcomes: list[dict[str, Any]] = [{"case": "start", "seconds": round(time.perf_counter() - started, 2)}]
    try:
        for case in spec["cases"]:
            options = options_from(settings)
            if "max_new_tokens" in case:
                options = type(options)(**{**vars(options), "max_new_tokens": case["max_new_tokens"]})
            began = time.perf_counter()
            try:
                doc = read_document(Path(case["path"]), limits=limits_from(settings))
                record = extract_document(doc, _schema(case), engine, options)
                pages = {p.number: [p.start, p.end] for p in doc.pages}
                outcome: dict[str, Any] = {"record": record, "text": doc.text, "pages": pages}
            except (WorkerError, SchemaError) as e:
                outcome = {"error": {"code": getattr(e, "code", "error"), "type": type(e).__name__}}
            outcome.update(case=case["name"], seconds=round(time.perf_counter() - began, 2))
            outcomes.append(outcome)
            Path(out_path).write_text(json.dumps(outcomes))
    finally:
        close = getattr(engine, "close", None)
        if close is not None:
            close()
    Path(out_path).write_text(json.dumps(outcomes))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
