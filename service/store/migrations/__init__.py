"""Alembic migrations of the store; run them with `service.store.session.run_migrations`."""
