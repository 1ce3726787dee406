# Scenario E: the client library. Side by side, the rows of the narrow dataset (scenario A's
# files) through pg_ingest::Writer and through the usual alternatives, each contender in its own
# process (bench/client/client_bench.cpp, built before the run); then the Writer's peak memory
# at two sizes.
#
# Contenders (each repetition runs them in this order; untimed before each: a fresh table and
# CHECKPOINT; after each, untimed: count + checksum of the table):
#   copy           psql \copy target FROM fresh.csv (N new rows) into an empty table (reference)
#   writer         Writer, writemode copy, conflictmode strict: the append (a repeated key fails)
#   binary         the library's CopyIn + encode_field: one binary COPY, no Writer (informational)
#   stream_to      libpqxx pqxx::stream_to, one transaction
#   upsert         Writer, writemode copy, conflictmode upsert (COPY ... ON_CONFLICT 'upsert')
#                  of load.csv (half existing keys) into scenario A's pre-filled table
#   insert_upsert  the same load, Writer writemode upsert: multi-row INSERT ... ON CONFLICT DO
#                  UPDATE, 1000 rows per statement (same program, same batches)
#   multi          the same load as psql -f multi.sql (scenario A's contender; informational)
# Then peak memory (ru_maxrss of the client process) of a Writer append of BENCH_MEM_SMALL and
# BENCH_MEM_LARGE rows generated on the fly, each once, checked against the same rows in SQL.
#
# Environment: BENCH_WRITER_BATCH [50000] (Writer batchsize, the library default),
# BENCH_MEM_SMALL [BENCH_ROWS], BENCH_MEM_LARGE [10 × BENCH_ROWS].
scenario E "Client library: Writer vs psql \\copy, libpqxx stream_to, INSERT ... ON CONFLICT" scenario_E \
    "The narrow dataset's rows (scenario A's files, (id bigint primary key, a bigint, b text, c text)) written by client programs: N new rows into an empty table through pg_ingest::Writer, psql \\copy and libpqxx stream_to; scenario A's load (half existing keys) into the pre-filled table through the Writer's COPY ON CONFLICT and through multi-row INSERT ... ON CONFLICT; and the Writer's peak memory at two sizes."
scenario_prepare E scenario_E_prepare

BENCH_WRITER_BATCH=${BENCH_WRITER_BATCH:-50000}
BENCH_MEM_SMALL=${BENCH_MEM_SMALL:-$BENCH_ROWS}
BENCH_MEM_LARGE=${BENCH_MEM_LARGE:-$((10 * BENCH_ROWS))}
E_BUILD_ERR=""

scenario_E_prepare() {
    local v
    for v in BENCH_WRITER_BATCH BENCH_MEM_SMALL BENCH_MEM_LARGE; do
        [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
    done
    bench_build client_bench || E_BUILD_ERR="the bench program did not build (see $BENCH_WORK/build.log; cmake -DPG_INGEST_BUILD_BENCH=ON)"
}

# One client_bench process on table `target` of DB. Sets ELAPSED (the program's own clock: from
# before connecting to after the last commit; reading the CSV into memory is before it),
# CLIENT_RSS_KB (ru_maxrss at the end), CLIENT_OPEN_RSS_KB (ru_maxrss once connected / the Writer
# was open) and TIMED_ERR. Returns 1 when the program failed; 3 when it lacks the contender.
client_run() { # CONTENDER DB SOURCE
    local out rc=0 err=$BENCH_WORK/timed.err
    : >"$err"
    out=$("${BENCH_BIN[client_bench]}" "$1" "${CL_DSN[$2]}" target "$3" "$BENCH_WRITER_BATCH" 2>"$err") || rc=$?
    ELAPSED=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$out")
    CLIENT_RSS_KB=$(sed -n 's/.*maxrss_kb=\([0-9]*\).*/\1/p' <<<"$out")
    CLIENT_OPEN_RSS_KB=$(sed -n 's/.*open_rss_kb=\([0-9]*\).*/\1/p' <<<"$out")
    TIMED_ERR=$(grep -m1 -iE 'error|fatal' "$err" || head -n1 "$err")
    [ "$rc" = 0 ] || return "$rc"
    [ -n "$ELAPSED" ] || { TIMED_ERR="no timing in the output: '$out'"; return 1; }
}

# Check table `target` against EXPECT ("count checksum") and record the run.
e_check_record() { # KEY REP ROWS EXPECT
    local got status=ok note=""
    got=$(table_checksum ds_narrow)
    if [ "$got" != "$4" ]; then
        status=wrong note="end state (count checksum) '$got', expected '$4'"
    elif ! index_checked ds_narrow; then
        status=wrong note="the primary key index does not match the table: $INDEX_ERR"
    fi
    record E "$1" "$2" "$3" "$ELAPSED" "$status" "$note"
}

# The rows client_bench writer-generate makes, as SQL (see generated() there).
e_generated_sql() { # COUNT
    echo "SELECT k AS id, k * 31 + 7 AS a, lpad(to_hex(k * 2654435761), 16, '0') || lpad(to_hex(k * 40503 + 12345), 16, '0') AS b, format('load %s, \"q%s\"', k, k % 97) AS c FROM generate_series(1::bigint, $1) k"
}

scenario_E() {
    local sc=E ds=narrow db=ds_narrow dir n h rep key rc
    dataset_prepare "$ds"
    dir=$BENCH_WORK/data/$ds
    n=${DS_N[$ds]}
    h=$((n - ${DS_SHIFT[$ds]}))

    contender "$sc" copy "psql \\copy (reference)" \
        "\\copy target FROM fresh.csv WITH (FORMAT csv): $n new rows into an empty (LIKE base INCLUDING ALL) table, one transaction; psql process wall time" ref
    contender "$sc" writer "Writer append (copy, conflictmode strict)" \
        "pg_ingest::Writer, writemode copy, conflictmode strict, exceptionmode strict, batchsize $BENCH_WRITER_BATCH (one transaction per batch, each batch sorted by key), batchwritetimeoutms 0, backgroundflush on (the default: a full batch is sent by the Writer's thread while write() fills the next); write() of the same $n rows, then close(). With conflictmode strict each batch is a plain COPY target FROM STDIN WITH (FORMAT binary): a key already in the table fails the batch with 23505"
    contender "$sc" binary "library binary COPY, no Writer" \
        "pg_ingest::Connection + CopyIn + encode_field: one COPY target FROM STDIN WITH (FORMAT binary) of the same rows in file order, one transaction (what the Writer's append could cost without COPY ON CONFLICT; no target)"
    contender "$sc" stream_to "libpqxx stream_to" \
        "libpqxx $(pkg-config --modversion libpqxx 2>/dev/null || echo '?') pqxx::stream_to (text COPY) of the same rows in file order inside one pqxx::work, then commit"
    contender "$sc" upsert "Writer upsert (copy → COPY ON CONFLICT)" \
        "pg_ingest::Writer, writemode copy, conflictmode upsert: COPY ... WITH (FORMAT binary, ON_CONFLICT 'upsert') of load.csv's $n rows ($((n - h)) existing keys, $h new) into scenario A's pre-filled table (N rows, fresh copy before every run); batchsize $BENCH_WRITER_BATCH"
    contender "$sc" insert_upsert "Writer, multi-row INSERT ... ON CONFLICT" \
        "the same load through the same program, Writer writemode upsert: INSERT ... VALUES (1000 rows) ... ON CONFLICT (id) DO UPDATE with binary parameters, batchsize $BENCH_WRITER_BATCH (one transaction per batch, sorted by key as above)"
    contender "$sc" multi "psql, multi-row INSERT ... ON CONFLICT" \
        "the same load as scenario A's multi.sql: $BENCH_BATCH-row INSERT ... VALUES ... ON CONFLICT DO UPDATE statements with literal values, psql -f, one transaction"
    target "$sc" "Writer append vs psql \\copy" writer copy 1.0
    target "$sc" "Writer append vs libpqxx stream_to" writer stream_to 1.2
    target "$sc" "Writer upsert (COPY ON CONFLICT) vs multi-row INSERT ... ON CONFLICT, same program" upsert insert_upsert 5
    target "$sc" "Writer upsert vs psql multi-row INSERT ... ON CONFLICT (scenario A's script)" upsert multi ""
    target "$sc" "library binary COPY (no Writer) vs psql \\copy" binary copy ""
    measure_metric "$sc" mem_small "Writer peak RSS, $BENCH_MEM_SMALL rows" MiB \
        "ru_maxrss (getrusage) of the client_bench process at the end of a Writer append (writemode copy, conflictmode strict, batchsize $BENCH_WRITER_BATCH) of $BENCH_MEM_SMALL rows generated one at a time inside the write loop (nothing but the Writer holds rows), into an empty table"
    measure_metric "$sc" mem_large "Writer peak RSS, $BENCH_MEM_LARGE rows" MiB "the same with $BENCH_MEM_LARGE rows"
    bound "$sc" "Writer peak memory, $BENCH_MEM_LARGE rows vs $BENCH_MEM_SMALL rows (flat: bounded by the batch, not the load)" mem_large mem_small 1.2
    how_measured "$sc" "Client contenders (everything but psql): timed by the program itself (steady_clock) from before it connects (for the Writer: before the Writer is constructed, which connects and reads the catalog) to after its last commit. The rows were read from the same CSV files psql loads and parsed into memory before the clock starts: parsing is excluded, building the library's rows and encoding them is included. psql contenders: wall time of the psql process, as in A (start-up and reading the file included, a few ms). Peak memory: ru_maxrss of the whole client process."

    local keys=(copy writer binary stream_to upsert insert_upsert multi)
    if [ -n "$E_BUILD_ERR" ]; then
        for key in writer binary stream_to upsert insert_upsert; do record "$sc" "$key" - "$n" "" "n/a" "not available: $E_BUILD_ERR"; done
        measure "$sc" mem_small - "" "n/a" "not available: $E_BUILD_ERR"
        measure "$sc" mem_large - "" "n/a" "not available: $E_BUILD_ERR"
        keys=(copy multi)
    fi

    log "$sc: warm-up (psql \\copy, untimed)"
    empty_target "$db"
    timed_psql "$db" "$dir/plain.sql" || die "$sc warm-up failed: $TIMED_ERR"
    if [ -z "$E_BUILD_ERR" ]; then
        # stream_to needs libpqxx at build time: find out once, untimed
        empty_target "$db"
        rc=0
        client_run stream-to "$db" "$dir/fresh.csv" || rc=$?
        if [ "$rc" = 3 ]; then
            record "$sc" stream_to - "$n" "" "n/a" "not available: client_bench was built without libpqxx (install libpqxx-dev: make deps)"
            keys=(copy writer binary upsert insert_upsert multi)
        fi
    fi

    for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
        for key in "${keys[@]}"; do
            case "$key" in
                copy)
                    empty_target "$db"
                    if timed_psql "$db" "$dir/plain.sql"; then
                        e_check_record copy "$rep" "$n" "${DS_EXP_FRESH[$ds]}"
                    else
                        record "$sc" copy "$rep" "$n" "$ELAPSED" failed "$TIMED_ERR"
                    fi
                    ;;
                writer | binary | stream_to)
                    empty_target "$db"
                    local prog=writer-append
                    [ "$key" = binary ] && prog=copy-binary
                    [ "$key" = stream_to ] && prog=stream-to
                    if client_run "$prog" "$db" "$dir/fresh.csv"; then
                        e_check_record "$key" "$rep" "$n" "${DS_EXP_FRESH[$ds]}"
                    else
                        record "$sc" "$key" "$rep" "$n" "$ELAPSED" failed "$TIMED_ERR"
                    fi
                    ;;
                upsert | insert_upsert)
                    fresh_target "$db"
                    local prog=writer-upsert
                    [ "$key" = insert_upsert ] && prog=writer-insert-upsert
                    if client_run "$prog" "$db" "$dir/load.csv"; then
                        e_check_record "$key" "$rep" "$n" "${DS_EXP_UPSERT[$ds]}"
                    else
                        record "$sc" "$key" "$rep" "$n" "$ELAPSED" failed "$TIMED_ERR"
                    fi
                    ;;
                multi)
                    fresh_target "$db"
                    if timed_psql "$db" "$dir/multi.sql"; then
                        e_check_record multi "$rep" "$n" "${DS_EXP_UPSERT[$ds]}"
                    else
                        record "$sc" multi "$rep" "$n" "$ELAPSED" failed "$TIMED_ERR"
                    fi
                    ;;
            esac
            wait_ready "$db" || die "cluster does not answer after $sc/$key"
        done
    done

    [ -n "$E_BUILD_ERR" ] || e_memory "$db"
    q "$db" "DROP TABLE IF EXISTS target" >/dev/null
    checkpoint main
}

# Peak memory of a Writer append of BENCH_MEM_SMALL, then BENCH_MEM_LARGE generated rows.
e_memory() { # DB
    local db=$1 key rows expect got mib notes=""
    for key in mem_small mem_large; do
        rows=$BENCH_MEM_SMALL
        [ "$key" = mem_large ] && rows=$BENCH_MEM_LARGE
        empty_target "$db"
        log "E: Writer peak memory, $rows generated rows"
        if ! client_run writer-generate "$db" "$rows"; then
            measure E "$key" 1 "" failed "$TIMED_ERR"
            wait_ready "$db" || die "cluster does not answer after E/$key"
            continue
        fi
        mib=$(awk -v k="$CLIENT_RSS_KB" 'BEGIN{printf "%.1f", k / 1024}')
        got=$(table_checksum "$db")
        expect=$(q "$db" "SELECT count(*) || ' ' || coalesce(sum(hashtextextended(t::text, 0)), 0) FROM ($(e_generated_sql "$rows")) t")
        if [ "$got" = "$expect" ]; then
            measure E "$key" 1 "$mib" ok
        else
            measure E "$key" 1 "$mib" wrong "end state (count checksum) '$got', expected '$expect'"
        fi
        notes+="${notes:+; }$(awk -v r="$rows" -v s="$ELAPSED" -v o="$CLIENT_OPEN_RSS_KB" -v m="$CLIENT_RSS_KB" \
            'BEGIN{printf "%d rows: %.1f s (%.0f rows/s, generation included), ru_maxrss %.1f MiB at the end, %.1f MiB once the Writer was open", r, s, r/s, m/1024, o/1024}')"
    done
    [ -z "$notes" ] || scenario_note E "Writer peak-memory runs (one each, verified by count + checksum against the same rows computed in SQL): $notes."
}
