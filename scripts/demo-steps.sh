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

step "COPY ON CONFLICT: an order feed with repeated keys and a malformed line"
"${psql[@]}" -c "CREATE TABLE orders (order_id bigint PRIMARY KEY, status text NOT NULL, amount numeric(12,2) CHECK (amount >= 0), updated_at timestamptz DEFAULT now())"
"${psql[@]}" -c "INSERT INTO orders (order_id, status, amount) SELECT g, 'new', g FROM generate_series(1, 100000) g"
# 200k rows: half update existing orders, half are new; order 5 appears twice (last wins);
# line 3 is malformed and line 4 violates the CHECK constraint.
{
    echo "order_id,status,amount"
    echo "5,paid,5.00"
    echo "oops,this is not an order,"
    echo "6,paid,-1"
    "${psql[@]}" -Atc "COPY (SELECT g, CASE WHEN g % 3 = 0 THEN 'shipped' ELSE 'paid' END, g * 1.5 FROM generate_series(50001, 250000) g) TO STDOUT (FORMAT csv)"
    echo "5,refunded,0"
} >"$PG_TMP_DIR/orders.csv"
# stats and rejects belong to the session, so they are read in the same psql session
"${psql[@]}" -c "\\timing on" \
    -c "\\copy orders (order_id, status, amount) FROM '$PG_TMP_DIR/orders.csv' WITH (FORMAT csv, HEADER true, ON_CONFLICT 'upsert', ON_ERROR 'ignore')" \
    -c "\\timing off" -c "SELECT * FROM ingest.last_copy_stats()" -c "SELECT * FROM ingest.last_copy_rejects()"
"${psql[@]}" -c "SELECT order_id, status, amount FROM orders WHERE order_id IN (5, 6, 50001, 250000) ORDER BY 1"
"${psql[@]}" -c "SELECT count(*) AS orders, count(*) FILTER (WHERE status = 'new') AS untouched FROM orders"
