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
run wait 1 --timeout 1e10
expect_rc "wait --timeout past three years: a usage error" 1
expect_err "wait --timeout past three years: named" "--timeout expects at most 100000000 seconds"
run load --table t --option exceptionmode=strict --reject-file "$WORK/never.csv" "$WORK/none.csv"
expect_rc "--option exceptionmode=strict with --reject-file: exit 1" 1
expect_err "--option exceptionmode=strict with --reject-file: named" "it needs exceptionmode=ignore, not strict"
run load --table t --format text --encoding SJIS --batch-size 10 "$WORK/none.csv"
expect_rc "--encoding SJIS with --batch-size: exit 1" 1
expect_err "--encoding SJIS with --batch-size: says why" "cannot be cut into batches safely"
PGCLIENTENCODING=BIG5 run load --table t --format text --parallel 2 "$WORK/none.csv"
expect_err "PGCLIENTENCODING=BIG5 with --parallel: refused too" "input in BIG5 cannot be cut into batches safely"
run load --table t --mode insert --async "$WORK/none.csv"
expect_rc "--mode insert with --async: exit 1" 1
expect_err "--mode insert with --async: message" "--async stages with COPY: it cannot be combined with --mode insert"
run load --table t --mode upsert --encoding LATIN1 "$WORK/none.csv"
expect_rc "--mode upsert with a non-UTF-8 --encoding: exit 1" 1
expect_err "--mode upsert with --encoding: message" "--mode upsert reads UTF-8 only"
run load --table t --mode merge "$WORK/none.csv"
expect_err "bad --mode value named" "--mode must be one of copy, insert, upsert, not 'merge'"
run load --table t --mode insert --exception-mode strict --reject-file r.csv
expect_err "--mode insert, --reject-file with strict: message" "needs --exception-mode ignore"
run load --table nosuchtable --mode insert /dev/null
expect_rc "--mode insert into a missing table: exit 1" 1
expect_err "--mode insert into a missing table: message" 'relation "nosuchtable" does not exist'
run jobs --count 2
expect_err "jobs --count without --watch" "--count applies to --watch only"
run load --table t --option connectionmaxactive=1000 "$WORK/none.csv"
expect_rc "--option connectionmaxactive above 64: exit 1" 1
expect_err "--option connectionmaxactive above 64: bounded as --parallel" \
    "--option connectionmaxactive=1000: at most 64 connections, as --parallel"
PGCLIENTENCODING=LATIN1 run load --table t --mode insert "$WORK/none.csv"
expect_rc "PGCLIENTENCODING=LATIN1 with --mode insert: exit 1" 1
expect_err "PGCLIENTENCODING=LATIN1 with --mode insert: refused, naming it" \
    "PGCLIENTENCODING=LATIN1: --mode insert reads UTF-8 only"

# Secrets are never printed.
run load --table t --dsn "postgresql://loader:Sekr3tPw@127.0.0.1:1/db" --connect-timeout 2 /dev/null
if [ "$rc" -eq 1 ] && ! grep -q "Sekr3tPw" "$WORK/err" "$WORK/out"; then
    ok "connection failure: exit 1 and no password in the output"
else
    not_ok "connection failure: exit 1 and no password in the output" "exit $rc"
fi

# --option connecttimeoutms bounds connecting (unless --connect-timeout is given), against a
# server that accepts the connection and never answers.
perl -MIO::Socket::INET -e '$| = 1; my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
    LocalPort => 0, Listen => 5) or die "listen: $!"; print $s->sockport, "\n"; sleep 120' \
    >"$WORK/silent.port" &
silent_pid=$!
for _ in $(seq 50); do [ -s "$WORK/silent.port" ] && break; sleep 0.1; done
silent_port=$(cat "$WORK/silent.port")
t0=$(date +%s)
run load --table t --dsn "host=127.0.0.1 port=$silent_port dbname=db user=u" \
    --option connecttimeoutms=1500 /dev/null
t1=$(date +%s)
expect_eq "--option connecttimeoutms=1500 against a silent server: exit 1 within 10 s" \
    "$rc:$((t1 - t0 < 10))" "1:1"
expect_err "--option connecttimeoutms: the deadline named" "timed out after 15"
# A signal while the load is still connecting ends it at once (nothing was sent), in every mode.
for mode_args in "--mode copy" "--mode insert" "--async"; do
    # shellcheck disable=SC2086
    "$BIN" load --table t --dsn "host=127.0.0.1 port=$silent_port dbname=db user=u" $mode_args \
        /dev/null >"$WORK/out" 2>"$WORK/err" &
    loader=$!
    sleep 1
    t0=$(date +%s)
    kill -TERM "$loader"
    wait "$loader"
    rc=$?
    t1=$(date +%s)
    expect_eq "SIGTERM while connecting ($mode_args): ended by the signal within 3 s" \
        "$rc:$((t1 - t0 < 3))" "143:1"
done
kill "$silent_pid" 2>/dev/null
wait "$silent_pid" 2>/dev/null

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
# --output that is not a regular file is written in place: a FIFO stays a FIFO and its reader
# gets the rows; through a symbolic link the file it names gets them and the link stays.
mkfifo "$WORK/exp.fifo"
timeout 30 cat "$WORK/exp.fifo" >"$WORK/exp-fifo.csv" &
fifo_reader=$!
run export --table dst --split-key id --parallel 2 --output "$WORK/exp.fifo"
wait "$fifo_reader"
expect_rc "export into a FIFO: exit 0" 0
# (The rows hold line breaks: compared as sorted lines with the export above, header removed.)
if [ -p "$WORK/exp.fifo" ] && cmp -s <(sort "$WORK/exp-fifo.csv") <(tail -n +2 "$WORK/dst.csv" | sort); then
    ok "export into a FIFO: it stays a FIFO and its reader gets the rows"
else
    not_ok "export into a FIFO: it stays a FIFO and its reader gets the rows" "$(ls -l "$WORK/exp.fifo"; wc -c <"$WORK/exp-fifo.csv")"
fi
echo old >"$WORK/exp-real.csv"
ln -s "$WORK/exp-real.csv" "$WORK/exp-link.csv"
run export --table dst --split-key id --output "$WORK/exp-link.csv"
if [ -L "$WORK/exp-link.csv" ] && cmp -s <(sort "$WORK/exp-real.csv") <(tail -n +2 "$WORK/dst.csv" | sort); then
    ok "export through a symbolic link: the link stays and the file it names gets the rows"
else
    not_ok "export through a symbolic link: the link stays and the file it names gets the rows" "$(ls -l "$WORK"/exp-*)"
fi
ln -s exp-new.csv "$WORK/exp-dangling.csv"  # relative, to a file not there yet
run export --table dst --split-key id --output "$WORK/exp-dangling.csv"
if [ -L "$WORK/exp-dangling.csv" ] && cmp -s <(sort "$WORK/exp-new.csv") <(tail -n +2 "$WORK/dst.csv" | sort); then
    ok "export through a link to a file not there yet: the link stays and the file is made"
else
    not_ok "export through a link to a file not there yet: the link stays and the file is made" "$(ls -l "$WORK"/exp-*)"
fi
# Stopped by a signal while it writes: the partial file goes with it.
"$BIN" export --quiet --table dst --split-key id --parallel 2 \
    --where "pg_sleep(0.002) IS NOT NULL" --output "$WORK/exp-int.csv" 2>/dev/null &
export_pid=$!
# Once it writes its partial file (its handler is installed by then).
for _ in $(seq 1 100); do
    ls "$WORK"/exp-int.csv.partial-* >/dev/null 2>&1 && break
    sleep 0.1
done
kill -TERM "$export_pid"
wait "$export_pid"
export_rc=$?
expect_eq "export stopped by SIGTERM: exit 143 and no partial file left" \
    "$export_rc:$(ls "$WORK"/exp-int.csv.partial-* 2>/dev/null | wc -l)" "143:0"

# Export to stdout, columns and filter.
run export --table dst --columns id,name --where "id BETWEEN 1 AND 3" --split-key id --parallel 2
expect_eq "export --columns --where to stdout" "$(sort "$WORK/out" | tr '\n' ' ')" "1,name 1 2,name 2 3,name 3 "
run export --table dst --columns id,nope
expect_rc "export of a bad column: exit 1" 1
expect_err "export of a bad column: message" 'column "nope" does not exist'
run export --table dst --split-key name --parallel 2 --header
expect_err "export with a text split key" "it must be smallint, integer or bigint"
expect_eq "export with a text split key: nothing written, not even the header" "$(wc -c <"$WORK/out")" 0

# An --output file replaced keeps its mode (not the umask's); a blank --where filters nothing;
# a quoted column name may hold a comma (export and load); errors name the user's path and why,
# once prefixed.
echo old >"$WORK/exp-mode.csv"
chmod 600 "$WORK/exp-mode.csv"
run export --table dst --columns id --where "id = 1" --output "$WORK/exp-mode.csv"
expect_eq "export over a 0600 file: exit 0, the mode kept, the rows in it" \
    "$rc:$(stat -c %a "$WORK/exp-mode.csv"):$(cat "$WORK/exp-mode.csv")" "0:600:1"
# A symbolic link planted at the temporary file's name is refused, not followed.
echo secret >"$WORK/victim.txt"
echo old >"$WORK/exp-sym.csv"
bash -c 'ln -s "$1/victim.txt" "$1/exp-sym.csv.partial-$$"; exec "$2" export --table dst --columns id --where "id = 1" --output "$1/exp-sym.csv"' \
    _ "$WORK" "$BIN" >"$WORK/out" 2>"$WORK/err"
rc=$?
expect_eq "export with a link planted at its temporary name: exit 1, nothing written through it" \
    "$rc:$(cat "$WORK/victim.txt"):$(cat "$WORK/exp-sym.csv")" "1:secret:old"
expect_err "export with a link planted at its temporary name: says why" "File exists"
rm -f "$WORK"/exp-sym.csv.partial-*
run export --table dst --columns id --where "  "
expect_eq "export --where of blanks: every row" "$rc:$(wc -l <"$WORK/out")" "0:5000"
sql 'CREATE TABLE "co,ma" (id int PRIMARY KEY, "a,b" text, "x""y" text)'
printf '1,p,q\n' >"$WORK/coma.csv"
run load --table '"co,ma"' --columns 'id,"a,b","x""y"' "$WORK/coma.csv"
expect_eq "load --columns with a comma inside a quoted name" "$rc:$(sql 'SELECT "a,b" || "x""y" FROM "co,ma"')" "0:pq"
run export --table '"co,ma"' --columns '"a,b", "x""y"'
expect_eq "export --columns with a comma inside a quoted name" "$rc:$(cat "$WORK/out")" "0:p,q"
run export --table dst --output "$WORK/no-such-dir/x.csv"
expect_rc "export into a missing directory: exit 1" 1
expect_err "export into a missing directory: the path and why" \
    "cannot create '$WORK/no-such-dir/x.csv' (its temporary file"
expect_err "export into a missing directory: the reason" "No such file or directory"
run export --table dst --columns id --output /dev/full
expect_eq "export into /dev/full: exit 1, the device named" \
    "$rc:$(grep -c "cannot write '/dev/full': export: writing the output failed" "$WORK/err")" "1:1"
run export --table dst --where "id > 0) OR (id > 0"
expect_err "a library error is prefixed once" "pg_ingest export: the WHERE filter"

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
# PGCLIENTENCODING names the input's encoding in copy mode (the library's sessions are UTF8).
sql "CREATE TABLE enc (id int PRIMARY KEY, v text)"
printf '1,caf\xe9\n' >"$WORK/latin1.csv"
PGCLIENTENCODING=LATIN1 run load --table enc "$WORK/latin1.csv"
expect_eq "PGCLIENTENCODING=LATIN1, --mode copy: the input read as LATIN1" "$rc:$(sql "SELECT v FROM enc")" "0:café"

# TSV, column subset, NULL marker.
sql "CREATE TABLE tsv (id int PRIMARY KEY, a text, b text DEFAULT 'dflt')"
printf 'a\tid\nx\t1\n-\t2\n' >"$WORK/t.tsv"
run load --table tsv --format tsv --header --columns a,id --null - "$WORK/t.tsv"
expect_rc "tsv with --columns and --null: exit 0" 0
expect_eq "tsv result" "$(sql "SELECT string_agg(id || ':' || coalesce(a, 'NULL') || ':' || b, ' ' ORDER BY id) FROM tsv")" "1:x:dflt 2:NULL:dflt"

# Format options COPY refuses are refused in every mode, with COPY's message, before anything is
# loaded (insert/upsert parse on the client and send no COPY: they used to load such input).
printf '1x\\x41\n' >"$WORK/fmt.txt"
for mode in copy insert upsert; do
    for bad in "--format text --delimiter x|COPY delimiter cannot be \"x\"" \
        "--format text --delimiter .|COPY delimiter cannot be \".\"" \
        "--null ,|COPY delimiter must not appear in the NULL specification" \
        "--delimiter \"|COPY delimiter and quote must be different" \
        "--null a\"b|CSV quote character must not appear in the NULL specification"; do
        read -r -a opts <<<"${bad%%|*}"
        run load --table tsv --mode "$mode" --conflict upsert "${opts[@]}" "$WORK/fmt.txt"
        expect_rc "--mode $mode ${bad%%|*}: exit 1" 1
        expect_err "--mode $mode ${bad%%|*}: COPY's message" "${bad#*|}"
    done
done
expect_eq "refused format options: nothing loaded" "$(sql "SELECT count(*) FROM tsv")" "2"

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
# Reject lines and records where the server counts lines differently from the file: it counts
# one per record plus, in CSV only, the line breaks inside quotes of the stream's kind (CR in a
# CRLF stream and in its first record, LF otherwise); text format's backslash-newline is not
# counted. The reject file's line stays the physical line where the record starts.
printf '0\t1\tz\n1\t5\ta\\\nb\\\nc\n2\tx\tbad\n3\t1\tok\n4\ty\tbad2\n' >"$WORK/bs.txt"
printf '0,1,z\r\n1,5,"a\nb\nc"\r\n2,x,bad\r\n3,1,ok\r\n4,y,bad2\r\n' >"$WORK/crlf-lf.csv"
printf '0,1,z\r\n1,5,"a\r\nb"\r\n2,x,bad\r\n3,1,ok\r\n4,y,bad2\r\n' >"$WORK/crlf.csv"
printf 'id,qty,note\r\n1,5,"a\r\nb"\r\n2,x,bad\r\n3,1,ok\r\n4,y,bad2\r\n' >"$WORK/crlf-first.csv"
for batch in 0 2; do
    for input in "bs.txt --format text" "crlf-lf.csv" "crlf.csv" "crlf-first.csv --header"; do
        read -r file opts <<<"$input"
        read -ra args <<<"$opts"
        [ "$batch" = 0 ] || args+=(--batch-size "$batch")
        sql "TRUNCATE r"
        run load --table r "${args[@]}" --reject-file "$WORK/lines-rej.csv" "$WORK/$file"
        case $file in
            crlf-first.csv) expected="2:4,2 6,4 " ;;
            crlf.csv) expected="2:4,3 6,5 " ;;
            *) expected="2:5,3 7,5 " ;;
        esac
        expect_eq "$file, batch size $batch: reject lines and records" \
            "$rc:$(tail -n +2 "$WORK/lines-rej.csv" | cut -d, -f2,3 | tr '\n' ' ')" "$expected"
    done
done
sql "TRUNCATE r"
run load --table r --format text "$WORK/bs.txt"
expect_err "text format, strict: the error names the record's first line" "bs.txt, line 5)"
run load --table r --header "$WORK/crlf-first.csv"
expect_err "CRLF CSV, strict: the error names the record's first line" "crlf-first.csv, line 4)"

# The reject file: never one of the inputs, and a run that fails before committing anything
# leaves the previous one as it was.
sql "TRUNCATE r"
cp "$WORK/r.csv" "$WORK/r-copy.csv"
run load --table r --header --reject-file "$WORK/r-copy.csv" "$WORK/r.csv" "$WORK/r-copy.csv"
expect_rc "--reject-file naming an input file: exit 1" 1
expect_err "--reject-file naming an input file: message" "is the input file"
expect_eq "--reject-file naming an input file: the input is intact, nothing loaded" \
    "$(cmp -s "$WORK/r.csv" "$WORK/r-copy.csv" && echo same):$(sql "SELECT count(*) FROM r")" "same:0"
# A reject file that cannot be written is refused before anything is loaded: a directory, a
# file in a directory that does not exist, a file without write permission (as a user other
# than root, who may write anyway); a refused path is not left behind.
sql "TRUNCATE r"
mkdir -p "$WORK/rejdir"
for bad in "$WORK/rejdir" "$WORK/nodir/r.csv"; do
    run load --table r --header --batch-size 1 --reject-file "$bad" "$WORK/r.csv"
    expect_eq "--reject-file '${bad#"$WORK"/}' that cannot be written: exit 1, nothing loaded" \
        "$rc:$(sql "SELECT count(*) FROM r")" "1:0"
    expect_err "--reject-file '${bad#"$WORK"/}': named before loading" "cannot write reject file"
done
if [ "$(id -u)" != 0 ]; then
    : >"$WORK/readonly.csv"
    chmod 400 "$WORK/readonly.csv"
    run load --table r --header --batch-size 1 --reject-file "$WORK/readonly.csv" "$WORK/r.csv"
    expect_eq "--reject-file without write permission: exit 1, nothing loaded" \
        "$rc:$(sql "SELECT count(*) FROM r")" "1:0"
fi
run load --table nosuchtable --reject-file "$WORK/created-then-removed.csv" "$WORK/r.csv"
expect_eq "a failed run leaves no reject file it was to create" \
    "$rc:$([ -e "$WORK/created-then-removed.csv" ] && echo left || echo none)" "1:none"
cp "$WORK/rejects.csv" "$WORK/rejects-kept.csv"
run load --table nosuchtable --reject-file "$WORK/rejects.csv" "$WORK/r.csv"
expect_eq "failed run: exit 1, the previous reject file kept" \
    "$rc:$(cmp -s "$WORK/rejects.csv" "$WORK/rejects-kept.csv" && echo kept)" "1:kept"
run load --table r --header --batch-size 1 --reject-file "$WORK/rejects.csv" "$WORK/r.csv"
expect_eq "a later successful run replaces it" "$rc:$(grep -c ',23514,' "$WORK/rejects.csv")" "2:1"
ls -a "$WORK" | grep -q '^\.rejects' && not_ok "no temporary reject file left" || ok "no temporary reject file left"
# Written in place: a private reject file stays private (rejected rows hold data).
chmod 600 "$WORK/rejects.csv"
sql "TRUNCATE r"
run load --table r --header --batch-size 1 --reject-file "$WORK/rejects.csv" "$WORK/r.csv"
expect_eq "the reject file keeps its mode" "$rc:$(stat -c %a "$WORK/rejects.csv")" "2:600"
# A BEFORE INSERT trigger that skips rows: loaded as by plain COPY, under every conflict mode.
sql "CREATE TABLE trg (id int PRIMARY KEY, v text)"
sql "CREATE FUNCTION trg_odd() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN IF NEW.id % 2 = 1 THEN RETURN NULL; END IF; RETURN NEW; END\$\$"
sql "CREATE TRIGGER trg_odd BEFORE INSERT ON trg FOR EACH ROW EXECUTE FUNCTION trg_odd()"
printf '1,a\n2,b\n3,c\n4,d\n' >"$WORK/trg.csv"
for conflict in none strict upsert; do
    sql "TRUNCATE trg"
    run load --table trg --conflict $conflict "$WORK/trg.csv"
    expect_eq "--conflict $conflict, a trigger skipping odd rows: exit 0, the even rows" \
        "$rc:$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM trg")" "0:2,4"
done
# PGCLIENTENCODING=auto (libpq: from the locale) names no input encoding.
sql "TRUNCATE trg"
PGCLIENTENCODING=auto run load --table trg "$WORK/trg.csv"
expect_eq "PGCLIENTENCODING=auto: loads" "$rc:$(sql "SELECT count(*) FROM trg")" "0:2"

# SIGINT during a batched load: no further batch starts, the reject file holds exactly the
# rejects of the committed batches (2 per batch of 100 here), whole lines, exit 1.
sql "TRUNCATE r"
awk 'BEGIN { for (i = 1; i <= 200000; i++) printf "%d,%s,n%d\n", i, (i % 50 == 0 ? "x" : "1"), i }' >"$WORK/int.csv"
"$BIN" load --table r --batch-size 100 --reject-file "$WORK/int-rej.csv" "$WORK/int.csv" >"$WORK/out" 2>"$WORK/err" &
loader=$!
for _ in $(seq 100); do
    [ "$(sql "SELECT count(*) > 1000 FROM r")" = t ] && break
    sleep 0.1
done
kill -INT "$loader"
wait "$loader"
rc=$?
loaded=$(sql "SELECT count(*) FROM r")
expect_eq "SIGINT mid-load: exit 1, some but not all batches committed" \
    "$rc:$([ "$loaded" -gt 0 ] && [ "$loaded" -lt 196000 ] && echo partial)" "1:partial"
expect_err "SIGINT mid-load: says so" "interrupted by a signal: no further batch was started"
expect_err "SIGINT mid-load: reports what committed" "committed before the failure stay loaded"
expect_eq "SIGINT mid-load: one reject per 49 loaded rows, the file ends with a whole line" \
    "$(($(wc -l <"$WORK/int-rej.csv") - 1)):$(tail -c 1 "$WORK/int-rej.csv" | od -An -c | tr -d ' ')" \
    "$((loaded / 49)):\n"

# ---------------------------------------------------------------------------------------------
# --mode insert|upsert: client-side parsing through the typed Writer.

# Every supported type, exported by the server (offsets in Asia/Kolkata, including local mean
# time +05:53:28 for 1850), loaded in each mode: the tables must be equal, row text for row text.
sql "CREATE TABLE types_src (id int PRIMARY KEY, i2 smallint, i8 bigint, f4 real, f8 double precision,
    n numeric(12,3), nn numeric, t text, vc varchar(10), ch char(5), b bool, d date, tm time,
    ts timestamp, tz timestamptz, iv interval, j json, jb jsonb, u uuid, by bytea, ia int[], ta text[])"
sql "INSERT INTO types_src SELECT g,
    (g * 37 % 65535 - 32767)::smallint,
    CASE WHEN g = 1 THEN 9223372036854775807 WHEN g = 2 THEN -9223372036854775808 ELSE g::bigint * 1000003 END,
    (CASE g % 5 WHEN 0 THEN 'NaN' WHEN 1 THEN 'Infinity' ELSE (g / 7.0)::text END)::real,
    CASE WHEN g % 11 = 0 THEN NULL WHEN g = 3 THEN 1.7976931348623157e308 WHEN g = 4 THEN 5e-324 ELSE g / 3.0 END,
    (g * 1.2345)::numeric(12,3),
    CASE WHEN g % 13 = 0 THEN 'NaN'::numeric ELSE round(g::numeric / 7, 20) END,
    CASE g % 4 WHEN 0 THEN 'ünïcødé 🐘 ' || g WHEN 1 THEN E'multi\nline, \"quoted\" \\\\ back\ttab' WHEN 2 THEN '' ELSE NULL END,
    left('v' || g, 10), left('c' || g, 5), g % 2 = 0,
    CASE WHEN g = 5 THEN 'infinity'::date WHEN g = 6 THEN '-infinity' WHEN g = 7 THEN '0044-03-15 BC' ELSE date '2000-01-01' + g * 17 END,
    time '00:00' + g * interval '37.123457 seconds',
    CASE WHEN g = 8 THEN 'infinity'::timestamp WHEN g = 9 THEN '4713-01-01 00:00 BC' ELSE timestamp '1999-12-31 23:00' + g * interval '1 day 3 hours 7.654321 seconds' END,
    CASE WHEN g = 10 THEN '-infinity'::timestamptz ELSE timestamptz '1850-01-01 00:00+00' + g * interval '29 days 1.5 seconds' END,
    make_interval(years => g % 3, months => g % 13 - 6, days => g % 40 - 20, secs => g * 1.25 - 100),
    ('{\"g\": ' || g || ', \"s\": \"\\u00e9 é\\n\", \"a\": [1, 2.5e3, null, true]}')::json,
    ('{\"g\": ' || g || ', \"s\": \"\\u00e9 é\\n\", \"a\": [1, 2.5e3, null, true]}')::jsonb,
    md5(g::text)::uuid,
    decode(md5(g::text), 'hex') || '\\x005c22'::bytea,
    ARRAY[g, NULL, -g],
    ARRAY['a b', NULL, 'x\"y', '', 'NULL', E'back\\\\slash', 'ü,{}']
FROM generate_series(1, 3000) g"
same_rows() { # TABLE: 1 when TABLE has exactly the rows of types_src (compared as row text)
    sql "SELECT (SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM types_src t) =
                (SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM $1 t)"
}
PGTZ=Asia/Kolkata psql -XAtq -c "\\copy types_src TO '$WORK/types.csv' WITH (FORMAT csv, HEADER)"
for mode in copy insert upsert; do
    sql "CREATE TABLE types_$mode (LIKE types_src INCLUDING ALL)"
    PGTZ=Asia/Kolkata run load --table types_$mode --header --mode $mode --batch-size 700 "$WORK/types.csv"
    expect_rc "every type, csv, --mode $mode: exit 0" 0
    expect_eq "every type, csv, --mode $mode: rows equal the source" "$(same_rows types_$mode)" "t"
done
expect_err "typed summary" "loaded 3000 rows into \"types_upsert\" (mode upsert): 3000 written, 0 superseded"
# A table whose name has a dot, next to schema.table of the same spelling: the quoted name is
# the table, never split into schema and table.
sql "CREATE SCHEMA ev; CREATE TABLE ev.log (id int PRIMARY KEY, v text);
     CREATE TABLE public.\"ev.log\" (id int PRIMARY KEY, v text)"
printf '1,a\n2,b\n' >"$WORK/dotted.csv"
for mode in upsert insert; do
    run load --table '"ev.log"' --mode $mode "$WORK/dotted.csv"
    expect_rc "dotted table name, --mode $mode: exit 0" 0
    expect_eq "dotted table name, --mode $mode: rows in public.\"ev.log\", none in ev.log" \
        "$(sql "SELECT (SELECT count(*) FROM public.\"ev.log\"), (SELECT count(*) FROM ev.log)")" "2|0"
    sql "TRUNCATE public.\"ev.log\""
done
sql "DROP SCHEMA ev CASCADE; DROP TABLE public.\"ev.log\""
# Text format, ISO 8601 intervals, America/New_York offsets, three writers.
PGOPTIONS='-c intervalstyle=iso_8601' PGTZ=America/New_York psql -XAtq -c "\\copy types_src TO '$WORK/types.txt'"
sql "CREATE TABLE types_text (LIKE types_src INCLUDING ALL)"
PGTZ=America/New_York run load --table types_text --format text --mode upsert --parallel 3 --batch-size 500 "$WORK/types.txt"
expect_rc "every type, text format, ISO intervals, --parallel 3: exit 0" 0
expect_eq "every type, text format: rows equal the source" "$(same_rows types_text)" "t"
# Interval output styles postgres_verbose and sql_standard, read back as COPY reads them.
for style in postgres_verbose sql_standard; do
    PGOPTIONS="-c intervalstyle=$style" psql -XAtq -c "\\copy (SELECT id, iv FROM types_src) TO '$WORK/iv.csv' WITH (FORMAT csv)"
    sql "CREATE TABLE iv_copy_$style (id int PRIMARY KEY, iv interval); CREATE TABLE iv_insert_$style (LIKE iv_copy_$style)"
    "$BIN" load --quiet --table iv_copy_$style "$WORK/iv.csv" && run load --table iv_insert_$style --mode insert "$WORK/iv.csv"
    expect_eq "interval style $style: --mode insert reads what COPY reads" \
        "$rc:$(sql "SELECT count(*) FROM iv_copy_$style c JOIN iv_insert_$style i USING (id) WHERE c.iv::text = i.iv::text")" "0:3000"
done
# In a sql_standard session a leading '-' negates every field: --mode insert reads the
# sql_standard text as that session's COPY does, and both give back the source values.
PGOPTIONS="-c intervalstyle=sql_standard" psql -XAtq -c "\\copy (SELECT id, iv FROM types_src) TO '$WORK/iv.csv' WITH (FORMAT csv)"
sql "CREATE TABLE iv_ss_copy (id int PRIMARY KEY, iv interval); CREATE TABLE iv_ss_insert (LIKE iv_ss_copy)"
PGOPTIONS="-c intervalstyle=sql_standard" "$BIN" load --quiet --table iv_ss_copy "$WORK/iv.csv" &&
    PGOPTIONS="-c intervalstyle=sql_standard" run load --table iv_ss_insert --mode insert "$WORK/iv.csv"
expect_eq "sql_standard session: --mode insert and COPY both give the source intervals" \
    "$rc:$(sql "SELECT count(*) FROM types_src s JOIN iv_ss_copy c USING (id) JOIN iv_ss_insert i USING (id) WHERE s.iv = c.iv AND s.iv = i.iv AND s.iv::text = i.iv::text")" "0:3000"
# timestamptz without an offset is read in the session TimeZone (PGTZ), as COPY reads it.
printf '1,2024-01-15 12:00:00\n2,2024-07-15 12:00:00\n3,1850-06-01 00:00:00\n4,2024-03-10 01:59:59.5\n5,infinity\n6,2024-07-15 12:00:00+02\n7,0044-03-15 12:00:00 BC\n' >"$WORK/tz.csv"
sql "CREATE TABLE tz_copy (id int PRIMARY KEY, t timestamptz); CREATE TABLE tz_insert (LIKE tz_copy)"
PGTZ=America/New_York "$BIN" load --quiet --table tz_copy "$WORK/tz.csv"
PGTZ=America/New_York run load --quiet --table tz_insert --mode insert "$WORK/tz.csv"
expect_eq "timestamptz without offset in the session zone: same as COPY" \
    "$rc:$(sql "SELECT count(*) FROM tz_copy c JOIN tz_insert i USING (id) WHERE c.t = i.t"):$(sql "SELECT t FROM tz_insert WHERE id = 2")" \
    "0:7:2024-07-15 16:00:00+00"
# ... also the local times a DST change skips or repeats (the server gives a skipped time the offset
# before the change, a repeated one the offset after it), in any order: every 10 minutes around
# the 2024 changes of three zones (Lord Howe shifts by 30 minutes), shuffled.
psql -XAtq -c "\\copy (SELECT row_number() OVER (), t FROM (SELECT t FROM (VALUES (date '2024-03-10'),
    ('2024-11-03'), ('2024-03-31'), ('2024-10-27'), ('2024-04-07'), ('2024-10-06')) d(day),
    generate_series((d.day - 1)::timestamp, (d.day + 1)::timestamp, interval '10 minutes') t
    ORDER BY md5(t::text)) s) TO '$WORK/dst.csv' WITH (FORMAT csv)"
for zone in America/New_York Europe/Berlin Australia/Lord_Howe; do
    sql "DROP TABLE IF EXISTS dst_copy, dst_insert; CREATE TABLE dst_copy (id int PRIMARY KEY, t timestamptz); CREATE TABLE dst_insert (LIKE dst_copy)"
    PGTZ=$zone "$BIN" load --quiet --table dst_copy "$WORK/dst.csv"
    PGTZ=$zone run load --quiet --table dst_insert --mode insert --parallel 2 --batch-size 100 "$WORK/dst.csv"
    expect_eq "timestamptz around DST changes in $zone: same as COPY" \
        "$rc:$(sql "SELECT count(*) FROM dst_copy c JOIN dst_insert i USING (id) WHERE c.t = i.t")" "0:1734"
done

# Every --conflict mode, with keys repeated inside the input and keys that exist: --mode insert
# and --mode upsert end where --mode copy ends (compared through export), in one batch and in
# batches of 97 rows.
awk 'BEGIN { for (i = 1; i <= 1500; i++) printf "%d,v%d,%d\n", (i * 7919) % 700 + 1, i, i }' >"$WORK/kv.csv"
sql "CREATE TABLE kv (id int PRIMARY KEY, v text, n int)"
reset_kv() { sql "TRUNCATE kv; INSERT INTO kv SELECT g, 'old' || g, -g FROM generate_series(1, 1000, 3) g"; }
for conflict in upsert update ignore; do
    reset_kv
    "$BIN" load --quiet --table kv --conflict $conflict "$WORK/kv.csv"
    "$BIN" export --quiet --table kv --split-key id --output "$WORK/kv-copy.csv"
    for mode in insert upsert; do
        for batch in 100000 97; do
            reset_kv
            run load --table kv --mode $mode --conflict $conflict --batch-size $batch "$WORK/kv.csv"
            "$BIN" export --quiet --table kv --split-key id --output "$WORK/kv-$mode.csv"
            if [ "$rc" -eq 0 ] && [ -s "$WORK/kv-copy.csv" ] &&
                cmp -s <(sort "$WORK/kv-copy.csv") <(sort "$WORK/kv-$mode.csv"); then
                ok "--mode $mode --conflict $conflict --batch-size $batch: same table as --mode copy"
            else
                not_ok "--mode $mode --conflict $conflict --batch-size $batch: same table as --mode copy" "exit $rc" \
                    "$(diff <(sort "$WORK/kv-copy.csv") <(sort "$WORK/kv-$mode.csv") | head -5)"
            fi
        done
    done
done
# A failure after a COPY went through but before its counts were read (here: the role may not
# call ingest.last_copy_stats()) leaves nothing of it loaded, batched or not: the COPY and the
# reads of its counts and rejects commit together.
sql "CREATE ROLE cli_nostats LOGIN; CREATE TABLE nostats (id int PRIMARY KEY, v text); GRANT SELECT, INSERT, UPDATE ON nostats TO cli_nostats; REVOKE EXECUTE ON FUNCTION ingest.last_copy_stats() FROM PUBLIC"
printf 'id,v\n1,a\n2,b\n3,c\n' >"$WORK/nostats.csv"
for batch in 0 2; do
    args=()
    [ "$batch" = 0 ] || args=(--batch-size "$batch")
    PGUSER=cli_nostats run load --table nostats --header --conflict upsert "${args[@]}" "$WORK/nostats.csv"
    expect_rc "counts unreadable after the COPY (batch size $batch): exit 1" 1
    expect_err "counts unreadable after the COPY (batch size $batch): the error says why" "last_copy_stats"
    expect_eq "counts unreadable after the COPY (batch size $batch): nothing loaded" "$(sql "SELECT count(*) FROM nostats")" 0
done
sql "GRANT EXECUTE ON FUNCTION ingest.last_copy_stats() TO PUBLIC"
PGUSER=cli_nostats run load --table nostats --header --conflict upsert --batch-size 2 "$WORK/nostats.csv"
expect_rc "with the counts readable again the same load commits: exit 0" 0
expect_eq "with the counts readable again the same load commits: 3 rows" "$(sql "SELECT count(*) FROM nostats")" 3
sql "DROP TABLE nostats; DROP ROLE cli_nostats"

reset_kv
run load --table kv --mode upsert --conflict upsert "$WORK/kv.csv"
expect_err "1500 rows on 700 keys in one batch: 800 superseded" \
    'loaded 1500 rows into "kv" (mode upsert): 700 written, 800 superseded by a later row with the same key, 0 rejected'
reset_kv
run load --table kv --mode insert --conflict ignore "$WORK/kv.csv"
# kv.csv holds keys 1..700; reset_kv left 234 of them (1, 4, ..., 700) in the table.
expect_err "--conflict ignore: the first row of a key wins, the summary says so" \
    'loaded 1500 rows into "kv" (mode insert): 466 written, 800 dropped for an earlier row with the same key, 0 rejected'
expect_err "--conflict ignore: keys already there are counted apart" \
    '234 rows changed nothing: their key was in the table already'
run load --table kv --mode upsert --conflict ignore "$WORK/kv.csv"
expect_err "--conflict ignore again: every key is there, nothing written" \
    'loaded 1500 rows into "kv" (mode upsert): 0 written, 800 dropped for an earlier row with the same key, 0 rejected'
expect_err "--conflict ignore again: the summary says why" \
    '700 rows changed nothing: their key was in the table already'
sql "DELETE FROM kv WHERE id % 2 = 0"
run load --table kv --mode insert --conflict update "$WORK/kv.csv"
expect_err "--conflict update: the 350 odd keys are updated" \
    'loaded 1500 rows into "kv" (mode insert): 350 written, 800 superseded by a later row with the same key, 0 rejected'
expect_err "--conflict update: the 350 even keys, deleted, are counted apart" \
    '350 rows changed nothing: their key was not in the table, or nothing was to be updated'
# --conflict strict / none with new, unique keys: plain inserts, as copy.
awk 'BEGIN { for (i = 2000; i < 2300; i++) printf "%d,n%d,%d\n", i, i, i }' >"$WORK/kv-new.csv"
for conflict in strict none; do
    for mode in copy insert upsert; do
        reset_kv
        run load --table kv --mode $mode --conflict $conflict "$WORK/kv-new.csv"
        expect_eq "--mode $mode --conflict $conflict, new keys: exit 0 and rows" "$rc:$(sql "SELECT count(*) FROM kv WHERE id >= 2000")" "0:300"
    done
done
# COPY's end-of-data marker ends its file in every mode; what follows is reported, not loaded.
printf '9001,a,1\n9002,b,2\n\\.\n9003,c,3\n9004,d,4\n' >"$WORK/marker.csv"
printf '9005,e,5\n' >"$WORK/marker2.csv"
for mode in copy insert upsert; do
    for batch in 0 1; do
        sql "DELETE FROM kv WHERE id > 9000"
        args=(load --table kv --mode $mode)
        [ "$batch" = 1 ] && args+=(--batch-size 1)
        run "${args[@]}" "$WORK/marker.csv" "$WORK/marker2.csv"
        expect_eq "--mode $mode batch $batch, end marker: exit 2 and the rows before it plus the next file" \
            "$rc:$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM kv WHERE id > 9000")" "2:9001,9002,9005"
        expect_err "--mode $mode batch $batch, end marker: warning names the file, line and what was left" \
            "marker.csv, line 3: end-of-data marker \\. ends the input there; the 2 line(s) after it were not loaded"
    done
done
# Appends to args the options of load mode $1 (copy, insert, upsert, async) and, unless $2 is 0
# or missing, --batch-size $2.
mode_args() {
    if [ "$1" = async ]; then args+=(--async); else args+=(--mode "$1"); fi
    [ "${2:-0}" = 0 ] || args+=(--batch-size "$2")
}
# In text format "\." inside a record is no data: the server would end the input there and drop
# the rest (or fail). Refused in every mode, naming the line; nothing after it is loaded.
printf '9001\ta\t1\n9002\tb\\.\t2\n9003\tc\t3\n' >"$WORK/bdot.txt"
printf '9001\ta\t1\n9002\tb\t2\\.\n9003\tc\t3\n' >"$WORK/bdot-eol.txt"
for mode in copy insert upsert async; do
    for batch in 0 1; do
        for file in bdot.txt bdot-eol.txt; do
            sql "DELETE FROM kv WHERE id > 9000"
            args=(load --table kv --format text)
            mode_args "$mode" "$batch"
            run "${args[@]}" "$WORK/$file"
            expect_eq "$mode batch $batch, \\. inside a record of $file: exit 1, nothing from it on loaded" \
                "$rc:$(sql "SELECT count(*) FROM kv WHERE id > 9001")" "1:0"
            expect_err "$mode batch $batch, \\. inside a record of $file: the error names file and line" \
                "$file, line 2: \\. inside a record: in text format it is the end-of-data marker"
        done
    done
done
sql "DELETE FROM kv WHERE id > 9000"
printf '9001\ta\\\\.b\t1\n' >"$WORK/bslash.txt"
run load --table kv --format text "$WORK/bslash.txt"
expect_eq "an escaped backslash before a dot is data" "$rc:$(sql "SELECT v FROM kv WHERE id = 9001")" '0:a\.b'
# A last record without a line end gets the one of the COPY stream it goes into: the server takes
# the stream's line ends from its first line and refuses a record ended otherwise. One COPY may
# span files: a one-record file after a CRLF one gets CRLF, as does a header's one record.
kv_rows() {
    sql "SELECT string_agg(id || ':' || replace(replace(v, E'\r', '<CR>'), E'\n', '<LF>') || ':' || n, ' ' ORDER BY id) FROM kv WHERE id > 9000"
}
printf '9101,a,1\r\n9102,"x\r\ny",2\r\n9103,c,3\r\n9104,d,4' >"$WORK/crlf-open.csv"
printf '9105,e,5' >"$WORK/one-open.csv"
printf 'id,v,n\r\n9106,f,6' >"$WORK/hdr-open.csv"
printf 'id,v,n\r\n9107,g,7\r\n' >"$WORK/hdr-crlf.csv"
printf '9108\th\t8\r\n9109\ti\t9' >"$WORK/crlf-open.txt"
for mode in copy insert upsert async; do
    # Batches of 2: the last record shares its batch (its own COPY) with a CRLF one.
    for batch in 0 2; do
        args=(load --table kv)
        mode_args "$mode" "$batch"
        sql "DELETE FROM kv WHERE id > 9000"
        run "${args[@]}" "$WORK/crlf-open.csv" "$WORK/one-open.csv"
        expect_eq "$mode batch $batch, CRLF CSV without a final line end, then a one-record file: exit 0, every row" \
            "$rc:$(kv_rows)" "0:9101:a:1 9102:x<CR><LF>y:2 9103:c:3 9104:d:4 9105:e:5"
        sql "DELETE FROM kv WHERE id > 9000"
        run "${args[@]}" --header "$WORK/hdr-open.csv" "$WORK/hdr-crlf.csv"
        expect_eq "$mode batch $batch, CRLF header and one record without a line end, then a CRLF file: exit 0, both rows" \
            "$rc:$(kv_rows)" "0:9106:f:6 9107:g:7"
        sql "DELETE FROM kv WHERE id > 9000"
        run "${args[@]}" --format text "$WORK/crlf-open.txt"
        expect_eq "$mode batch $batch, CRLF text without a final line end: exit 0, both rows" \
            "$rc:$(kv_rows)" "0:9108:h:8 9109:i:9"
    done
done
sql "DELETE FROM kv WHERE id > 9000"
run load --table kv "$WORK/one-open.csv"
expect_eq "a file of one record without a line end: exit 0, the row" "$rc:$(kv_rows)" "0:9105:e:5"
# Files with different line ends in one load: each keeps its own (one COPY per file in the
# unbatched load's one transaction), in every mode, the last record of each completed with its
# own file's; and a later file's bad line is still named, with nothing loaded.
printf '9201,a,1\n' >"$WORK/eol-lf.csv"
printf '9202,b,2\r\n9203,"c\r\nd",3\r\n9204,e,4' >"$WORK/eol-crlf.csv"
printf '9205,f,5\n9206,g,6' >"$WORK/eol-lf-open.csv"
printf '9207,h,7\r\n9208,x,bad\r\n' >"$WORK/eol-crlf-bad.csv"
for mode in copy insert upsert async; do
    for batch in 0 2; do
        args=(load --table kv)
        mode_args "$mode" "$batch"
        sql "DELETE FROM kv WHERE id > 9000"
        run "${args[@]}" "$WORK/eol-lf.csv" "$WORK/eol-crlf.csv" "$WORK/eol-lf-open.csv"
        expect_eq "$mode batch $batch, LF then CRLF then LF files: exit 0, every row" \
            "$rc:$(kv_rows)" "0:9201:a:1 9202:b:2 9203:c<CR><LF>d:3 9204:e:4 9205:f:5 9206:g:6"
    done
done
sql "DELETE FROM kv WHERE id > 9000"
run load --table kv "$WORK/eol-lf.csv" "$WORK/eol-crlf-bad.csv"
expect_eq "LF then CRLF file with a bad line, unbatched: exit 1, nothing loaded" \
    "$rc:$(sql "SELECT count(*) FROM kv WHERE id > 9000")" "1:0"
expect_err "LF then CRLF file with a bad line: file and line named" "eol-crlf-bad.csv, line 2"
# In text format a backslash ending the data escapes nothing (the server drops it, and a line end
# added after it would make the next line part of this record): refused in every mode, naming the
# line, nothing of its unit loaded. An escaped backslash there is data, and a backslash-newline
# at the end still gets its record a line end.
printf '9101\t1\ta\n9102\t2\tb\\' >"$WORK/bs-open.txt"
printf '9103\t3\tc\n' >"$WORK/bs-next.txt"
printf '9104\t4\td\r\n9105\t5\te\\\\' >"$WORK/bs-escaped-crlf.txt"
printf '9106\t6\tf\\\\' >"$WORK/bs-escaped.txt"
printf '9107\t7\tg\\\n' >"$WORK/bsnl-open.txt"
for mode in copy insert upsert async; do
    for batch in 0 1; do
        args=(load --table kv --format text --columns id,n,v)
        mode_args "$mode" "$batch"
        sql "DELETE FROM kv WHERE id > 9000"
        run "${args[@]}" "$WORK/bs-open.txt" "$WORK/bs-next.txt"
        # Batch 1: the batch of line 1 may commit before the failure.
        expect_eq "$mode batch $batch, text ending in a lone backslash: exit 1, nothing of its unit on loaded" \
            "$rc:$(sql "SELECT count(*) FROM kv WHERE id > $([ "$batch" = 1 ] && echo 9101 || echo 9000)")" "1:0"
        expect_err "$mode batch $batch, text ending in a lone backslash: the error names file and line" \
            "bs-open.txt, line 2: a lone backslash ends the data: in text format it escapes the next character"
    done
    args=(load --table kv --format text --columns id,n,v)
    mode_args "$mode"
    sql "DELETE FROM kv WHERE id > 9000"
    run "${args[@]}" "$WORK/bs-escaped-crlf.txt"
    expect_eq "$mode, CRLF text ending in an escaped backslash: exit 0, the backslash is data" \
        "$rc:$(kv_rows)" '0:9104:d:4 9105:e\:5'
    run "${args[@]}" "$WORK/bs-escaped.txt" "$WORK/bsnl-open.txt" "$WORK/bs-next.txt"
    expect_eq "$mode, text ending in an escaped backslash or a backslash-newline, then another file: exit 0, every row" \
        "$rc:$(kv_rows)" '0:9103:c:3 9104:d:4 9105:e\:5 9106:f\:6 9107:g<LF>:7'
done
# The server's line end rules (CopyReadLineText): the first line end of a COPY stream decides its
# kind ("\r\n" CRLF, a "\r" not followed by "\n" CR, "\n" LF) and another kind after it is an
# error; line ends inside CSV quotes, and any byte after a backslash in text format, are data.
# Every mode loads what psql's own \copy of the same files loads, or fails where it fails.
sql "CREATE TABLE kv_ref (LIKE kv INCLUDING ALL)"
# ref_rows COLUMNS OPTIONS FILE...: psql's \copy of each FILE into kv_ref, rendered as kv_rows
# renders kv, or "ERROR: message" from the first that fails.
ref_rows() {
    local columns=$1 options=$2 file
    shift 2
    sql "TRUNCATE kv_ref"
    for file in "$@"; do
        if ! psql -XAtq -v ON_ERROR_STOP=1 -c "\\copy kv_ref $columns FROM '$file' $options" 2>"$WORK/ref-err"; then
            echo "ERROR: $(sed -n 's/^ERROR: *//p' "$WORK/ref-err" | head -1)"
            return
        fi
    done
    sql "SELECT string_agg(id || ':' || replace(replace(v, E'\r', '<CR>'), E'\n', '<LF>') || ':' || n, ' ' ORDER BY id) FROM kv_ref"
}
# run_stdin FILE ARGS...: as run, with FILE piped to stdin.
run_stdin() { local file=$1; shift; cat "$file" | "$BIN" "$@" >"$WORK/out" 2>"$WORK/err"; rc=$?; }
# A CSV source ending inside quotes: the line end added, and the next source's lines, would be
# quoted data for the server (here the next file's first line would close the quote and be
# loaded as part of line 2). Refused in every mode, naming the file and the line where the record
# starts, nothing of its unit loaded, as for a text file ending in a lone backslash.
printf '9301,a,1\n9302,"open,2\n' >"$WORK/q-open.csv"
printf 'x",3\n9303,c,3' >"$WORK/q-next.csv"
expect_eq "psql's \\copy of a CSV file ending inside quotes fails" \
    "$(ref_rows "" "WITH (FORMAT csv)" "$WORK/q-open.csv")" "ERROR: unterminated CSV quoted field"
for mode in copy insert upsert async; do
    for batch in 0 1; do
        args=(load --table kv)
        mode_args "$mode" "$batch"
        sql "DELETE FROM kv WHERE id > 9000"
        run "${args[@]}" "$WORK/q-open.csv" "$WORK/q-next.csv"
        # Batch 1: the batch of line 1 may commit before the failure.
        expect_eq "$mode batch $batch, CSV ending inside quotes, then another file: exit 1, nothing of its unit on loaded" \
            "$rc:$(sql "SELECT count(*) FROM kv WHERE id > $([ "$batch" = 1 ] && echo 9301 || echo 9000)")" "1:0"
        expect_err "$mode batch $batch, CSV ending inside quotes: the error names file and line" \
            "q-open.csv, line 2: unterminated CSV quoted field: the data ends inside a quoted field of the record that starts here"
    done
done
sql "DELETE FROM kv WHERE id > 9000"
run_stdin "$WORK/q-open.csv" load --table kv - "$WORK/q-next.csv"
expect_eq "CSV from stdin ending inside quotes: exit 1, nothing loaded" "$rc:$(kv_rows)" "1:"
expect_err "CSV from stdin ending inside quotes: named stdin" "stdin, line 2: unterminated CSV quoted field"
run load --table kv --mode insert --reject-file "$WORK/q-rej.csv" "$WORK/q-open.csv"
expect_eq "--mode insert --reject-file, CSV ending inside quotes: refused all the same (exit 1), nothing loaded" \
    "$rc:$(kv_rows)" "1:"

# Bare CR line ends (old Mac files) are record ends like any other, in every mode; the last
# record gets a CR; quoted CRs (CSV) and escaped ones (text) are data, and quoted LFs too.
printf '9401,a,1\r9402,"x\ry",2\r9403,"p\nq",3\r9404,d,4' >"$WORK/cr-open.csv"
printf '9405,e,5\r9406,"f\r\rg",6\r' >"$WORK/cr2.csv"
printf 'id,v,n\r9407,h,7\r' >"$WORK/cr-hdr.csv"
printf '9411\t1\ta\\\rb\r9412\t2\tc\\\\\r9413\t3\td' >"$WORK/cr.txt"
cr_csv=$(ref_rows "" "WITH (FORMAT csv)" "$WORK/cr-open.csv" "$WORK/cr2.csv")
cr_hdr=$(ref_rows "" "WITH (FORMAT csv, HEADER)" "$WORK/cr-hdr.csv")
cr_txt=$(ref_rows "(id, n, v)" "" "$WORK/cr.txt")
expect_eq "psql's \\copy of the CR files" "$cr_csv|$cr_hdr|$cr_txt" \
    "9401:a:1 9402:x<CR>y:2 9403:p<LF>q:3 9404:d:4 9405:e:5 9406:f<CR><CR>g:6|9407:h:7|9411:a<CR>b:1 9412:c\\:2 9413:d:3"
for mode in copy insert upsert async; do
    for batch in 0 2; do
        args=(load --table kv)
        mode_args "$mode" "$batch"
        sql "DELETE FROM kv WHERE id > 9000"
        run "${args[@]}" "$WORK/cr-open.csv" "$WORK/cr2.csv"
        expect_eq "$mode batch $batch, CSV files with CR line ends: exit 0, what psql's \\copy loads" "$rc:$(kv_rows)" "0:$cr_csv"
        sql "DELETE FROM kv WHERE id > 9000"
        run "${args[@]}" --header "$WORK/cr-hdr.csv"
        expect_eq "$mode batch $batch, CSV with a header and CR line ends: exit 0, what psql's \\copy loads" "$rc:$(kv_rows)" "0:$cr_hdr"
        sql "DELETE FROM kv WHERE id > 9000"
        run "${args[@]}" --format text --columns id,n,v "$WORK/cr.txt"
        expect_eq "$mode batch $batch, text with CR line ends: exit 0, what psql's \\copy loads" "$rc:$(kv_rows)" "0:$cr_txt"
    done
done
# Lines are counted in CRs: a bad value on line 4 (after a record with a quoted CR) is named
# there, as the server names it, in errors and in the reject file.
printf '9421,a,1\r9422,"x\ry",2\r9423,z,bad\r9424,w,4\r' >"$WORK/cr-bad.csv"
expect_eq "psql's \\copy of a CR file with a bad value on line 4" \
    "$(ref_rows "" "WITH (FORMAT csv)" "$WORK/cr-bad.csv"):$(grep -c 'line 4, column n' "$WORK/ref-err")" \
    'ERROR: invalid input syntax for type integer: "bad":1'
for mode in copy insert upsert; do
    for batch in 0 2; do
        args=(load --table kv)
        mode_args "$mode" "$batch"
        sql "DELETE FROM kv WHERE id > 9000"
        run "${args[@]}" "$WORK/cr-bad.csv"
        expect_eq "$mode batch $batch, CR file with a bad value: exit 1, the line named as the server names it" \
            "$rc:$(grep -c 'cr-bad.csv, line 4)' "$WORK/err")" "1:1"
        sql "DELETE FROM kv WHERE id > 9000"
        run "${args[@]}" --reject-file "$WORK/cr-rej.csv" "$WORK/cr-bad.csv"
        expect_eq "$mode batch $batch, CR file with a bad value: exit 2, rejected at line 4 (record 3), the others loaded" \
            "$rc:$(tail -n +2 "$WORK/cr-rej.csv" | cut -d, -f2,3):$(kv_rows)" "2:4,3:9421:a:1 9422:x<CR>y:2 9424:w:4"
    done
done
# A line end of another kind than the first is refused by the server (not a rejectable row): so
# it is in every mode, naming the line.
printf '9431,a,1\n9432,b\rc,2\n9433,d,3\n' >"$WORK/lf-cr.csv"
expect_eq "psql's \\copy of an LF file with a bare CR" "$(ref_rows "" "WITH (FORMAT csv)" "$WORK/lf-cr.csv")" \
    "ERROR: unquoted carriage return found in data"
for mode in copy insert upsert async; do
    args=(load --table kv)
    mode_args "$mode"
    [ "$mode" = async ] || args+=(--reject-file "$WORK/lf-cr-rej.csv")
    sql "DELETE FROM kv WHERE id > 9000"
    run "${args[@]}" "$WORK/lf-cr.csv"
    expect_eq "$mode, LF file with a bare CR: exit 1, nothing loaded" "$rc:$(kv_rows)" "1:"
    expect_err "$mode, LF file with a bare CR: the server's error" "unquoted carriage return found in data"
    expect_err "$mode, LF file with a bare CR: the line is named" "lf-cr.csv, line 2)"
done

# Text format: "\\\r\n" is an escaped CR (data) and a line end. In an LF stream the field ends in
# a CR; in a CRLF stream that line end is an LF without its CR, which the server refuses.
printf '9201\t1\ta\\\r\n9202\t2\tb\n' >"$WORK/bscr-lf.txt"
printf '9203\t3\tc\r\n9204\t4\td\\\r\n9205\t5\te\r\n' >"$WORK/bscr-crlf.txt"
bscr_lf=$(ref_rows "(id, n, v)" "" "$WORK/bscr-lf.txt")
expect_eq "psql's \\copy of the backslash-CR-LF files" \
    "$bscr_lf|$(ref_rows "(id, n, v)" "" "$WORK/bscr-crlf.txt")" \
    "9201:a<CR>:1 9202:b:2|ERROR: literal newline found in data"
for mode in copy insert upsert async; do
    for batch in 0 1; do
        args=(load --table kv --format text --columns id,n,v)
        mode_args "$mode" "$batch"
        sql "DELETE FROM kv WHERE id > 9000"
        run "${args[@]}" "$WORK/bscr-lf.txt"
        expect_eq "$mode batch $batch, backslash-CR-LF in an LF stream: exit 0, the field ends in a CR" \
            "$rc:$(kv_rows)" "0:$bscr_lf"
        sql "DELETE FROM kv WHERE id > 9000"
        run "${args[@]}" "$WORK/bscr-crlf.txt"
        # Batch 1: the batch of line 1 may commit before the failure.
        expect_eq "$mode batch $batch, backslash-CR-LF in a CRLF stream: exit 1, nothing of its unit on loaded" \
            "$rc:$(sql "SELECT count(*) FROM kv WHERE id > $([ "$batch" = 1 ] && echo 9203 || echo 9000)")" "1:0"
        expect_err "$mode batch $batch, backslash-CR-LF in a CRLF stream: the server's error" \
            "literal newline found in data"
        expect_err "$mode batch $batch, backslash-CR-LF in a CRLF stream: the line is named" \
            "bscr-crlf.txt, line 2)"
    done
done

# A first source whose only record has no line end takes the line end of the sources after it
# (the first that has one; stdin too), which the server then finds throughout the stream.
printf '9501,a,1' >"$WORK/open1.csv"
printf '9502,"b\r\nb",2' >"$WORK/open2.csv"
printf '9503,c,3\r\n9504,"d\r\nd",4\r\n' >"$WORK/crlf-after.csv"
printf '9505,e,5\r9506,"f\rf",6\r' >"$WORK/cr-after.csv"
for mode in copy insert upsert async; do
    for batch in 0 1; do
        args=(load --table kv)
        mode_args "$mode" "$batch"
        for files in "open1.csv crlf-after.csv" "open1.csv open2.csv crlf-after.csv" "open1.csv cr-after.csv" \
            "open2.csv open1.csv"; do
            read -ra names <<<"$files"
            paths=("${names[@]/#/$WORK/}")
            expected=$(ref_rows "" "WITH (FORMAT csv)" "${paths[@]}")
            sql "DELETE FROM kv WHERE id > 9000"
            run "${args[@]}" "${paths[@]}"
            expect_eq "$mode batch $batch, $files: exit 0, what psql's \\copy of each loads" "$rc:$(kv_rows)" "0:$expected"
        done
        sql "DELETE FROM kv WHERE id > 9000"
        run_stdin "$WORK/crlf-after.csv" "${args[@]}" "$WORK/open1.csv" -
        expect_eq "$mode batch $batch, open1.csv then CRLF stdin: exit 0, every row" "$rc:$(kv_rows)" \
            "0:9501:a:1 9503:c:3 9504:d<CR><LF>d:4"
    done
done
# Where the reader does not look for it (SJIS input, whose characters may end in a backslash
# byte), COPY ON CONFLICT's counts catch rows the server never read: nothing commits.
sql "DELETE FROM kv WHERE id > 9000"
run load --table kv --format text --encoding SJIS --conflict upsert "$WORK/bdot-eol.txt"
expect_eq "SJIS, \\. inside a record under ON_CONFLICT: exit 1, nothing committed" \
    "$rc:$(sql "SELECT count(*) FROM kv WHERE id > 9000")" "1:0"
expect_err "SJIS, \\. inside a record under ON_CONFLICT: the counts are named" \
    "the server accounted for 2 of the 3 rows sent"
# A key filled by the server (serial) and left out of --columns: fine for none/strict in every mode.
sql "CREATE TABLE ser (id serial PRIMARY KEY, v text, n int)"
printf 'a,1\nb,2\nc,3\n' >"$WORK/ser.csv"
for mode in copy insert upsert; do
    run load --table ser --columns v,n --mode $mode "$WORK/ser.csv"
    expect_eq "--mode $mode, serial key not loaded: exit 0" "$rc" "0"
done
expect_eq "serial key not loaded: 9 rows, 9 ids" "$(sql "SELECT count(*) || '/' || count(DISTINCT id) FROM ser")" "9/9"
run load --table ser --columns v,n --mode upsert --conflict upsert "$WORK/ser.csv"
expect_rc "--conflict upsert without the key among --columns: exit 1" 1
expect_err "--conflict upsert without the key: message names the key" 'key column "id" is not among the written columns'
# --conflict strict with a key that exists: exit 1 naming the line, nothing of the batch loaded.
printf '2001,a,1\n1,b,2\n' >"$WORK/kv-dup.csv"
reset_kv
run load --table kv --mode insert --conflict strict "$WORK/kv-dup.csv"
expect_rc "--mode insert --conflict strict on an existing key: exit 1" 1
expect_err "--conflict strict names the line" "kv-dup.csv, line 2)"
expect_err "--conflict strict names the key" "Key (id)=(1) already exists"
expect_eq "--conflict strict failure: nothing loaded" "$(sql "SELECT count(*) FROM kv WHERE id = 2001")" "0"
# ... and with a reject file the existing key is rejected, the rest loads (exit 2).
run load --table kv --mode upsert --conflict strict --reject-file "$WORK/kv-rej.csv" "$WORK/kv-dup.csv"
expect_eq "--conflict strict with rejects: exit 2, the new key loaded" "$rc:$(sql "SELECT v FROM kv WHERE id = 2001")" "2:a"
if grep -qF 'kv-dup.csv,2,2,23505,' "$WORK/kv-rej.csv" && grep -qF '"1,b,2"' "$WORK/kv-rej.csv"; then
    ok "--conflict strict reject names line, record, 23505 and the raw row"
else
    not_ok "--conflict strict reject names line, record, 23505 and the raw row" "$(cat "$WORK/kv-rej.csv")"
fi
# A key repeated inside one batch under --conflict none is rejected (23505), the first one stays.
printf '3001,first,1\n3001,second,2\n' >"$WORK/kv-rep.csv"
run load --table kv --mode insert --reject-file "$WORK/kv-rep.csv.rej" "$WORK/kv-rep.csv"
expect_eq "repeated key, --conflict none: exit 2 and the first row" "$rc:$(sql "SELECT v FROM kv WHERE id = 3001")" "2:first"
expect_eq "repeated key reject row" "$(tail -n +2 "$WORK/kv-rep.csv.rej" | cut -d, -f1-4)" "$WORK/kv-rep.csv,2,2,23505"
# Rows refused as repeats were never sent: "written" counts the rows that stay, without going
# below zero when a key repeats more than once.
expect_err "repeated key: summary counts the first row as written" \
    'loaded 2 rows into "kv" (mode insert): 1 written, 0 superseded by a later row with the same key, 1 rejected'
printf '3002,a,1\n3002,b,2\n3002,c,3\n' >"$WORK/kv-rep3.csv"
run load --table kv --mode insert --exception-mode ignore "$WORK/kv-rep3.csv"
expect_err "key repeated twice: 1 written, 2 rejected" \
    'loaded 3 rows into "kv" (mode insert): 1 written, 0 superseded by a later row with the same key, 2 rejected'
# A batch is one transaction even when its encoded rows pass the writer's batchbytes (the reader
# cuts batches on the same limit, counted in input bytes): a failing row keeps the whole batch out.
printf '4001,a,1\n1,b,2\n' >"$WORK/kv-bytes.csv"
reset_kv
run load --table kv --mode insert --option batchbytes=20 "$WORK/kv-bytes.csv"
expect_eq "batch over batchbytes encoded, strict failure: exit 1, nothing of the batch loaded" \
    "$rc:$(sql "SELECT count(*) FROM kv WHERE id = 4001")" "1:0"

# Bad rows: client-side parse errors and server-side constraint errors, exit codes 1 and 2.
sql "CREATE TABLE rt (id int PRIMARY KEY, qty smallint NOT NULL CHECK (qty >= 0), seen date, tags text[])"
printf 'id,qty,seen,tags\n1,5,2024-01-01,{a}\n2,x,2024-01-02,{b}\n3,-1,2024-01-03,{}\n4,7,2024-02-30,{c}\n5,99999,2024-01-05,{d}\n6,,2024-01-06,{e}\n7,1,2024-01-07\n8,1,2024-01-08,"{""q,1"",NULL}",extra\n9,2,2024-01-09,"{x,""y z""}"\n' >"$WORK/rt.csv"
for mode in insert upsert; do
    sql "TRUNCATE rt"
    run load --table rt --header --mode $mode "$WORK/rt.csv"
    expect_rc "--mode $mode strict with a bad field: exit 1" 1
    expect_err "--mode $mode strict: the column and value are named" 'column "qty": invalid input syntax for type smallint: "x"'
    expect_err "--mode $mode strict: the line is named" 'rt.csv, line 3)'
    expect_eq "--mode $mode strict: nothing loaded" "$(sql "SELECT count(*) FROM rt")" "0"
    run load --table rt --header --mode $mode --reject-file "$WORK/rt-rej.csv" "$WORK/rt.csv"
    expect_rc "--mode $mode with rejected rows: exit 2" 2
    expect_eq "--mode $mode: good rows kept" "$(sql "SELECT string_agg(id || ':' || array_to_string(tags, '/', '-'), ' ' ORDER BY id) FROM rt")" "1:a 9:x/y z"
    expect_eq "--mode $mode: reject file (source,line,record,sqlstate)" \
        "$(tail -n +2 "$WORK/rt-rej.csv" | cut -d, -f1-4 | sed "s|^$WORK/||" | sort -t, -k2n | tr '\n' ' ')" \
        "rt.csv,3,2,22P02 rt.csv,4,3,23514 rt.csv,5,4,22008 rt.csv,6,5,22003 rt.csv,7,6,23502 rt.csv,8,7,22P04 rt.csv,9,8,22P04 "
    if grep -qF '"column ""qty"": invalid input syntax for type smallint: ""x""","2,x,2024-01-02,{b}"' "$WORK/rt-rej.csv" &&
        grep -qF '"column ""seen"": date/time field value out of range: ""2024-02-30"""' "$WORK/rt-rej.csv" &&
        grep -qF '"column ""qty"": value ""99999"" is out of range for type smallint"' "$WORK/rt-rej.csv" &&
        grep -qF 'null value in column ""qty"" of relation ""rt"" violates not-null constraint' "$WORK/rt-rej.csv" &&
        grep -qF 'missing data for column ""tags""' "$WORK/rt-rej.csv" &&
        grep -qF 'new row for relation ""rt"" violates check constraint' "$WORK/rt-rej.csv"; then
        ok "--mode $mode: reject messages name column and value"
    else
        not_ok "--mode $mode: reject messages name column and value" "$(cat "$WORK/rt-rej.csv")"
    fi
done
run load --table rt --header --mode insert --option writemode=upsert --option exceptionmode=ignore --option batchsize=2 --quiet "$WORK/rt.csv"
expect_eq "--option writemode/exceptionmode/batchsize with --mode: exit 2" "$rc" "2"
# The largest batchsize is one batch (the writer's own limit above it must not wrap to 0).
sql "TRUNCATE rt"
run load --table rt --header --mode insert --option exceptionmode=ignore --option batchsize=18446744073709551615 --quiet "$WORK/rt.csv"
expect_eq "--option batchsize=SIZE_MAX: loads, exit 2 (rejects)" "$rc" "2"
# A reject file that cannot be written once the load has committed: exit 1, but the message says
# the rows are loaded (a re-run of an append would load them twice).
sql "TRUNCATE rt"
run load --table rt --header --reject-file /dev/full "$WORK/rt.csv"
expect_rc "reject file unwritable after the commit: exit 1" 1
expect_err "reject file unwritable after the commit: the rows are said to be loaded" "only the reject file is incomplete"
expect_eq "reject file unwritable after the commit: the good rows are in" "$(sql "SELECT count(*) > 0 FROM rt")" "t"
# Batches committed before a strict failure stay, and the message says so.
sql "TRUNCATE rt"
run load --table rt --header --mode upsert --batch-size 1 "$WORK/rt.csv"
expect_eq "--mode upsert strict batched: exit 1, first batch stays" "$rc:$(sql "SELECT count(*) FROM rt")" "1:1"
expect_err "--mode upsert strict batched: committed batches reported" "committed before the failure stay loaded"
# Text format escapes and the NULL marker, stdin.
sql "CREATE TABLE esc (id int PRIMARY KEY, t text, b bytea)"
printf '1\ttab\\there\\\\ and \\x41\\101\t\\\\x00ff\n2\t\\N\t\\N\n3\tnew\\nline\tplain\n' |
    "$BIN" load --table esc --format text --mode insert --quiet >"$WORK/out" 2>"$WORK/err"
rc=$?
expect_eq "text format escapes through --mode insert" \
    "$rc|$(sql "SELECT string_agg(id || '=' || coalesce(t, 'NULL') || '=' || coalesce(encode(b, 'hex'), 'NULL'), '|' ORDER BY id) FROM esc")" \
    "0|1=tab	here\\ and AA=00ff|2=NULL=NULL|3=new
line=706c61696e"

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
# A job key with a line break and an ANSI escape prints as text on one line.
sql "SELECT ingest.begin_async_load('a', 'none', job_key => E'line\\nbreak\\x1b[31mred')" >/dev/null
run jobs --table a
if [ "$rc" -eq 0 ] && grep -qF 'line\nbreak\x1b[31mred' "$WORK/out" && ! grep -q $'\x1b' "$WORK/out"; then
    ok "jobs prints a key's control characters escaped"
else
    not_ok "jobs prints a key's control characters escaped" "$(cat -v "$WORK/out")"
fi
sql "SELECT ingest.cancel_async_load(id) FROM ingest.get_async_load_job() WHERE job_key LIKE 'line%'" >/dev/null
run wait "$job" --timeout 30
expect_rc "wait on a finished job: exit 0" 0
run cancel "$job"
expect_rc "cancel of a finished job: exit 1" 1
expect_err "cancel of a finished job: message" \
    "pg_ingest cancel: cannot cancel async load job $job: it has already ended (FINISH)"
run retry "$job"
expect_rc "retry of a finished job: exit 1" 1
expect_err "retry of a finished job: message" "cannot retry async load job $job: it is FINISH"
run wait 987654
expect_rc "wait on an unknown job: exit 1" 1
expect_err "wait on an unknown job: message" "does not exist"

# A failed job while others still load (a slow trigger, waiting cut short by --timeout): exit 1,
# and the jobs still loading are named, since they go on and may commit.
sql "CREATE TABLE aslow (id int PRIMARY KEY, v int CHECK (v >= 0))"
sql "CREATE FUNCTION aslow_nap() RETURNS trigger LANGUAGE plpgsql AS \$\$
     BEGIN IF NEW.id > 200 THEN PERFORM pg_sleep(0.1); END IF; RETURN NEW; END \$\$"
sql "CREATE TRIGGER nap BEFORE INSERT ON aslow FOR EACH ROW EXECUTE FUNCTION aslow_nap()"
seq 1 300 | sed 's/.*/&,&/; 5s/.*/5,-5/' >"$WORK/aslow.csv"
run load --table aslow --async --batch-size 100 --option max_temp_file_size=500 --timeout 8 "$WORK/aslow.csv"
expect_rc "async, a job failed and one still loading: exit 1" 1
expect_err "async, a job failed and one still loading: the failure" "is FAIL"
expect_err "async, a job failed and one still loading: the loading job is named" "still loading (they go on"

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
if grep -qF "$WORK/af.csv,2,2,23514," "$WORK/arej.csv" && grep -qF '"(2,-1)"' "$WORK/arej.csv"; then
    ok "async reject file lists the row"
else
    not_ok "async reject file lists the row" "$(cat "$WORK/arej.csv")"
fi

# Async rejects are named by input file and line (the job numbers its rows in stage order from
# its first row), over two files, many jobs (roll-over) and two staging connections; a record
# with a quoted line break moves the lines after it.
for f in 1 2; do
    {
        for i in $(seq 1 300); do
            id=$((f * 1000 + i))
            case "$i" in
                7 | 150 | 299) printf '%s,-1\n' "$id" ;;
                100) printf '%s,"4\n"\n' "$id" ;;
                *) printf '%s,%s\n' "$id" "$i" ;;
            esac
        done
    } >"$WORK/ar$f.csv"
done
sql "CREATE TABLE ar (id int PRIMARY KEY, v text CHECK (v::int >= 0))"
run load --table ar --async --conflict upsert --exception-mode ignore --parallel 2 --batch-size 40 \
    --option max_temp_file_size=2000 --reject-file "$WORK/arrej.csv" "$WORK/ar1.csv" "$WORK/ar2.csv"
expect_rc "async rejects over many jobs: exit 2" 2
expect_eq "async rejects over many jobs: each named by file and line" \
    "$(cut -d, -f1-2 "$WORK/arrej.csv" | grep -v '^source' | sed "s|$WORK/||" | sort | paste -sd' ' -)" \
    "ar1.csv,151 ar1.csv,300 ar1.csv,7 ar2.csv,151 ar2.csv,300 ar2.csv,7"
expect_eq "async rejects over many jobs: the rest loaded" "$(sql "SELECT count(*) FROM ar")" "594"

# Files with other line ends in one --async load: chunks waiting together share a COPY only when
# their line ends are of one kind (the server refuses another kind in one COPY).
printf '9601,a\r\n9602,b\r\n' >"$WORK/ak-crlf.csv"
printf '9603,c\n9604,d\n' >"$WORK/ak-lf.csv"
sql "CREATE TABLE ak (id int, v text)"
for par in 1 2; do
    sql "TRUNCATE ak"
    run load --table ak --async --parallel "$par" "$WORK/ak-crlf.csv" "$WORK/ak-lf.csv"
    expect_eq "--async --parallel $par, a CRLF file then an LF file: exit 0, every row" \
        "$rc:$(sql "SELECT string_agg(id || v, ',' ORDER BY id) FROM ak")" "0:9601a,9602b,9603c,9604d"
done

# A malformed value under --async names its file and line (staging is one COPY per chunk; the
# loader names the row, the tool its line), with quoted line breaks before it, over one and two
# connections, in a second file.
printf 'id,v\n1,"a\nb"\n2,b\n' >"$WORK/am1.csv"
{
    printf 'id,v\n'
    for i in $(seq 3 400); do
        if [ "$i" = 300 ]; then printf 'x300,"bad\nrow"\n'; else printf '%s,"two\nlines"\n' "$i"; fi
    done
} >"$WORK/am2.csv"
sql "CREATE TABLE am (id int PRIMARY KEY, v text)"
for par in 1 2; do
    run load --table am --header --async --parallel "$par" --batch-size 50 "$WORK/am1.csv" "$WORK/am2.csv"
    expect_rc "--async --parallel $par, a malformed value: exit 1" 1
    expect_err "--async --parallel $par, a malformed value: its file and line are named" \
        "invalid input syntax for type integer: \"x300\" ($WORK/am2.csv, line 596)"
done

# --async --timeout stops waiting, not the jobs: exit 3, the jobs named with how to follow them.
sql "CREATE TABLE at (id int PRIMARY KEY, v text)"
printf '1,a\n2,b\n' >"$WORK/at.csv"
# The lock is held (checked in pg_locks, not assumed after a sleep) until the checks are done.
PGAPPNAME=pgi_at_locker psql -XAtq -c "BEGIN" -c "LOCK TABLE at IN SHARE MODE" \
    -c "SELECT pg_sleep(120)" -c "COMMIT" >/dev/null 2>&1 &
locker=$!
for _ in $(seq 200); do
    [ "$(sql "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
              WHERE a.application_name = 'pgi_at_locker' AND l.relation = 'at'::regclass AND l.granted")" = 1 ] && break
    sleep 0.1
done
run load --table at --async --timeout 1 "$WORK/at.csv"
tjob=$(sql "SELECT max(id) FROM ingest.get_async_load_job() WHERE target = 'at'::regclass")
expect_rc "async --timeout with the job still running: exit 3" 3
expect_err "async --timeout: the job continues and how to wait for it" \
    "stopped waiting (--timeout); job(s) $tjob continue on the server: 'pg_ingest wait $tjob' waits for them"
expect_err "async --timeout: the summary says the rows are staged, not loaded" \
    "staged 2 rows for \"at\" in async load jobs, 1 of them still loading; the jobs that ended: 0 inserted"
if grep -q "^loaded " "$WORK/err"; then
    not_ok "async --timeout: no 'loaded' summary" "$(cat "$WORK/err")"
else
    ok "async --timeout: no 'loaded' summary"
fi
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgi_at_locker'" >/dev/null
wait "$locker" || true  # terminated: its transaction, and the lock, are gone
run wait "$tjob" --timeout 60
expect_eq "async --timeout: the job finishes all the same" "$rc:$(sql "SELECT count(*) FROM at")" "0:2"

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

# The progress bar on a terminal (a pty from script(1)): redrawn in place with \r, with rows,
# rate, percentage and ETA since the file size is known; the line is cleared at the end.
sql "TRUNCATE big"
script -qfec "$BIN load --table big --mode insert --batch-size 10000 $WORK/big.csv" /dev/null >"$WORK/pty" 2>&1
rc=$?
bars=$(grep -o $'\r''load: \[[#.]*\] [0-9]* rows, [0-9.]* [KMG]*i*B, [0-9.]* [KMG]*i*B/s, [0-9]*%, ETA [0-9:]*' "$WORK/pty" | wc -l)
if [ "$rc" -eq 0 ] && [ "$bars" -ge 2 ] && grep -q $'\r\033\\[Kloaded 300000 rows' "$WORK/pty"; then
    ok "progress bar on a terminal: $bars redraws with rows, rate, % and ETA, then cleared"
else
    not_ok "progress bar on a terminal" "exit $rc, $bars bar updates" "$(head -c 400 "$WORK/pty" | cat -v)"
fi
sql "TRUNCATE big"
script -qfec "$BIN load --table big --quiet $WORK/big.csv" /dev/null >"$WORK/pty" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && [ ! -s "$WORK/pty" ] && [ "$(sql "SELECT count(*) FROM big")" = 300000 ]; then
    ok "--quiet on a terminal: no bar, no output"
else
    not_ok "--quiet on a terminal: no bar, no output" "exit $rc" "$(head -c 300 "$WORK/pty" | cat -v)"
fi

# A failed batched load names the input lines that committed, so that only the others are
# loaded again. Line N holds id N (a quoted line break at lines 5-6: that record is id 5); the
# bad value is at line 19. The lines listed must be exactly the rows in the table, in every
# mode, also when --parallel lets batches after the failing one commit.
{
    for i in $(seq 1 40); do
        if [ "$i" = 5 ]; then
            printf '5,"two\nlines"\n'
        elif [ "$i" = 6 ]; then
            :
        elif [ "$i" = 19 ]; then
            printf 'x19,bad\n'
        else
            printf '%s,v\n' "$i"
        fi
    done
} >"$WORK/cm.csv"
sql "CREATE TABLE cm (id int PRIMARY KEY, v text)"
# The ids on the lines a "committed:" report lists (a record starts on the first line of a range
# or right after the previous record's last line; line 6 is the inside of record 5).
listed_ids() {
    sed -n 's/^pg_ingest load: committed: [^ ]* lines //p' "$WORK/err" | tr ',' '\n' |
        while read -r range; do
            [ -n "$range" ] || continue
            first=${range%-*}
            last=${range#*-}
            seq "$first" "$last"
        done | grep -vx 6 | sort -n | paste -sd, -
}
for mode in "copy" "insert" "upsert"; do
    for par in 1 3; do
        sql "TRUNCATE cm"
        run load --table cm --mode "$mode" --batch-size 3 --parallel "$par" "$WORK/cm.csv"
        in_table=$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM cm")
        if [ "$rc" -eq 1 ] && grep -q "committed: .*cm.csv lines 1-" "$WORK/err" &&
            [ "$(listed_ids)" = "$in_table" ]; then
            ok "--mode $mode --parallel $par failure: the committed lines listed are the rows loaded"
        else
            not_ok "--mode $mode --parallel $par failure: committed lines" "exit $rc; table: $in_table; listed: $(listed_ids)" "$(cat "$WORK/err")"
        fi
    done
done

# The committed lines are reported under --quiet too (a script re-running the load needs them).
sql "TRUNCATE cm"
run load --table cm --quiet --batch-size 3 --parallel 2 "$WORK/cm.csv"
expect_eq "--quiet failure: exit 1, the committed lines still listed" \
    "$rc:$(grep -c 'committed: .*cm.csv lines 1-' "$WORK/err")" "1:1"

# --mode insert --parallel: a batch the writer keeps after its retries (a serialization failure
# on every try) is not sent again behind the load's back once the load has failed and listed
# what committed. Row 100 fails twice, row 200 keeps the other connection busy meanwhile.
sql "CREATE SEQUENCE kw_tries"
sql "CREATE TABLE kw (id int PRIMARY KEY, v text)"
sql "CREATE FUNCTION kw_flaky() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN
  IF NEW.id = 100 AND nextval('kw_tries') <= 2 THEN
    RAISE EXCEPTION 'simulated serialization failure' USING ERRCODE = '40001';
  END IF;
  IF NEW.id = 200 THEN PERFORM pg_sleep(3); END IF;
  RETURN NEW; END\$\$"
sql "CREATE TRIGGER kw_flaky BEFORE INSERT ON kw FOR EACH ROW EXECUTE FUNCTION kw_flaky()"
printf '200,slow\n100,flaky\n' >"$WORK/kw.csv"
run load --table kw --mode insert --batch-size 1 --parallel 2 --option maxretrytimes=1 \
    --option retrywaittime=10 "$WORK/kw.csv"
sleep 2  # time for a writer thread to send a kept batch again, were there one
in_table=$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM kw")
listed=$(sed -n 's/^pg_ingest load: committed: [^ ]* lines\{0,1\} //p' "$WORK/err" | tr -d ' ')
if [ "$rc" -eq 1 ] && [ "$in_table" = "200" ] && [ "$listed" = "1" ]; then
    ok "--mode insert --parallel: a kept batch is not committed after the failure"
else
    not_ok "--mode insert --parallel: a kept batch is not committed after the failure" \
        "exit $rc; table: $in_table; listed: $listed" "$(cat "$WORK/err")"
fi

# jobs --watch: refreshes --count times and shows a job's state change (INIT -> CANCEL).
sql "CREATE TABLE wj (id int)"
wjob=$(sql "SELECT id FROM ingest.begin_async_load('wj', 'none')")
"$BIN" jobs --table wj --watch --interval 0.3 --count 10 >"$WORK/watch" 2>"$WORK/err" &
watcher=$!
sleep 1
sql "SELECT ingest.cancel_async_load($wjob)" >/dev/null
wait "$watcher"
rc=$?
expect_eq "jobs --watch --count 10: exit 0 and 10 tables" "$rc:$(grep -c '^ID  *KEY' "$WORK/watch")" "0:10"
expect_eq "jobs --watch shows the job going from INIT to CANCEL" \
    "$(grep -E "^$wjob " "$WORK/watch" | awk '{print $3}' | uniq | tr '\n' ' ')" "INIT CANCEL "

# --conflict update with only key columns: nothing to update, refused the same way in every
# mode before anything is loaded.
sql "CREATE TABLE ko (id int PRIMARY KEY, v text)"
sql "INSERT INTO ko VALUES (1, 'x')"
printf '1\n2\n' >"$WORK/ko.csv"
for margs in "--mode copy" "--mode copy --batch-size 1" "--mode insert" "--mode upsert" "--async"; do
    # shellcheck disable=SC2086
    run load --table ko --columns id --conflict update $margs "$WORK/ko.csv"
    expect_eq "--conflict update, key columns only, $margs: exit 1, table unchanged" \
        "$rc:$(sql "SELECT string_agg(id || ':' || v, ',') FROM ko")" "1:1:x"
    expect_err "--conflict update, key columns only, $margs: says why" "besides the"
done

# --conflict none in the writer modes: a key repeated in a batch is refused in the user's terms.
printf '3,a\n3,b\n' >"$WORK/ko-rep.csv"
for margs in "--mode insert" "--mode upsert"; do
    # shellcheck disable=SC2086
    run load --table ko --conflict none $margs "$WORK/ko-rep.csv"
    expect_err "--conflict none, a repeated key, $margs: named as --conflict none" \
        "the key was already written in this batch (--conflict none) ($WORK/ko-rep.csv, line 2)"
    # shellcheck disable=SC2086
    run load --table ko --conflict none $margs --reject-file "$WORK/ko-rej.csv" "$WORK/ko-rep.csv"
    expect_eq "--conflict none, a repeated key, $margs: the reject says --conflict none" \
        "$rc:$(grep -c -- '--conflict none' "$WORK/ko-rej.csv")" "2:1"
    sql "DELETE FROM ko WHERE id = 3"
done

# SIGINT while the COPY waits on a lock: the COPY is cancelled at once (not when the lock comes
# free), nothing is loaded, and no statement of the loader is left running. Unbatched (one
# transaction) and batched.
sql "CREATE TABLE lk (id int PRIMARY KEY, v text)"
printf '1,a\n2,b\n' >"$WORK/lk.csv"
# lock_table T: another session holds an ACCESS EXCLUSIVE lock on T, until unlock_table T.
lock_table() {
    psql -XAtq -c "BEGIN; LOCK TABLE $1; SELECT pg_sleep(60); COMMIT" >/dev/null 2>&1 &
    holder=$!
    for _ in $(seq 100); do
        [ "$(sql "SELECT count(*) FROM pg_locks WHERE relation = '$1'::regclass AND granted AND mode = 'AccessExclusiveLock'")" = 1 ] && break
        sleep 0.1
    done
}
unlock_table() {
    kill "$holder" 2>/dev/null
    sql "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'BEGIN; LOCK TABLE $1;%'" >/dev/null
    wait "$holder" 2>/dev/null
}
# interrupt_when_blocked PID T: SIGINT to PID once a session waits for a lock on T, then waits
# for PID; sets rc and took (milliseconds from the signal to the exit).
interrupt_when_blocked() {
    for _ in $(seq 100); do
        [ "$(sql "SELECT count(*) FROM pg_locks WHERE relation = '$2'::regclass AND NOT granted")" -ge 1 ] && break
        sleep 0.1
    done
    local started
    started=$(date +%s%N)
    kill -INT "$1"
    wait "$1"
    rc=$?
    took=$((($(date +%s%N) - started) / 1000000))
}
for margs in "" "--batch-size 1"; do
    lock_table lk
    # shellcheck disable=SC2086
    "$BIN" load --table lk --conflict upsert $margs "$WORK/lk.csv" >"$WORK/out" 2>"$WORK/err" &
    interrupt_when_blocked $! lk
    waiting=$(sql "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%lk%' AND state = 'active'")
    unlock_table lk
    label="SIGINT while the COPY waits on a lock${margs:+ ($margs)}"
    expect_eq "$label: exit 1 within 5 s, no COPY left waiting" \
        "$rc:$([ "$took" -lt 5000 ] && echo prompt || echo "slow ${took}ms"):$waiting" "1:prompt:0"
    if [ -z "$margs" ]; then
        expect_err "$label: says so" "interrupted by a signal: the COPY was cancelled and rolled back, nothing was loaded"
    else
        expect_err "$label: says so" "interrupted by a signal: no further batch was started; the batches in flight committed or were rolled back"
    fi
    expect_eq "$label: nothing loaded" "$(sql "SELECT count(*) FROM lk")" "0"
done

# --async: SIGINT while beginning the job waits on the locked table ends the load soon, and no
# job is left behind.
lock_table lk
"$BIN" load --table lk --async "$WORK/lk.csv" >"$WORK/out" 2>"$WORK/err" &
interrupt_when_blocked $! lk
unlock_table lk
expect_eq "--async, SIGINT while beginning on a locked table: exit 1 within 5 s, no job" \
    "$rc:$([ "$took" -lt 5000 ] && echo prompt || echo "slow ${took}ms"):$(sql "SELECT count(*) FROM ingest.get_async_load_job() WHERE target = 'lk'::regclass")" "1:prompt:0"
expect_err "--async, SIGINT while beginning on a locked table: says so" \
    "interrupted by a signal while beginning the first job: nothing was staged"

# --option verbose: info lines on stderr in every mode, also under --quiet (asked for); none
# without it; never the connection's password.
sql "CREATE TABLE vb (id int PRIMARY KEY, v text)"
printf '1,a\n2,b\n3,c\n' >"$WORK/vb.csv"
vdsn="host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER password=sekrit-verbose"
for case in "copy|--mode copy|committed a COPY of 3 records: 3 inserted, 0 updated" \
    "copy batched|--mode copy --batch-size 2|committed a COPY of 1 record: 1 inserted" \
    "insert|--mode insert|flushed 3 rows" \
    "async|--async|ended FINISH: 3 inserted, 0 updated, 0 skipped, 0 rejected"; do
    IFS='|' read -r label margs want <<<"$case"
    sql "TRUNCATE vb"
    # shellcheck disable=SC2086
    run load --table vb $margs --quiet --dsn "$vdsn" --option verbose=1 "$WORK/vb.csv"
    expect_rc "--option verbose, $label: exit 0" 0
    expect_err "--option verbose, $label: info line" "$want"
    if grep -q sekrit "$WORK/err" "$WORK/out"; then
        not_ok "--option verbose, $label: no password" "$(cat "$WORK/err")"
    else
        ok "--option verbose, $label: no password"
    fi
    sql "TRUNCATE vb"
    # shellcheck disable=SC2086
    run load --table vb $margs --quiet --dsn "$vdsn" "$WORK/vb.csv"
    expect_eq "without --option verbose, $label: nothing on stderr" "$rc:$(wc -c <"$WORK/err")" "0:0"
done
run load --table vb --async --conflict upsert --dsn "$vdsn" --option verbose=1 "$WORK/vb.csv"
expect_err "--option verbose, async: the job begun" "begun into \"public\".\"vb\", staging"
expect_err "--option verbose, async: the job submitted" "bytes staged): READY"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
