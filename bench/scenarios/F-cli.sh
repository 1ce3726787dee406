# Scenario F: the command-line tool. `pg_ingest load` of scenario A's CSV files against psql
# \copy of the same file and against pgloader, each a process timed by the harness.
#
# Contenders (each repetition runs them in this order; untimed before each: a fresh table and
# CHECKPOINT; after each, untimed: count + checksum of the table):
#   copy         psql \copy target FROM fresh.csv (N new rows) into an empty table (reference)
#   cli          pg_ingest load --format csv fresh.csv (conflict none: one plain COPY)
#   pgloader     pgloader with a LOAD CSV command file for fresh.csv (its default settings)
#   psql_upsert  psql \copy target FROM load.csv WITH (FORMAT csv, ON_CONFLICT 'upsert') into
#                scenario A's pre-filled table (informational)
#   cli_upsert   pg_ingest load --conflict upsert load.csv, same table (informational)
#   cli_async_upsert   pg_ingest load --async --parallel 2 --conflict upsert load.csv: an async
#                load job staged in order over 2 connections, chunks spooled for retries
#   cli_async_nospool  the same with --option maxretrytimes=0 (no spool)
#   cli_async_one      the same with --parallel 1 (one unordered staging stream)
#                (the three async ones are informational: what ordered staging and the spool cost)
scenario F "CLI: pg_ingest load vs psql \\copy and pgloader" scenario_F \
    "A CSV file of the narrow dataset (scenario A's files, (id bigint primary key, a bigint, b text, c text)) loaded by command-line tools: N new rows (fresh.csv) into an empty table with pg_ingest load, psql \\copy and pgloader; and, for information, scenario A's load (load.csv, half existing keys) upserted into the pre-filled table with pg_ingest load --conflict upsert and with psql \\copy ... ON_CONFLICT 'upsert'."
scenario_prepare F scenario_F_prepare

F_BUILD_ERR=""
scenario_F_prepare() {
    bench_build pg_ingest_cli || F_BUILD_ERR="the pg_ingest CLI did not build (see $BENCH_WORK/build.log)"
}

# pgloader's URI for database DB of the main cluster, over its Unix socket.
f_pgloader_uri() { # DB
    local host port
    host=$(sed -n 's/.*host=\([^ ]*\).*/\1/p' <<<"${CL_DSN[main]}")
    port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"${CL_DSN[main]}")
    echo "postgresql://postgres@unix:$host:$port/$1"
}

# Removes contenders from the caller's `keys`.
f_drop() { # KEY...
    local k out=()
    for k in "${keys[@]}"; do [[ " $* " == *" $k "* ]] || out+=("$k"); done
    keys=("${out[@]}")
}

f_check_record() { # KEY REP ROWS EXPECT
    local got status=ok note=""
    got=$(table_checksum ds_narrow)
    [ "$got" = "$4" ] || { status=wrong note="end state (count checksum) '$got', expected '$4'"; }
    record F "$1" "$2" "$3" "$ELAPSED" "$status" "$note"
}

scenario_F() {
    local sc=F ds=narrow db=ds_narrow dir n h rep key cli pgl_version="" ok
    dataset_prepare "$ds"
    dir=$BENCH_WORK/data/$ds
    n=${DS_N[$ds]}
    h=$((n - ${DS_SHIFT[$ds]}))
    cli=${BENCH_BIN[pg_ingest_cli]:-}
    local dsn="${CL_DSN[$db]}"
    # sed reads all of it: `head` could end the pipe early and fail it under pipefail
    if command -v pgloader >/dev/null; then
        pgl_version=$(pgloader --version 2>/dev/null | sed -n '1{s/^pgloader version //; s/"//g; p}') || pgl_version="?"
    fi

    contender "$sc" copy "psql \\copy (reference)" \
        "\\copy target FROM fresh.csv WITH (FORMAT csv): $n new rows into an empty (LIKE base INCLUDING ALL) table, one transaction" ref
    contender "$sc" cli "pg_ingest load" \
        "pg_ingest load --dsn DSN --table target --format csv --quiet fresh.csv: default --conflict none and no --batch-size, i.e. the file streamed through one plain COPY ... FROM STDIN (FORMAT csv), one transaction"
    contender "$sc" pgloader "pgloader" \
        "pgloader ${pgl_version:-?} (Debian package $(dpkg-query -W -f='${Version}' pgloader 2>/dev/null || echo '?')) running the command file pgloader.load (LOAD CSV FROM fresh.csv (id, a, b, c) INTO the table over the Unix socket, fields optionally enclosed by '\"', escaped by double-quote, terminated by ','; every other setting pgloader's default: it keeps the index, batches of 25,000 rows, COPY)"
    contender "$sc" psql_upsert "psql \\copy ... ON_CONFLICT 'upsert'" \
        "\\copy target FROM load.csv WITH (FORMAT csv, ON_CONFLICT 'upsert'): $n rows ($((n - h)) existing keys, $h new) into scenario A's pre-filled table (N rows, fresh copy before every run)"
    contender "$sc" cli_upsert "pg_ingest load --conflict upsert" \
        "pg_ingest load --dsn DSN --table target --format csv --conflict upsert --quiet load.csv: the same load, one COPY ... ON_CONFLICT 'upsert' in one transaction"
    contender "$sc" cli_async_upsert "pg_ingest load --async --parallel 2 --conflict upsert" \
        "pg_ingest load --dsn DSN --table target --format csv --conflict upsert --async --parallel 2 --quiet load.csv: the same load through an async load job (AsyncLoader): chunks of 50,000 rows staged in order (ingest.stage_chunk) over 2 connections and spooled to a temporary file for retries (maxretrytimes 3, the default), one job (max_temp_file_size 96 MiB), submitted and waited for until FINISH"
    contender "$sc" cli_async_nospool "... --option maxretrytimes=0" \
        "as pg_ingest load --async --parallel 2 --conflict upsert, with --option maxretrytimes=0: no spool file (and no retries)"
    contender "$sc" cli_async_one "... --parallel 1" \
        "as pg_ingest load --async --parallel 2 --conflict upsert, with --parallel 1: one staging connection, one COPY stream (no chunk numbers, no sort at apply), spool on"
    target "$sc" "pg_ingest load vs psql \\copy" cli copy 0.9
    target "$sc" "pg_ingest load vs pgloader" cli pgloader 2
    target "$sc" "pg_ingest load --conflict upsert vs psql \\copy ... ON_CONFLICT 'upsert'" cli_upsert psql_upsert ""
    target "$sc" "pg_ingest load --async (ordered staging, 2 connections, spool) vs pg_ingest load --conflict upsert" cli_async_upsert cli_upsert ""
    target "$sc" "pg_ingest load --async with the retry spool vs without (maxretrytimes=0)" cli_async_upsert cli_async_nospool ""
    target "$sc" "pg_ingest load --async, ordered staging over 2 connections vs one connection" cli_async_upsert cli_async_one ""
    how_measured "$sc" "Every contender is one process (psql, pg_ingest, pgloader) timed by the harness with \$EPOCHREALTIME from before it starts to after it exits: start-up (for pgloader the SBCL image, a fraction of a second), connecting and reading the file are included."

    cat >"$dir/pgloader.load" <<EOF
LOAD CSV
     FROM '$dir/fresh.csv' (id, a, b, c)
     INTO $(f_pgloader_uri "$db")
          TARGET TABLE target (id, a, b, c)
     WITH fields optionally enclosed by '"',
          fields escaped by double-quote,
          fields terminated by ','
;
EOF
    mkdir -p "$BENCH_WORK/pgloader"

    local keys=(copy cli pgloader psql_upsert cli_upsert cli_async_upsert cli_async_nospool cli_async_one)
    if [ -n "$F_BUILD_ERR" ]; then
        record "$sc" cli - "$n" "" "n/a" "not available: $F_BUILD_ERR"
        record "$sc" cli_upsert - "$n" "" "n/a" "not available: $F_BUILD_ERR"
        for key in cli_async_upsert cli_async_nospool cli_async_one; do
            record "$sc" "$key" - "$n" "" "n/a" "not available: $F_BUILD_ERR"
        done
        f_drop cli cli_upsert cli_async_upsert cli_async_nospool cli_async_one
    fi
    if [ -z "$pgl_version" ]; then
        record "$sc" pgloader - "$n" "" "n/a" "not available: pgloader is not installed (make deps)"
        f_drop pgloader
    fi
    if ! upsert_available; then
        record "$sc" psql_upsert - "$n" "" "n/a" "not available: $UPSERT_MSG"
        record "$sc" cli_upsert - "$n" "" "n/a" "not available: $UPSERT_MSG"
        f_drop psql_upsert cli_upsert
    fi

    log "$sc: warm-up (psql \\copy, untimed)"
    empty_target "$db"
    timed_psql "$db" "$dir/plain.sql" || die "$sc warm-up failed: $TIMED_ERR"

    for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
        for key in "${keys[@]}"; do
            case "$key" in
                copy | cli | pgloader) empty_target "$db" ;;
                *) fresh_target "$db" ;;
            esac
            ok=0
            case "$key" in
                copy) timed_psql "$db" "$dir/plain.sql" || ok=$? ;;
                psql_upsert) timed_psql "$db" "$dir/upsert.sql" || ok=$? ;;
                cli) timed_cmd "$cli" load --dsn "$dsn" --table target --format csv --quiet "$dir/fresh.csv" || ok=$? ;;
                cli_upsert) timed_cmd "$cli" load --dsn "$dsn" --table target --format csv --conflict upsert --quiet "$dir/load.csv" || ok=$? ;;
                cli_async_upsert) timed_cmd "$cli" load --dsn "$dsn" --table target --format csv --conflict upsert --async --parallel 2 --quiet "$dir/load.csv" || ok=$? ;;
                cli_async_nospool) timed_cmd "$cli" load --dsn "$dsn" --table target --format csv --conflict upsert --async --parallel 2 --option maxretrytimes=0 --quiet "$dir/load.csv" || ok=$? ;;
                cli_async_one) timed_cmd "$cli" load --dsn "$dsn" --table target --format csv --conflict upsert --async --parallel 1 --quiet "$dir/load.csv" || ok=$? ;;
                pgloader) timed_cmd pgloader --root-dir "$BENCH_WORK/pgloader" "$dir/pgloader.load" || ok=$? ;;
            esac
            if [ "$ok" != 0 ]; then
                record "$sc" "$key" "$rep" "$n" "$ELAPSED" failed "exit $ok: $TIMED_ERR"
                wait_ready "$db" || die "cluster does not answer after $sc/$key"
                continue
            fi
            case "$key" in
                copy | cli | pgloader) f_check_record "$key" "$rep" "$n" "${DS_EXP_FRESH[$ds]}" ;;
                *) f_check_record "$key" "$rep" "$n" "${DS_EXP_UPSERT[$ds]}" ;;
            esac
        done
    done
    q "$db" "DROP TABLE IF EXISTS target" >/dev/null
    checkpoint main
}
