"""Repositories: small functions over a Session that flush but never commit (the caller owns it).

One module per aggregate (tenants, API keys, documents, user schemas, jobs, results, outbox, batches,
webhook deliveries, review decisions), all re-exported here so that callers write `repo.create_job(...)` after
`from service.store import repositories as repo`. Tenant scoping is in the signatures: every read the
API makes takes a `tenant_id`, and another tenant's id simply finds nothing. Unique races are settled
inside a SAVEPOINT, so a losing insert leaves the caller's transaction usable and returns the winner's
row. No SQL is written outside this package and `service.store` (the audit trail, the sessions).
"""

from service.store.repositories.api_keys import create_api_key, find_api_key, revoke_api_key
from service.store.repositories.batches import (
    add_batch_item,
    batch_job_ids,
    batch_rows,
    batch_status_counts,
    create_batch,
    find_batch,
    get_batch,
    set_batch_item_job,
    touch_batch,
)
from service.store.repositories.documents import add_document, get_document, read_document_bytes
from service.store.repositories.jobs import (
    ALLOWED_TRANSITIONS,
    MAX_ERROR_MESSAGE,
    count_jobs_by_status,
    create_job,
    get_job,
    load_job,
    lock_overdue_runs,
    lock_queued_without_message,
    transition,
)
from service.store.repositories.outbox import (
    EXTRACT_TOPIC,
    add_outbox,
    claim_outbox,
    jobs_with_unsent_outbox,
    mark_outbox_sent,
    release_outbox,
)
from service.store.repositories.results import get_result, save_result
from service.store.repositories.reviews import (
    add_review_decision,
    get_api_key,
    list_review_decisions,
    review_decisions_for_jobs,
    reviewable_jobs,
)
from service.store.repositories.tenants import create_tenant, get_tenant, get_tenant_by_name
from service.store.repositories.user_schemas import (
    get_user_schema,
    list_user_schemas,
    mark_user_schema_used,
    register_user_schema,
)
from service.store.repositories.webhook_deliveries import (
    WEBHOOK_EVENTS,
    claim_webhook_deliveries,
    enqueue_job_webhook,
    record_webhook_attempt,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "EXTRACT_TOPIC",
    "MAX_ERROR_MESSAGE",
    "WEBHOOK_EVENTS",
    "add_batch_item",
    "add_document",
    "add_outbox",
    "add_review_decision",
    "batch_job_ids",
    "batch_rows",
    "batch_status_counts",
    "claim_outbox",
    "claim_webhook_deliveries",
    "count_jobs_by_status",
    "create_api_key",
    "create_batch",
    "create_job",
    "create_tenant",
    "enqueue_job_webhook",
    "find_api_key",
    "find_batch",
    "get_api_key",
    "get_batch",
    "get_document",
    "get_job",
    "get_result",
    "get_tenant",
    "get_tenant_by_name",
    "get_user_schema",
    "jobs_with_unsent_outbox",
    "list_review_decisions",
    "list_user_schemas",
    "load_job",
    "lock_overdue_runs",
    "lock_queued_without_message",
    "mark_outbox_sent",
    "mark_user_schema_used",
    "read_document_bytes",
    "record_webhook_attempt",
    "register_user_schema",
    "release_outbox",
    "review_decisions_for_jobs",
    "reviewable_jobs",
    "revoke_api_key",
    "save_result",
    "set_batch_item_job",
    "touch_batch",
    "transition",
]
