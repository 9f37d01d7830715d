#!/bin/sh
# Compose Postgres init: runs once, when the postgres container starts on an empty data volume.
# Each service gets its own database (fip_<schema>), all owned by the application role `fip`; a
# service is handed only its own database's URL (compose.yaml), and PUBLIC may not connect to any.
# Secrets come from the container's environment, never from this file.
set -e
: "${FIP_DB_PASSWORD:?FIP_DB_PASSWORD must be set (see compose.yaml)}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
  --set=fip_password="$FIP_DB_PASSWORD" <<'SQL'
CREATE ROLE fip LOGIN PASSWORD :'fip_password';
CREATE DATABASE fip_users OWNER fip;
CREATE DATABASE fip_registry OWNER fip;
CREATE DATABASE fip_jobs OWNER fip;
CREATE DATABASE fip_files OWNER fip;
CREATE DATABASE fip_notify OWNER fip;
CREATE DATABASE fip_monitor OWNER fip;
REVOKE ALL ON DATABASE fip_users, fip_registry, fip_jobs, fip_files, fip_notify, fip_monitor FROM PUBLIC;
SQL
