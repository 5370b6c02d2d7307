"""A job's whole life in one place: which schema, which key, how it is queued, requeued and recovered.

- `resolve`: the schema a submission names (built-ins first, then the tenant's) and the one a queued
  job was keyed with, in the shape the pipeline takes;
- `admission`: whether a tenant's JSON Schema may be registered (valid, an object, compilable);
- `identity`: the (model, backend) pair that keys a job, from settings or from a built engine;
- `submit`: the job row, its outbox row and its audit event, in the caller's transaction;
- `requeue`: what a failed run becomes (queued again with backoff, or failed), with its audit event;
- `recovery`: repairs from what the store knows (lost runs, lost messages, interrupted batches, retries);
- `messages`: the task message that travels through Redis (a job id, never content);
- `relay`: the outbox relay and the reconciler, the only code that talks to the broker.

The API, the batches, the embedded worker, the Celery worker and the relay call these; none re-derives
them. Importing this package loads nothing: its modules are imported one by one, so the API's process
never loads the relay, and nothing here imports the pipeline or the engines at import time.
"""
