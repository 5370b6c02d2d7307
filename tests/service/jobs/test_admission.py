"""Schema admission: one decision, the cheap walk here and the trial (meta-validation, grammar, prompt) in a
bounded child; its reasons, its limits, and the same bounds met again by a job."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from schemas.bounds import SchemaBounds, SchemaShapeError
from service.config import Settings
from service.jobs.admission import AdmissionPolicy, SchemaRefused, admit_schema, bounds_from, policy_from
from service.jobs.identity import ModelRef
from service.jobs.resolve import job_schema, resolve_schema
from service.jobs.submit import submit_job
from service.runtime import options_from
from service.store import repositories as repo
from service.store.models import Document, Job, JobStatus, Tenant
from tests.support.engines import DeterministicEngine
from tests.workers.documents.conftest import child_pids
from workers.documents.model import LimitsSpec
from workers.jobs import run_job

REPO = Path(__file__).resolve().parents[3]
MARKER = f"canary{uuid.uuid4().hex[:10]}"
INVOICE: dict[str, Any] = {"type": "object", "properties": {"total": {"type": "number"}}}
MODEL = ModelRef("m", "b")


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def refused(schema: Any, policy: AdmissionPolicy | None = None) -> SchemaRefused:
    with pytest.raises(SchemaRefused) as caught:
        admit_schema(schema, "s", policy)
    return caught.value


def test_a_compilable_object_schema_is_admitted() -> None:
    admit_schema(INVOICE, "invoice", AdmissionPolicy(backend="llguidance"))


def test_the_settings_defaults_are_the_bounds_defaults() -> None:
    defaults = settings()
    assert bounds_from(defaults) == SchemaBounds()
    assert policy_from(defaults) == AdmissionPolicy(backend=defaults.grammar_backend)
    lowered = settings(schema_max_repeat=7, schema_admission_timeout_s=2.5, grammar_backend="outlines_core")
    # outlines_core with the embedded model: admission knows its vocabulary, so it sizes the grammar's index.
    assert policy_from(lowered) == AdmissionPolicy(
        backend="outlines_core",
        bounds=SchemaBounds(max_repeat=7),
        timeout_s=2.5,
        index_budget_bytes=8 * 2**30,
        vocab_size=151_936,
    )
    another_model = settings(grammar_backend="outlines_core", model_path=Path("/models/other.gguf"))
    # Another GGUF: the trial reads its vocabulary size from the file (below).
    assert policy_from(another_model) == AdmissionPolicy(
        backend="outlines_core", index_budget_bytes=8 * 2**30, model_path="/models/other.gguf"
    )
    assert options_from(lowered).schema_bounds == SchemaBounds(max_repeat=7)  # what a worker's jobs get


@pytest.mark.parametrize(
    ("schema", "code"),
    [
        ({"type": "object", "properties": {"x": {"type": "no-such-type"}}}, "invalid_schema"),
        ({"type": "array", "items": {"type": "string"}}, "invalid_schema"),
        (["not", "an", "object"], "invalid_schema"),
        ({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}, "unsupported_schema"),
        ({"type": "object", "properties": {"x": True}}, "schema_unrunnable"),  # the prompt renderer cannot
    ],
    ids=["invalid", "not-an-object", "a-list", "unsupported", "boolean-subschema"],
)
def test_refusals_say_why(schema: Any, code: str) -> None:
    error = refused(schema)
    assert error.code == code and error.message
    if code == "unsupported_schema":
        assert error.details == {"grammar_backend": "llguidance"}


def test_a_prompt_longer_than_its_bound_is_too_large() -> None:
    fields = {f"{MARKER}{i}": {"type": "string", "description": "what this field holds " * 4} for i in range(40)}
    schema = {"type": "object", "properties": fields}
    admit_schema(schema, "s")
    error = refused(schema, AdmissionPolicy(bounds=SchemaBounds(max_prompt_chars=2000)))
    assert (error.code, error.details) == ("schema_too_large", {"limit": "schema_max_prompt_chars", "max": 2000})
    assert MARKER not in error.message


def test_the_walk_refuses_before_any_child_starts() -> None:
    before = set(child_pids())
    error = refused({"type": "object", "properties": {"a": {"$ref": "#"}}})
    assert error.code == "schema_recursive"
    assert set(child_pids()) == before


def test_a_trial_past_its_time_limit_is_unrunnable_and_the_caller_goes_on() -> None:
    # No interpreter even starts within 50 ms: the child is killed at its deadline, whatever the schema.
    tiny = policy_from(settings(schema_admission_timeout_s=0.05))
    before = set(child_pids())
    for _ in range(12):  # more than the trial slots: each is given back
        error = refused(INVOICE, tiny)
        assert error.code == "schema_unrunnable"
        assert error.details == {"limit": "schema_admission_timeout_s", "max": 0.05}
    assert set(child_pids()) == before  # killed and reaped
    admit_schema(INVOICE, "invoice")  # this process, and its trial slots, are fine


def test_a_trial_past_its_memory_limit_is_too_large() -> None:
    # 250 KB of descriptions: copying it alone needs more address space than the limit leaves.
    fields = {f"p{i}": {"type": "string", "description": "x" * 3000} for i in range(80)}
    schema = {"type": "object", "properties": fields}
    error = refused(schema, policy_from(settings(schema_admission_memory_mb=64)))
    assert (error.code, error.details) == ("schema_too_large", {"limit": "schema_admission_memory_mb", "max": 64})
    admit_schema(INVOICE, "invoice")


def test_the_grammar_code_never_loads_in_the_caller() -> None:
    code = (
        "import sys; import service.jobs.admission as a; "
        "a.admit_schema({'type': 'object', 'properties': {'x': {'type': 'string'}}}, 's'); "
        "print(sorted(m for m in sys.modules if m.startswith(('workers.engines', 'workers.pipeline', 'llguidance'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def _register_directly(session: Session, tenant: Tenant, document: Document, schema: dict[str, Any]) -> Job:
    """As a schema registered before a bound existed (or before it was lowered) would be: no admission."""
    name = f"old-{uuid.uuid4().hex[:6]}"
    repo.register_user_schema(session, tenant.id, name, schema)
    job, _ = submit_job(session, tenant.id, document.id, resolve_schema(session, tenant.id, name), MODEL)
    return job


def test_a_job_meets_the_deployment_s_bounds(session: Session, tenant: Tenant, document: Document) -> None:
    counted = {
        "type": "object",
        "properties": {"codes": {"type": "array", "items": {"type": "string"}, "maxItems": 50}},
    }
    job = _register_directly(session, tenant, document, counted)
    assert job_schema(session, job).ref.endswith("@1")  # within the default bounds
    with pytest.raises(SchemaShapeError) as caught:
        job_schema(session, job, bounds_from(settings(schema_max_repeat=10)))
    assert caught.value.code == "schema_unrunnable"
    hostile = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^(a|aa){1000,}b$"}}}
    with pytest.raises(SchemaShapeError) as caught:
        job_schema(session, _register_directly(session, tenant, document, hostile))
    assert caught.value.code == "schema_unrunnable"


def test_a_worker_fails_such_a_job_with_the_code(tmp_path: Path) -> None:
    from service.store.session import make_engine, make_session_factory, run_migrations

    url = f"sqlite:///{tmp_path / 'store.db'}"
    run_migrations(url)
    factory: sessionmaker[Session] = make_session_factory(make_engine(url))
    hostile = {"type": "object", "properties": {"n": {"type": "array", "items": {"type": "string"}, "minItems": 10**9}}}
    with factory.begin() as session:
        tenant = repo.create_tenant(session, f"t-{uuid.uuid4().hex[:6]}")
        document, _ = repo.add_document(session, tenant.id, b"A note.\n", media_type="text/plain")
        job_id = _register_directly(session, tenant, document, hostile).id
    engine = DeterministicEngine()
    run_job(factory, job_id, engine, options_from(settings()), LimitsSpec())
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.error_code) == (JobStatus.FAILED, "schema_unrunnable")


NAMES = {"type": "array", "items": {"type": "string", "maxLength": 300}, "maxItems": 8}
ONE_LIST = {"type": "object", "properties": {"parties": NAMES}}
"""One list of eight names: about 5.5 GiB over the embedded model's vocabulary, under the default 8."""
THREE_LISTS = {"type": "object", "properties": {"parties": NAMES, "signatories": NAMES, "witnesses": NAMES}}


def test_under_outlines_core_a_schema_whose_index_would_not_fit_the_engine_is_refused() -> None:
    policy = policy_from(settings(grammar_backend="outlines_core", schema_admission_timeout_s=60))
    admit_schema(ONE_LIST, "one", policy)
    too_large = refused(THREE_LISTS, policy)
    assert too_large.code == "grammar_too_large"
    assert too_large.details == {"limit": "grammar_index_max_gib", "max": 8.0}
    # With llguidance, the default, the same schema is fine: the bound is outlines-core's.
    admit_schema(THREE_LISTS, "three", AdmissionPolicy(backend="llguidance"))


def test_under_outlines_core_another_gguf_is_sized_from_its_own_file(model_cache: Path, tmp_path: Path) -> None:
    from workers.engines.model_files import QWEN25_CODER_05B, ensure_embedded_model, gguf_vocab_size

    gguf = ensure_embedded_model(model_cache)
    assert gguf_vocab_size(gguf) == QWEN25_CODER_05B.vocab_size  # what the engine's n_vocab reports (tested there)
    # The same file under another name stands for an operator's own GGUF: nothing is known of it in advance.
    own = tmp_path / "own-model.gguf"
    own.symlink_to(gguf)
    policy = policy_from(settings(grammar_backend="outlines_core", model_path=own, schema_admission_timeout_s=60))
    assert policy.vocab_size is None
    assert refused(THREE_LISTS, policy).code == "grammar_too_large"
    admit_schema(ONE_LIST, "one", policy)
    # An API host without the workers' model volume, or a file that is not GGUF: the index is not sized here
    # and the schema is not refused for it (a job refuses it on a worker, in seconds).
    not_gguf = tmp_path / "not-a-model.gguf"
    not_gguf.write_bytes(b"GGUF but not really" * 100)
    for path in (tmp_path / "absent.gguf", not_gguf):
        unsized = settings(grammar_backend="outlines_core", model_path=path, schema_admission_timeout_s=60)
        admit_schema(THREE_LISTS, "three", policy_from(unsized))
