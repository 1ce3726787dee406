#!/usr/bin/env bash
# Runs inside `pg-tmp run`: PGHOST/PGPORT/... point at the throwaway cluster.
set -euo pipefail
psql=(psql -X -v ON_ERROR_STOP=1 --no-psqlrc -P pager=off)
step() { printf '\n== %s\n' "$*"; }

step "throwaway PostgreSQL cluster: $PG_INGEST_DSN"
"${psql[@]}" -Atc "SELECT version()"

step "CREATE EXTENSION pg_ingest"
"${psql[@]}" -c "CREATE EXTENSION pg_ingest"
"${psql[@]}" -c "SELECT ingest.version() AS pg_ingest_version"

step "settings"
"${psql[@]}" -c "SELECT name, setting, short_desc FROM pg_settings WHERE name LIKE 'ingest.%' ORDER BY name"
"${psql[@]}" -c "SHOW shared_preload_libraries"
