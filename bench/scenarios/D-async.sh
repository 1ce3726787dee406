# Scenario D: async load jobs end to end against plain COPY of the same rows, and the latency
# from submit to FINISH of a 1-row job.
#
# Contenders (each repetition runs them in this order; untimed before each: a fresh table and
# CHECKPOINT):
#   copy          \copy target FROM fresh.csv into an empty (LIKE base) table      (reference)
#   async         begin_async_load(target, 'none'); \copy the two halves of fresh.csv into the
#                 staging table from 2 concurrent psql connections; submit; wait_async_load until
#                 it returns; timed from before begin to after wait returned
#   async_upsert  the same with conflict mode 'upsert' and load.csv into the pre-filled table of
#                 scenario A (BENCH_ASYNC_UPSERT=0 skips it); compared with scenario A's
#                 COPY ... ON_CONFLICT 'upsert' as a note when A runs in the same run
# Then BENCH_LATENCY_RUNS 1-row jobs one after another (begin, INSERT 1 row, submit, wait).
#
# Environment: BENCH_LATENCY_RUNS [21], BENCH_ASYNC_UPSERT [1], BENCH_ASYNC_WAIT ['1 hour']
# (the wait_async_load timeout; a job not ended by then is recorded as failed).
scenario D "Async load jobs" scenario_D \
    "N new rows (the fresh.csv of scenario A: ids N+1..2N, shuffled) into an empty (id bigint primary key, a bigint, b text, c text) table: an async load job (ingest.begin_async_load(target, 'none'), COPY into its staging table from 2 concurrent connections, submit, wait until FINISH), end to end, against one plain COPY of the same rows; the upsert variant into scenario A's pre-filled table; and the latency from submit to FINISH of 1-row jobs."

BENCH_LATENCY_RUNS=${BENCH_LATENCY_RUNS:-21}
BENCH_ASYNC_UPSERT=${BENCH_ASYNC_UPSERT:-1}
BENCH_ASYNC_WAIT=${BENCH_ASYNC_WAIT:-1 hour}

# An empty copy of base (same columns, primary key), untimed, then CHECKPOINT.
async_empty_target() { # DB
    qf "$1" >/dev/null <<'EOF'
DROP TABLE IF EXISTS target;
CREATE TABLE target (LIKE base INCLUDING ALL);
ALTER TABLE target SET (autovacuum_enabled = off);
CHECKPOINT;
EOF
}

# Why job ID is not FINISH (state, SQLSTATE, message), for a failure note.
async_job_error() { # DB ID
    q "$1" "SELECT state || coalesce(': ' || error_sqlstate, '') || coalesce(' ' || error_message, '')
            FROM ingest.get_async_load_job($2)" 2>&1 | head -n1
}

# One async load job on table `target`, end to end: begin, \copy FILE1 and FILE2 into its staging
# table from two concurrent psql connections, submit, wait until it ends. Sets ELAPSED (before
# begin .. after wait returned, or until the failure), ASYNC_ID, ASYNC_STAGE_S (begin .. both
# COPYs done), ASYNC_APPLY_S (both COPYs done, i.e. before submit .. after wait returned),
# TIMED_ERR. Returns 1 when a step fails or the job does not end in FINISH (the job is then
# canceled if it can be).
async_job() { # DB MODE FILE1 FILE2
    local db=$1 mode=$2 f1=$3 f2=$4 t0 t1 t3 out staging="" state="" p1 p2 rc1=0 rc2=0
    local err=$BENCH_WORK/async.err
    ASYNC_ID="" ASYNC_STAGE_S="" ASYNC_APPLY_S="" TIMED_ERR="" ELAPSED=""
    : >"$err"
    psql_cmd "$db"
    t0=${EPOCHREALTIME/,/.}
    if out=$("${PSQL[@]}" -At -F ' ' -c "SELECT id, staging FROM ingest.begin_async_load('target', '$mode')" 2>"$err"); then
        read -r ASYNC_ID staging <<<"$out"
    fi
    if [ -z "$ASYNC_ID" ] || [ -z "$staging" ]; then
        TIMED_ERR="begin_async_load: $(grep -m1 -E 'ERROR|FATAL' "$err" || head -n1 "$err")"
    else
        "${PSQL[@]}" -c "\\copy $staging FROM '$f1' WITH (FORMAT csv)" >/dev/null 2>"$err.1" &
        p1=$!
        "${PSQL[@]}" -c "\\copy $staging FROM '$f2' WITH (FORMAT csv)" >/dev/null 2>"$err.2" &
        p2=$!
        wait "$p1" || rc1=$?
        wait "$p2" || rc2=$?
        t1=${EPOCHREALTIME/,/.}
        if [ "$rc1" != 0 ] || [ "$rc2" != 0 ]; then
            TIMED_ERR="COPY into $staging: $(cat "$err.1" "$err.2" | grep -m1 -E 'ERROR|FATAL' || cat "$err.1" "$err.2" | head -n1)"
        elif ! "${PSQL[@]}" -At -c "SELECT ingest.submit_async_load($ASYNC_ID)" >/dev/null 2>"$err"; then
            TIMED_ERR="submit_async_load: $(grep -m1 -E 'ERROR|FATAL' "$err" || head -n1 "$err")"
        elif ! state=$("${PSQL[@]}" -At -c "SELECT ingest.wait_async_load($ASYNC_ID, '$BENCH_ASYNC_WAIT')" 2>"$err"); then
            TIMED_ERR="wait_async_load: $(grep -m1 -E 'ERROR|FATAL' "$err" || head -n1 "$err")"
        fi
    fi
    t3=${EPOCHREALTIME/,/.}
    ELAPSED=$(awk -v a="$t3" -v b="$t0" 'BEGIN{printf "%.6f", a-b}')
    if [ -z "$TIMED_ERR" ] && [ "$state" != FINISH ]; then
        case "$state" in
            FAIL | CANCEL) TIMED_ERR="job $ASYNC_ID ended in $(async_job_error "$db" "$ASYNC_ID")" ;;
            *) TIMED_ERR="job $ASYNC_ID not ended after wait_async_load(id, '$BENCH_ASYNC_WAIT'): state '$state'" ;;
        esac
    fi
    if [ -n "$TIMED_ERR" ]; then
        [ -n "$ASYNC_ID" ] && q "$db" "SELECT ingest.cancel_async_load($ASYNC_ID)" >/dev/null 2>&1 || true
        return 1
    fi
    ASYNC_STAGE_S=$(awk -v a="$t1" -v b="$t0" 'BEGIN{printf "%.6f", a-b}')
    ASYNC_APPLY_S=$(awk -v a="$t3" -v b="$t1" 'BEGIN{printf "%.6f", a-b}')
    return 0
}

# Check the job's record and table `target` after an async job; sets CHECK_NOTE ("" = right).
# EXPECT is "count checksum" (table_checksum), or just the row count.
async_check() { # DB ID EXPECT INSERTED UPDATED
    local db=$1 id=$2 expect=$3 got job want
    CHECK_NOTE=""
    if [[ $expect == *' '* ]]; then
        got=$(table_checksum "$db")
    else
        got=$(q "$db" "SELECT count(*) FROM target")
    fi
    [ "$got" = "$expect" ] || CHECK_NOTE="end state (count checksum) '$got', expected '$expect'"
    if [ -z "$CHECK_NOTE" ] && ! index_checked "$db"; then
        CHECK_NOTE="the primary key index does not match the table: $INDEX_ERR"
    fi
    job=$(q "$db" "SELECT state || ' ' || rows_inserted || ' ' || rows_updated || ' ' || rows_skipped || ' '
                   || rows_rejected || ' ' || (staging IS NULL) FROM ingest.get_async_load_job($id)" 2>&1)
    want="FINISH $4 $5 0 0 true"
    [ "$job" = "$want" ] || CHECK_NOTE="${CHECK_NOTE:+$CHECK_NOTE; }job $id (state inserted updated skipped rejected staging_dropped) '$job', expected '$want'"
}

# The job's server stamps, for the notes: sets STAMP_START (submitted_at -> started_at) and
# STAMP_RUN (started_at -> finished_at), in seconds.
async_stamps() { # DB ID
    IFS='|' read -r STAMP_START STAMP_RUN <<<"$(q "$1" "SELECT extract(epoch FROM started_at - submitted_at),
        extract(epoch FROM finished_at - started_at) FROM ingest.get_async_load_job($2)")"
}

# Split FILE (one CSV row per line) into FILE.1 (first half) and FILE.2 (the rest).
async_split() { # FILE ROWS
    local lines h=$(($2 / 2))
    lines=$(wc -l <"$1")
    [ "$lines" -eq "$2" ] || die "D: $1 has $lines lines, expected $2 (a row with a line break?); cannot split it by lines"
    head -n "$h" "$1" >"$1.1"
    tail -n +"$((h + 1))" "$1" >"$1.2"
}

# The latency of 1-row jobs: one psql session per run (its start-up is not timed).
async_latency() { # DB
    local db=$1 run out st obs srv queue state ins cnt note
    local runs=$BENCH_LATENCY_RUNS
    q "$db" "DROP TABLE IF EXISTS lat; CREATE TABLE lat (id bigint PRIMARY KEY, v text)" >/dev/null
    log "D: latency, $runs 1-row jobs"
    for ((run = 1; run <= runs; run++)); do
        psql_cmd "$db"
        # t0 just before submit, t1 just after wait returned: clock_timestamp() of the client's own
        # backend, so psql start-up is excluded and a Unix-socket round trip (< 1 ms) is included
        if ! out=$("${PSQL[@]}" -At -v run="$run" -v wait="$BENCH_ASYNC_WAIT" -f - 2>&1 <<'EOF'
SELECT id AS jid, staging AS stg FROM ingest.begin_async_load('lat', 'none') \gset
INSERT INTO :stg VALUES (:run, 'latency run ' || :run);
SELECT clock_timestamp() AS t0 \gset
SELECT ingest.submit_async_load(:jid) AS submitted \gset
SELECT ingest.wait_async_load(:jid, :'wait') AS st \gset
SELECT clock_timestamp() AS t1 \gset
SELECT :'st', extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz),
       extract(epoch FROM finished_at - submitted_at), extract(epoch FROM started_at - submitted_at),
       state, rows_inserted, (SELECT count(*) FROM lat WHERE id = :run AND v = 'latency run ' || :run),
       coalesce(error_sqlstate || ' ' || error_message, '')
  FROM ingest.get_async_load_job(:jid);
EOF
        ); then
            note="psql: $(grep -m1 -E 'ERROR|FATAL' <<<"$out" || head -n1 <<<"$out")"
            latency D observed "$run" "" failed "$note"
            latency D server "$run" "" failed "$note"
            latency D start "$run" "" failed "$note"
            log "  D latency run $run: FAILED: $note"
            continue
        fi
        IFS='|' read -r st obs srv queue state ins cnt note <<<"$(tail -n1 <<<"$out")"
        if [ "$st" != FINISH ] || [ "$state" != FINISH ] || [ "$ins" != 1 ] || [ "$cnt" != 1 ]; then
            note="wait returned '$st', job state '$state', rows_inserted '$ins', row in table: '$cnt'${note:+; $note}"
            latency D observed "$run" "$obs" failed "$note"
            latency D server "$run" "$srv" failed "$note"
            latency D start "$run" "$queue" failed "$note"
            log "  D latency run $run: FAILED: $note"
            continue
        fi
        latency D observed "$run" "$obs" ok
        latency D server "$run" "$srv" ok
        latency D start "$run" "$queue" ok
        log "  D latency run $run: $(awk -v o="$obs" -v s="$srv" -v q="$queue" 'BEGIN{printf "submit -> FINISH %.1f ms as seen by the client; server stamps: to a worker %.1f ms, submitted_at -> finished_at %.1f ms", o*1000, q*1000, s*1000}')"
    done
    q "$db" "DROP TABLE IF EXISTS lat" >/dev/null
}

scenario_D() {
    local sc=D ds=narrow db=ds_narrow dir n h rep key out note status
    [[ $BENCH_LATENCY_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_LATENCY_RUNS must be a positive integer (got '$BENCH_LATENCY_RUNS')"
    dataset_prepare "$ds"
    dir=$BENCH_WORK/data/$ds
    n=${DS_N[$ds]}
    h=$((n - ${DS_SHIFT[$ds]}))   # new keys in load.csv; the other DS_SHIFT exist in base

    contender "$sc" copy "plain COPY (reference)" \
        "\\copy target FROM fresh.csv WITH (FORMAT csv): $n new rows into an empty (LIKE base INCLUDING ALL) table, one psql process" ref
    contender "$sc" async "async load job, 'none'" \
        "end to end from before ingest.begin_async_load('target', 'none') to after ingest.wait_async_load(id) returned FINISH: \\copy the two halves of fresh.csv ($((n / 2)) + $((n - n / 2)) rows, split untimed) into the staging table from 2 concurrent psql processes, then ingest.submit_async_load(id), then wait; 5 psql processes in all (begin, 2 × COPY, submit, wait), their start-up included; same empty table as the reference"
    local keys=(copy async)
    if [ "$BENCH_ASYNC_UPSERT" = 1 ]; then
        contender "$sc" async_upsert "async load job, 'upsert'" \
            "as the async job, conflict mode 'upsert', loading load.csv ($n rows: $((n - h)) existing keys, $h new) into the pre-filled table of scenario A (N rows, fresh copy before every run)"
        keys+=(async_upsert)
        compare "$sc" "async upsert job vs scenario A's COPY ... ON_CONFLICT 'upsert' (same load into the same pre-filled table, measured at another moment of this run, not side by side)" \
            async_upsert A upsert
    fi
    target "$sc" "async load job (end to end) vs plain COPY" async copy 0.7
    latency_metric "$sc" observed "submit → FINISH, as the client sees it" \
        "clock_timestamp() in the client's session just before SELECT ingest.submit_async_load(id) and just after SELECT ingest.wait_async_load(id) returned FINISH (psql start-up excluded, a Unix-socket round trip included)"
    latency_metric "$sc" server "submitted_at → finished_at (server stamps)" \
        "finished_at - submitted_at from ingest.get_async_load_job(id): both are clock_timestamp() when the worker or submit wrote them"
    latency_metric "$sc" start "submitted_at → started_at (to a worker)" \
        "started_at - submitted_at from ingest.get_async_load_job(id): until a worker claimed the job"

    async_split "$dir/fresh.csv" "$n"
    async_split "$dir/load.csv" "$n"

    # Are async jobs there at all? A 1-row job, untimed (also the warm-up of the job machinery).
    log "$sc: probe (1-row async job, untimed)"
    q "$db" "DROP TABLE IF EXISTS target; CREATE TABLE target (LIKE base INCLUDING ALL)" >/dev/null
    head -n1 "$dir/fresh.csv" >"$dir/probe.1"
    : >"$dir/probe.2"
    if ! async_job "$db" none "$dir/probe.1" "$dir/probe.2"; then
        note="not available: a 1-row async load job failed: $TIMED_ERR"
        log "$sc: $note"
        record "$sc" async - "$n" "" "n/a" "$note"
        [ "$BENCH_ASYNC_UPSERT" = 1 ] && record "$sc" async_upsert - "$n" "" "n/a" "$note"
        latency "$sc" observed - "" "n/a" "$note"
        latency "$sc" server - "" "n/a" "$note"
        latency "$sc" start - "" "n/a" "$note"
        keys=(copy)
    else
        async_check "$db" "$ASYNC_ID" 1 1 0
        [ -z "$CHECK_NOTE" ] || scenario_note "$sc" "the probe job's record looks wrong: $CHECK_NOTE"
        scenario_note "$sc" "$(q "$db" "SELECT format('server settings: ingest.max_workers = %s, ingest.launcher_naptime = %s, max_worker_processes = %s', current_setting('ingest.max_workers'), current_setting('ingest.launcher_naptime'), current_setting('max_worker_processes'))")"
    fi

    log "$sc: warm-up (plain COPY, untimed)"
    async_empty_target "$db"
    timed_psql "$db" "$dir/plain.sql" || die "$sc warm-up failed: $TIMED_ERR"

    local stage=() apply=() sstart=() srun=() ustage=() uapply=() usstart=() usrun=()
    for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
        for key in "${keys[@]}"; do
            status=ok
            case "$key" in
                copy)
                    async_empty_target "$db"
                    if ! timed_psql "$db" "$dir/plain.sql"; then
                        record "$sc" copy "$rep" "$n" "$ELAPSED" failed "$TIMED_ERR"
                        wait_ready "$db" || die "cluster does not answer after COPY failed"
                        continue
                    fi
                    out=$(table_checksum "$db")
                    note=""
                    [ "$out" = "${DS_EXP_FRESH[$ds]}" ] || { status=wrong note="end state (count checksum) '$out', expected '${DS_EXP_FRESH[$ds]}'"; }
                    record "$sc" copy "$rep" "$n" "$ELAPSED" "$status" "$note"
                    ;;
                async)
                    async_empty_target "$db"
                    if ! async_job "$db" none "$dir/fresh.csv.1" "$dir/fresh.csv.2"; then
                        record "$sc" async "$rep" "$n" "$ELAPSED" failed "$TIMED_ERR"
                        wait_ready "$db" || die "cluster does not answer after the async job failed"
                        continue
                    fi
                    async_check "$db" "$ASYNC_ID" "${DS_EXP_FRESH[$ds]}" "$n" 0
                    [ -z "$CHECK_NOTE" ] || status=wrong
                    record "$sc" async "$rep" "$n" "$ELAPSED" "$status" "$CHECK_NOTE"
                    if [ "$status" = ok ]; then
                        async_stamps "$db" "$ASYNC_ID"
                        stage+=("$ASYNC_STAGE_S") apply+=("$ASYNC_APPLY_S") sstart+=("$STAMP_START") srun+=("$STAMP_RUN")
                    fi
                    ;;
                async_upsert)
                    fresh_target "$db"
                    if ! async_job "$db" upsert "$dir/load.csv.1" "$dir/load.csv.2"; then
                        record "$sc" async_upsert "$rep" "$n" "$ELAPSED" failed "$TIMED_ERR"
                        wait_ready "$db" || die "cluster does not answer after the async job failed"
                        continue
                    fi
                    async_check "$db" "$ASYNC_ID" "${DS_EXP_UPSERT[$ds]}" "$h" "$((n - h))"
                    [ -z "$CHECK_NOTE" ] || status=wrong
                    record "$sc" async_upsert "$rep" "$n" "$ELAPSED" "$status" "$CHECK_NOTE"
                    if [ "$status" = ok ]; then
                        async_stamps "$db" "$ASYNC_ID"
                        ustage+=("$ASYNC_STAGE_S") uapply+=("$ASYNC_APPLY_S") usstart+=("$STAMP_START") usrun+=("$STAMP_RUN")
                    fi
                    ;;
            esac
        done
    done
    if [ ${#stage[@]} -gt 0 ]; then
        scenario_note "$sc" "$(printf "async 'none' job, medians of the verified runs: staging (begin + the 2 concurrent COPYs) %.3f s, submit → FINISH seen by the client %.3f s; the job's server stamps: submitted_at → started_at %.3f s, started_at → finished_at %.3f s" "$(median "${stage[@]}")" "$(median "${apply[@]}")" "$(median "${sstart[@]}")" "$(median "${srun[@]}")")"
    fi
    if [ ${#ustage[@]} -gt 0 ]; then
        scenario_note "$sc" "$(printf "async 'upsert' job, medians of the verified runs: staging %.3f s, submit → FINISH seen by the client %.3f s; server stamps: submitted_at → started_at %.3f s, started_at → finished_at %.3f s" "$(median "${ustage[@]}")" "$(median "${uapply[@]}")" "$(median "${usstart[@]}")" "$(median "${usrun[@]}")")"
    fi
    q "$db" "DROP TABLE IF EXISTS target" >/dev/null

    if [[ " ${keys[*]} " == *" async "* ]]; then
        async_latency "$db"
        scenario_note "$sc" "latency: $BENCH_LATENCY_RUNS 1-row jobs (BENCH_LATENCY_RUNS) one after another, each in its own psql session: begin_async_load('lat', 'none'), INSERT 1 row into the staging table, submit, wait; verified: wait returned FINISH, the job is FINISH with rows_inserted = 1, the row is in the table."
    fi
    checkpoint main
}
