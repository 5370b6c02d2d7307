#!/usr/bin/env bash
# Runs once, on the first start of an empty Postgres volume (docker-entrypoint-initdb.d).
# The service logs in as abstractor_app; the migrations (run as the owner, POSTGRES_USER) find the
# role and grant it DML, but only SELECT/INSERT on the audit trail.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$ABSTRACTOR_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE abstractor_app LOGIN PASSWORD :'app_password';
GRANT CONNECT ON DATABASE abstractor TO abstractor_app;
SQL
