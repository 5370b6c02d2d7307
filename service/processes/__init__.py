"""The processes a deployment runs, each wired from the one `Settings`: where engines are built.

- `embedded`: `abstractor serve`, the API with an in-process worker over one SQLite file;
- `production`: `abstractor api` (with the outbox relay beside it when a broker is set), `abstractor relay`
  and `abstractor worker` (a Celery worker).
Nothing but the CLI and the batch driver imports this package (the API never does).
"""
