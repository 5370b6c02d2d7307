"""The durable side: typed ORM models, sessions, repositories, the audit trail and the migrations.

The caller owns the transaction: nothing here commits. A use case does

    factory = make_session_factory(make_engine(url))
    with factory.begin() as session:          # commits once, or rolls back on error
        job, created = repositories.create_job(session, ...)
        if created:
            repositories.add_outbox(session, job.id)
        audit.record_event(session, ...)      # last: it holds the chain lock until commit

Migrations are a separate step: `service.store.session.run_migrations(url)` (what
`abstractor migrate` should call), or `alembic upgrade head` from the repository root with
ABSTRACTOR_DATABASE_URL set. On Postgres run them as the tables' owner; the service itself
connects as a member of the app role (ABSTRACTOR_DATABASE_APP_ROLE, default `abstractor_app`).
"""
