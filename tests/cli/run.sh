#!/usr/bin/env bash
# CLI tests for pg_ingest against a running server: run it inside a throwaway cluster,
#   scripts/pg-tmp run -- bash tests/cli/run.sh [path/to/pg_ingest]
# It expects PGHOST/PGPORT/PGUSER/PGDATABASE (exported by pg-tmp) and psql on PATH, creates the
# extension in its own database, prints one "ok N - ..." / "not ok N - ..." line per check and
# ends with "N passed, N failed" (exit status 1 when anything failed).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-$ROOT/build/cli/pg_ingest}
[ -x "$BIN" ] || { echo "no pg_ingest binary at $BIN" >&2; exit 1; }
: "${PGHOST:?run under scripts/pg-tmp run}" "${PGPORT:?}"

export PGDATABASE=pg_ingest_cli_tests PGUSER=${PGUSER:-postgres}
psql -q -d postgres -c "DROP DATABASE IF EXISTS $PGDATABASE" -c "CREATE DATABASE $PGDATABASE" >/dev/null
psql -q -c "CREATE EXTENSION pg_ingest" >/dev/null

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pg-ingest-cli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PG_INGEST_PROGRESS_INTERVAL=${PG_INGEST_PROGRESS_INTERVAL:-10}

passed=0
failed=0
n=0
ok() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n - $1"; }
not_ok() {
    n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"
    shift
    for line in "$@"; do echo "#   $line"; done
    if [ -s "$WORK/err" ]; then sed 's/^/#   stderr: /' "$WORK/err" | head -20; fi
}
# run ARGS...: runs pg_ingest, stdout to $WORK/out, stderr to $WORK/err, status to $rc.
run() { "$BIN" "$@" >"$WORK/out" 2>"$WORK/err"; rc=$?; }
sql() { psql -XAtq -c "$1"; }
# expect_rc NAME CODE: checks the last run's exit status.
expect_rc() { if [ "$rc" -eq "$2" ]; then ok "$1"; else not_ok "$1" "exit status $rc, expected $2"; fi; }
# expect_err NAME TEXT: stderr contains TEXT.
expect_err() {
    if grep -qF -- "$2" "$WORK/err"; then ok "$1"; else not_ok "$1" "stderr lacks: $2"; fi
}
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got: $2" "expected: $3"; fi; }

# ---------------------------------------------------------------------------------------------
# --help and bad arguments
for cmd in load export jobs wait cancel retry; do
    run "$cmd" --help
    if [ "$rc" -eq 0 ] && grep -q "^Usage: pg_ingest $cmd" "$WORK/out" && grep -q "^Examples:" "$WORK/out"; then
        ok "$cmd --help shows usage and examples"
    else
        not_ok "$cmd --help shows usage and examples" "exit $rc"
    fi
done
run --help
expect_rc "pg_ingest --help exits 0" 0
run
expect_rc "no command: exit 1" 1
run frobnicate
expect_rc "unknown command: exit 1" 1
expect_err "unknown command is named" "unknown command 'frobnicate'"

run load data.csv
expect_rc "load without --table: exit 1" 1
expect_err "load without --table: message" "--table is required"
run load --table t --tabel x
expect_rc "unknown option: exit 1" 1
expect_err "unknown option: named" "unknown option '--tabel'"
run load --table t --parallel 0
expect_err "--parallel 0 rejected" "--parallel expects an integer from 1 to 64"
run load --table t --exception-mode strict --reject-file r.csv
expect_rc "--reject-file with strict: exit 1" 1
expect_err "--reject-file with strict: message" "needs --exception-mode ignore"
run load --table t --conflict sideways
expect_err "bad --conflict value named" "--conflict must be one of none, upsert, update, ignore, strict"
run load --table t --option nosuchoption=1
expect_rc "unknown --option: exit 1" 1
expect_err "unknown --option: named" "nosuchoption"
run load --table t /nonexistent/file.csv
expect_rc "missing input file: exit 1" 1
expect_err "missing input file: named" "cannot open '/nonexistent/file.csv'"
run export --table t --parallel 2
expect_err "export --parallel without --split-key" "--parallel needs --split-key"
run wait abc
expect_err "wait with a bad id" "job id must be a positive integer"
run load --table t --mode insert "$WORK/none.csv"
expect_rc "--mode insert not available yet: exit 1" 1

# Secrets are never printed.
run load --table t --dsn "postgresql://loader:Sekr3tPw@127.0.0.1:1/db" --connect-timeout 2 /dev/null
if [ "$rc" -eq 1 ] && ! grep -q "Sekr3tPw" "$WORK/err" "$WORK/out"; then
    ok "connection failure: exit 1 and no password in the output"
else
    not_ok "connection failure: exit 1 and no password in the output" "exit $rc"
fi

# ---------------------------------------------------------------------------------------------
# Round trip: canonical CSV from the server -> load -> export -> same rows.
sql "CREATE TABLE src (id bigint PRIMARY KEY, name text, note text, amount numeric, seen timestamptz)"
sql "INSERT INTO src SELECT g, 'name ' || g, CASE WHEN g % 7 = 0 THEN NULL WHEN g % 5 = 0 THEN E'multi\nline, \"quoted\"' ELSE 'ünïcødé ' || g END, g * 1.25, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(-500, 4499) g"
psql -XAtq -c "\\copy src TO '$WORK/src.csv' WITH (FORMAT csv, HEADER)"
sql "CREATE TABLE dst (LIKE src INCLUDING ALL)"
run load --table public.dst --header --batch-size 700 --parallel 3 "$WORK/src.csv"
expect_rc "load of 5000 rows in parallel batches: exit 0" 0
expect_err "load summary" "loaded 5000 rows into \"public\".\"dst\": 5000 inserted"
run export --table dst --split-key id --parallel 4 --header --output "$WORK/dst.csv"
expect_rc "export: exit 0" 0
expect_err "export summary" "exported 5000 rows"
if [ "$(head -1 "$WORK/dst.csv")" = "$(head -1 "$WORK/src.csv")" ] &&
    cmp -s <(tail -n +2 "$WORK/src.csv" | sort) <(tail -n +2 "$WORK/dst.csv" | sort); then
    ok "round trip: exported CSV equals the loaded CSV (as sorted lines)"
else
    not_ok "round trip: exported CSV equals the loaded CSV (as sorted lines)"
fi
expect_eq "round trip: tables equal" \
    "$(sql "SELECT count(*) FROM (SELECT * FROM src EXCEPT SELECT * FROM dst) d")/$(sql "SELECT count(*) FROM dst")" "0/5000"
ls "$WORK"/dst.csv.partial-* >/dev/null 2>&1 && not_ok "export leaves no partial file" || ok "export leaves no partial file"

# Export to stdout, columns and filter.
run export --table dst --columns id,name --where "id BETWEEN 1 AND 3" --split-key id --parallel 2
expect_eq "export --columns --where to stdout" "$(sort "$WORK/out" | tr '\n' ' ')" "1,name 1 2,name 2 3,name 3 "
run export --table dst --columns id,nope
expect_rc "export of a bad column: exit 1" 1
expect_err "export of a bad column: message" 'column "nope" does not exist'
run export --table dst --split-key name --parallel 2
expect_err "export with a text split key" "it must be smallint, integer or bigint"

# stdin, one transaction, --quiet prints nothing.
sql "CREATE TABLE q (id int PRIMARY KEY, v text)"
printf '1,a\n2,b\n' | "$BIN" load --table q --quiet >"$WORK/out" 2>"$WORK/err"
rc=$?
expect_rc "load from stdin: exit 0" 0
if [ ! -s "$WORK/err" ] && [ ! -s "$WORK/out" ]; then ok "--quiet: no output"; else not_ok "--quiet: no output"; fi
expect_eq "load from stdin: rows" "$(sql "SELECT string_agg(id || v, ' ' ORDER BY id) FROM q")" "1a 2b"

# Upsert and counts; jdbc URL.
printf '2,B\n3,c\n' >"$WORK/up.csv"
run load --table q --conflict upsert --dsn "jdbc:postgresql://127.0.0.1:$PGPORT/$PGDATABASE?user=$PGUSER" "$WORK/up.csv"
expect_rc "upsert through a jdbc URL: exit 0" 0
expect_err "upsert counts" "1 inserted, 1 updated, 0 skipped, 0 rejected"
expect_eq "upsert result" "$(sql "SELECT string_agg(id || v, ' ' ORDER BY id) FROM q")" "1a 2B 3c"
printf '3,x\n4,d\n' >"$WORK/ign.csv"
run load --table q --option conflictmode=ignore "$WORK/ign.csv"
expect_err "--option conflictmode=ignore" "1 inserted, 0 updated, 1 skipped"

# TSV, column subset, NULL marker.
sql "CREATE TABLE tsv (id int PRIMARY KEY, a text, b text DEFAULT 'dflt')"
printf 'a\tid\nx\t1\n-\t2\n' >"$WORK/t.tsv"
run load --table tsv --format tsv --header --columns a,id --null - "$WORK/t.tsv"
expect_rc "tsv with --columns and --null: exit 0" 0
expect_eq "tsv result" "$(sql "SELECT string_agg(id || ':' || coalesce(a, 'NULL') || ':' || b, ' ' ORDER BY id) FROM tsv")" "1:x:dflt 2:NULL:dflt"

# ---------------------------------------------------------------------------------------------
# Exit codes and the reject file.
sql "CREATE TABLE r (id int PRIMARY KEY, qty int CHECK (qty >= 0), note text)"
printf 'id,qty,note\n1,5,ok\n2,x,"bad\nnumber"\n3,-1,negative\n4,7,ok\n' >"$WORK/r.csv"
run load --table r --header "$WORK/r.csv"
expect_rc "strict load with a bad row: exit 1" 1
expect_err "strict error names the input line" "r.csv, line 3)"
expect_eq "strict load: nothing loaded" "$(sql "SELECT count(*) FROM r")" "0"
run load --table r --header --reject-file "$WORK/rejects.csv" "$WORK/r.csv"
expect_rc "load with rejected rows: exit 2" 2
expect_eq "rows kept" "$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM r")" "1,4"
expect_eq "reject file: header and two rows" "$(head -1 "$WORK/rejects.csv"),$(grep -c '^"\?/' "$WORK/rejects.csv")" \
    "source,line,record,sqlstate,message,raw_row,2"
if grep -qF "r.csv,3,2,22P02,\"invalid input syntax for type integer: \"\"x\"\"\",\"2,x,\"\"bad" "$WORK/rejects.csv" &&
    grep -qF "r.csv,5,3,23514," "$WORK/rejects.csv" && grep -qF '"3,-1,negative"' "$WORK/rejects.csv"; then
    ok "reject file: source, line, record, sqlstate, message and raw row"
else
    not_ok "reject file: source, line, record, sqlstate, message and raw row" "$(cat "$WORK/rejects.csv")"
fi
sql "TRUNCATE r"
printf '1,5,"first record\nspans two lines"\n2,x,bad\n3,1,ok\n' >"$WORK/r2.csv"
run load --table r --reject-file "$WORK/rejects2.csv" "$WORK/r2.csv"
if [ "$rc" -eq 2 ] && grep -qF "r2.csv,3,2,22P02," "$WORK/rejects2.csv"; then
    ok "reject line numbers after a multi-line first record"
else
    not_ok "reject line numbers after a multi-line first record" "$(cat "$WORK/rejects2.csv")"
fi
sql "TRUNCATE r"
run load --table r --header --exception-mode ignore "$WORK/r.csv"
expect_rc "--exception-mode ignore without a file: exit 2" 2
expect_err "ignore mode: rejects counted" "2 rejected"
sql "TRUNCATE r"
run load --table r --header --batch-size 1 "$WORK/r.csv"
expect_rc "strict batched load: exit 1" 1
expect_eq "batches before the failure stay" "$(sql "SELECT count(*) FROM r")" "1"
expect_err "committed batches reported" "committed before the failure stay loaded"

# ---------------------------------------------------------------------------------------------
# Async load end to end.
sql "CREATE TABLE a (id int, v text)"
seq 1 3000 | sed 's/.*/&,v&/' >"$WORK/a.csv"
run load --table a --async --job-key ck-1 --parallel 2 --option max_temp_file_size=8000 --batch-size 250 "$WORK/a.csv"
expect_rc "async load: exit 0" 0
expect_eq "async load: rows" "$(sql "SELECT count(*) || '/' || count(DISTINCT id) FROM a")" "3000/3000"
run load --table a --async --job-key ck-1 --parallel 2 --option max_temp_file_size=8000 --batch-size 250 "$WORK/a.csv"
expect_rc "async re-run with the same key: exit 0" 0
expect_eq "async re-run: nothing loaded twice" "$(sql "SELECT count(*) FROM a")" "3000"
expect_err "async re-run: skipped chunks reported" "not staged again"
job=$(sql "SELECT min(id) FROM ingest.get_async_load_job() WHERE job_key = 'ck-1'")
run jobs --table a
if [ "$rc" -eq 0 ] && grep -q "^ID .*STATE" "$WORK/out" && grep -qE "^$job +ck-1 .*FINISH" "$WORK/out"; then
    ok "jobs lists the job"
else
    not_ok "jobs lists the job" "$(cat "$WORK/out")"
fi
run wait "$job" --timeout 30
expect_rc "wait on a finished job: exit 0" 0
run cancel "$job"
expect_rc "cancel of a finished job: exit 1" 1
expect_err "cancel of a finished job: message" "pg_ingest cancel:"
run retry "$job"
expect_rc "retry of a finished job: exit 1" 1
run wait 987654
expect_rc "wait on an unknown job: exit 1" 1
expect_err "wait on an unknown job: message" "does not exist"

# Async with a failing job, a cancel and a retry.
sql "CREATE TABLE af (id int PRIMARY KEY, qty int CHECK (qty >= 0))"
printf '1,1\n2,-1\n' >"$WORK/af.csv"
run load --table af --async --conflict upsert "$WORK/af.csv"
expect_rc "async load whose job fails: exit 1" 1
expect_err "failed job reported" "is FAIL"
fjob=$(sql "SELECT max(id) FROM ingest.get_async_load_job() WHERE target = 'af'::regclass")
run retry "$fjob"
expect_rc "retry of a failed job: exit 0" 0
expect_eq "retry prints the new state" "$(cat "$WORK/out")" "job $fjob READY"
run wait "$fjob" --timeout 60
expect_rc "wait on a job that fails again: exit 1" 1
ijob=$(sql "SELECT id FROM ingest.begin_async_load('af')")
run cancel "$ijob"
expect_eq "cancel of an INIT job" "$rc:$(cat "$WORK/out")" "0:job $ijob CANCEL"
run wait "$ijob" --timeout 1
expect_rc "wait on a cancelled job: exit 1" 1

# Async with ignore: rejected rows reported in the reject file, exit 2.
run load --table af --async --conflict upsert --reject-file "$WORK/arej.csv" "$WORK/af.csv"
expect_rc "async load with rejects: exit 2" 2
if grep -q '23514' "$WORK/arej.csv" && grep -qF '"(2,-1)"' "$WORK/arej.csv"; then
    ok "async reject file lists the row"
else
    not_ok "async reject file lists the row" "$(cat "$WORK/arej.csv")"
fi

# Async without the extension: clear error.
psql -q -d postgres -c "DROP DATABASE IF EXISTS pg_ingest_cli_noext" -c "CREATE DATABASE pg_ingest_cli_noext" >/dev/null
psql -q -d pg_ingest_cli_noext -c "CREATE TABLE a (id int)" >/dev/null
echo 1 | PGDATABASE=pg_ingest_cli_noext "$BIN" load --table a --async >"$WORK/out" 2>"$WORK/err"
rc=$?
expect_rc "async without the extension: exit 1" 1
expect_err "async without the extension: message" "the pg_ingest extension is not installed"

# Progress lines when stderr is not a terminal.
seq 1 300000 | sed 's/.*/&,p/' >"$WORK/big.csv"
sql "CREATE TABLE big (id int, v text)"
PG_INGEST_PROGRESS_INTERVAL=0.01 "$BIN" load --table big "$WORK/big.csv" >"$WORK/out" 2>"$WORK/err"
rc=$?
if [ "$rc" -eq 0 ] && grep -qE '^load: [0-9]+ rows, .*B/s, [0-9]+%' "$WORK/err"; then
    ok "plain progress lines on a non-terminal"
else
    not_ok "plain progress lines on a non-terminal" "exit $rc"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
