#!/usr/bin/env bash
# Runs inside `pg-tmp run`: PGHOST/PGPORT/... point at the throwaway cluster.
# DEMO_ROWS (default 1000000) sets the size of the order feed; CI runs a smaller one.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${DEMO_ROWS:-1000000}
psql=(psql -X -v ON_ERROR_STOP=1 --no-psqlrc -P pager=off)
cli=$(command -v pg_ingest || echo "$PWD/build/cli/pg_ingest")
step() { printf '\n== %s\n' "$*"; }
fail() { echo "demo: FAIL: $*" >&2; exit 1; }
work=$PG_TMP_DIR/demo
mkdir -p "$work"

step "throwaway PostgreSQL cluster (pg_ingest preloaded)"
"${psql[@]}" -Atc "SELECT version()"
"${psql[@]}" -c "CREATE EXTENSION pg_ingest" -c "SELECT ingest.version() AS pg_ingest_version"
"${psql[@]}" -c "SELECT name, setting, short_desc FROM pg_settings WHERE name LIKE 'ingest.%' ORDER BY name"

step "an order table with 100000 existing orders"
"${psql[@]}" -c "CREATE TABLE orders (order_id bigint PRIMARY KEY, status text NOT NULL, amount numeric(12,2) CHECK (amount >= 0), updated_at timestamptz NOT NULL DEFAULT now())"
"${psql[@]}" -c "INSERT INTO orders (order_id, status, amount) SELECT g, 'new', g FROM generate_series(1, 100000) g"

step "an order feed: $ROWS rows, keys repeated (status changes), a few malformed lines"
# Keys 50001.. overlap the existing orders and repeat (every key about twice: the later
# status wins); every 100000th line is malformed and every 250000th breaks the CHECK.
awk -v n="$ROWS" 'BEGIN {
    srand(42); print "order_id,status,amount";
    split("paid,shipped,delivered,refunded", st, ",");
    for (i = 1; i <= n; i++) {
        if (i % 100000 == 7) { print "#" i ",this line is not an order,"; continue }
        k = 50000 + int(rand() * n / 2) + 1;
        a = (i % 250000 == 11) ? -1 : sprintf("%.2f", (k % 997) + 0.5);
        print k "," st[1 + int(rand() * 4)] "," a;
    } }' >"$work/orders.csv"
ls -l "$work/orders.csv" | awk '{ printf "%s bytes, ", $5 }'; wc -l <"$work/orders.csv" | awk '{ print $1 " lines" }'
head -4 "$work/orders.csv"

step "pg_ingest load: upsert in batches over 2 connections, bad rows to a reject file"
set +e
"$cli" load --table orders --columns order_id,status,amount --header --conflict upsert \
    --batch-size 200000 --parallel 2 --reject-file "$work/rejects.csv" "$work/orders.csv"
rc=$?
set -e
echo "exit code $rc (0 loaded, 2 loaded with rejected rows, 1 failed)"
[ "$rc" -eq 2 ] || { echo "demo: expected exit code 2 (rows were rejected)" >&2; exit 1; }

step "reject report"
cat "$work/rejects.csv"

step "the result"
"${psql[@]}" -c "SELECT status, count(*) FROM orders GROUP BY status ORDER BY status"
"${psql[@]}" -c "SELECT count(*) AS orders, max(order_id) AS highest_order FROM orders"
# Checked against the feed read independently: every good line in file order, the last one of
# each key winning; the malformed lines and the CHECK violations rejected, nothing else.
"${psql[@]}" -q -c "CREATE TEMP TABLE feed (line bigserial, order_id text, status text, amount text)" \
    -c "\\copy feed (order_id, status, amount) FROM '$work/orders.csv' WITH (FORMAT csv, HEADER)" \
    -c "CREATE TABLE demo_expected AS
          SELECT DISTINCT ON (order_id::bigint) order_id::bigint AS order_id, status, amount::numeric(12,2) AS amount
          FROM feed WHERE order_id ~ '^[0-9]+\$' AND amount::numeric >= 0
          ORDER BY order_id::bigint, line DESC" \
    -c "CREATE TABLE demo_bad AS SELECT count(*) AS n FROM feed WHERE order_id !~ '^[0-9]+\$' OR amount::numeric < 0"
wrong=$("${psql[@]}" -Atc "SELECT count(*) FROM orders o FULL JOIN
      (SELECT order_id, status, amount FROM demo_expected
       UNION ALL SELECT g, 'new', g FROM generate_series(1, 100000) g
       WHERE g NOT IN (SELECT order_id FROM demo_expected)) e USING (order_id)
    WHERE o.status IS DISTINCT FROM e.status OR o.amount IS DISTINCT FROM e.amount")
[ "$wrong" = 0 ] || fail "$wrong orders differ from the feed applied line by line"
bad=$("${psql[@]}" -Atc "SELECT n FROM demo_bad")
rejected=$(($(wc -l <"$work/rejects.csv") - 1))
[ "$rejected" = "$bad" ] && [ "$bad" -gt 0 ] ||
    fail "$bad bad lines in the feed, $rejected lines in the reject file"
echo "checked: every order as the feed applied line by line gives it; $bad bad lines rejected"

step "an async load job: stage a day's corrections, let a background worker apply them"
"${psql[@]}" -Atc "COPY (SELECT g, 'corrected', g % 100 FROM generate_series(1, 50000) g) TO STDOUT (FORMAT csv)" >"$work/corrections.csv"
"$cli" load --table orders --columns order_id,status,amount --conflict upsert --async \
    --job-key corrections-day-1 "$work/corrections.csv"
echo "the same job key again: the job is found FINISH and nothing is loaded twice"
"$cli" load --table orders --columns order_id,status,amount --conflict upsert --async \
    --job-key corrections-day-1 "$work/corrections.csv"
"$cli" jobs
"${psql[@]}" -c "SELECT count(*) FILTER (WHERE status = 'corrected') AS corrected FROM orders"
jobs=$("${psql[@]}" -Atc "SELECT count(*) || ' ' || min(state::text) || ' ' || sum(rows_inserted + rows_updated)
    FROM ingest.get_async_load_job() WHERE job_key = 'corrections-day-1'")
[ "$jobs" = "1 FINISH 50000" ] || fail "the corrections job: '$jobs', expected one FINISH job of 50000 rows"
corrected=$("${psql[@]}" -Atc "SELECT count(*) FROM orders WHERE status = 'corrected' AND order_id <= 50000 AND amount = order_id % 100")
[ "$corrected" = 50000 ] || fail "$corrected corrected orders, expected 50000"

step "pg_ingest export: parallel COPY TO split on the key"
"$cli" export --table orders --split-key order_id --parallel 2 --where "status = 'corrected'" \
    --output "$work/corrected.csv"
wc -l <"$work/corrected.csv" | awk '{ print $1 " rows exported" }'
exported=$(sort -u "$work/corrected.csv" | wc -l)
[ "$exported" = 50000 ] && [ "$(wc -l <"$work/corrected.csv")" = 50000 ] ||
    fail "$exported distinct rows exported, expected the 50000 corrected orders once each"

step "done (the cluster is stopped and removed)"
