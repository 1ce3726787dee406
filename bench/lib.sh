# bench/lib.sh — helpers shared by bench/run and bench/scenarios/*.sh (sourced, not executed).
#
# Vocabulary used by scenarios:
#   cluster_ensure NAME [pg-tmp start options]   start a throwaway cluster once (reused afterwards)
#   cluster_stop NAME                            stop and delete it
#   q NAME SQL                                   run SQL (unaligned, tuples only), print the result
#   qf NAME                                      run the SQL script read from stdin
#   checkpoint NAME...                           CHECKPOINT on each named cluster
#   contender SC KEY "label" "how"               declare a contender of scenario SC (in report order)
#   timed_psql NAME SCRIPT                       run a psql script, time it: sets ELAPSED / TIMED_ERR
#   timed_cmd CMD...                             the same for any command (client programs)
#   wait_ready NAME                              wait until the cluster answers again (after a crash)
#   record SC KEY REP ROWS SECONDS STATUS [NOTE] store one measurement (STATUS ok|wrong|failed|n/a)
#   target SC "label" NUM_KEY DEN_KEY MIN        a ratio rows/s(NUM)/rows/s(DEN) that must be >= MIN
#   scenario_note SC "text"                      a line printed under the scenario in RESULTS.md
#   compare SC "label" NUM_KEY DEN_SC DEN_KEY    a rows/s ratio against another scenario's contender,
#                                                printed as a note under SC (no target)
#   latency_metric SC KEY "label" "how"          declare a latency measured in scenario SC
#   latency SC KEY RUN SECONDS STATUS [NOTE]     store one latency sample (median, p90 in the report)
#   log "text"                                   progress line on stderr, with the elapsed time
# Everything a scenario records lands in $BENCH_WORK/*.tsv; bench/report.py turns it into
# bench/RESULTS.md and a section of bench/history.md.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_TMP="$ROOT/scripts/pg-tmp"
export PATH="$PG_BIN:$PATH"
export PGTZ=UTC PGDATESTYLE='ISO, MDY' PGCLIENTENCODING=UTF8
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
unset PGSERVICE PGPASSFILE 2>/dev/null || true

declare -A CL_DIR=() CL_DSN=()
BENCH_T0=${EPOCHREALTIME/,/.}

log() {
    local now=${EPOCHREALTIME/,/.}
    printf '[bench %7.1fs] %s\n' "$(awk -v a="$now" -v b="$BENCH_T0" 'BEGIN{print a-b}')" "$*" >&2
}

die() { log "FATAL: $*"; exit 1; }

tsv() { # file fields... (tabs/newlines inside fields are flattened to spaces)
    local f=$1 out="" x
    shift
    for x in "$@"; do
        x=${x//$'\t'/ }
        x=${x//$'\n'/ }
        out+="${out:+$'\t'}$x"
    done
    printf '%s\n' "$out" >>"$BENCH_WORK/$f"
}

# ---- clusters -------------------------------------------------------------------------------
cluster_ensure() { # NAME [pg-tmp start options...]
    local name=$1 out
    shift
    [ -n "${CL_DIR[$name]:-}" ] && return 0
    log "starting cluster '$name' (pg-tmp start $*)"
    if ! out=$("$PG_TMP" start "$@" 2>"$BENCH_WORK/cluster-$name.err"); then
        cat "$BENCH_WORK/cluster-$name.err" >&2
        return 1
    fi
    CL_DIR[$name]=$(sed -n 1p <<<"$out")
    CL_DSN[$name]=$(sed -n 2p <<<"$out")
    echo "${CL_DIR[$name]}" >>"$BENCH_WORK/clusters"
}

cluster_stop() {
    local name=$1
    [ -n "${CL_DIR[$name]:-}" ] || return 0
    log "stopping cluster '$name'"
    "$PG_TMP" stop "${CL_DIR[$name]}" || true
    unset "CL_DIR[$name]" "CL_DSN[$name]"
}

cluster_stop_all() {
    local d
    [ -f "$BENCH_WORK/clusters" ] || return 0
    while read -r d; do
        [ -d "$d" ] && "$PG_TMP" stop "$d" >/dev/null 2>&1 || true
    done <"$BENCH_WORK/clusters"
}

psql_cmd() { # NAME -> psql argv prefix in PSQL array
    PSQL=(psql -X -q -v ON_ERROR_STOP=1 -d "${CL_DSN[$1]:?cluster $1 not started}")
}

q() { # NAME SQL
    psql_cmd "$1"
    "${PSQL[@]}" -At -c "$2"
}

qf() { # NAME  (script on stdin)
    psql_cmd "$1"
    "${PSQL[@]}" -At -f -
}

checkpoint() {
    local n
    for n in "$@"; do q "$n" "CHECKPOINT" >/dev/null; done
}

# ---- timing ---------------------------------------------------------------------------------
# Wall-clock time of one psql process running SCRIPT (connection set-up included, a few ms).
timed_psql() { # NAME SCRIPT
    local t0 t1 rc=0
    psql_cmd "$1"
    : >"$BENCH_WORK/timed.err"
    t0=${EPOCHREALTIME/,/.}
    "${PSQL[@]}" -f "$2" >/dev/null 2>"$BENCH_WORK/timed.err" || rc=$?
    t1=${EPOCHREALTIME/,/.}
    ELAPSED=$(awk -v a="$t1" -v b="$t0" 'BEGIN{printf "%.6f", a-b}')
    TIMED_ERR=$(grep -m1 -E 'ERROR|FATAL|error' "$BENCH_WORK/timed.err" || head -n1 "$BENCH_WORK/timed.err")
    return "$rc"
}

# Wall-clock time of any command (e.g. a client-library loader); same contract as timed_psql.
timed_cmd() { # CMD...
    local t0 t1 rc=0
    : >"$BENCH_WORK/timed.err"
    t0=${EPOCHREALTIME/,/.}
    "$@" >/dev/null 2>"$BENCH_WORK/timed.err" || rc=$?
    t1=${EPOCHREALTIME/,/.}
    ELAPSED=$(awk -v a="$t1" -v b="$t0" 'BEGIN{printf "%.6f", a-b}')
    TIMED_ERR=$(grep -m1 -iE 'error|fatal' "$BENCH_WORK/timed.err" || head -n1 "$BENCH_WORK/timed.err")
    return "$rc"
}

# After a failure: wait (up to 120 s) until cluster NAME accepts queries again, e.g. after a
# backend crash made the postmaster restart.
wait_ready() { # NAME
    local i
    for ((i = 0; i < 120; i++)); do
        q "$1" "SELECT 1" >/dev/null 2>&1 && return 0
        sleep 1
    done
    return 1
}

# ---- recording ------------------------------------------------------------------------------
scenario_info() { tsv scenarios.tsv "$@"; }          # SC title description
contender() { tsv contenders.tsv "$1" "$2" "$3" "$4" "${5:-}"; } # SC KEY label how [ref]
target() { tsv targets.tsv "$@"; }                   # SC label NUM DEN MIN
scenario_note() { tsv notes.tsv "$@"; }              # SC text
record() {                                           # SC KEY REP ROWS SECONDS STATUS [NOTE]
    tsv results.tsv "$1" "$2" "$3" "$4" "$5" "$6" "${7:-}"
    local rate=""
    [ "$6" = ok ] || [ "$6" = wrong ] && rate=$(awk -v r="$4" -v s="$5" 'BEGIN{ if (s>0) printf "%.0f rows/s", r/s }')
    log "  $1/$2 rep $3: ${5}s ${rate} [$6]${7:+ $7}"
}
meta() { tsv meta.tsv "$@"; }                        # key value
compare() { tsv compare.tsv "$@"; }                  # SC label NUM_KEY DEN_SC DEN_KEY
latency_metric() { tsv latency_metrics.tsv "$1" "$2" "$3" "${4:-}"; } # SC KEY label how
latency() { tsv latency.tsv "$1" "$2" "$3" "$4" "$5" "${6:-}"; } # SC KEY RUN SECONDS STATUS [NOTE] (not logged)

# ---- the feature probe ----------------------------------------------------------------------
# Sets PROBE_MSG. Returns 0 when COPY ... ON_CONFLICT 'upsert' works on cluster NAME and gives the
# right answer on a tiny case (existing key updated, new key inserted, repeated key: last wins).
probe_upsert() { # NAME
    local name=$1 out
    if ! out=$(q "$name" "CREATE EXTENSION IF NOT EXISTS pg_ingest" 2>&1); then
        PROBE_MSG="CREATE EXTENSION pg_ingest failed: $(head -n1 <<<"$out")"
        return 1
    fi
    q "$name" "DROP TABLE IF EXISTS bench_probe; CREATE TABLE bench_probe (id bigint PRIMARY KEY, v text); INSERT INTO bench_probe VALUES (1, 'old'), (2, 'keep')" >/dev/null
    psql_cmd "$name"
    if ! out=$(printf '1,new\n3,first\n3,last\n' | "${PSQL[@]}" -At \
        -c "COPY bench_probe FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert')" 2>&1); then
        PROBE_MSG="COPY ... ON_CONFLICT 'upsert' failed: $(grep -m1 ERROR <<<"$out" || head -n1 <<<"$out")"
        q "$name" "DROP TABLE IF EXISTS bench_probe" >/dev/null 2>&1 || true
        return 1
    fi
    out=$(q "$name" "SELECT string_agg(id || '=' || v, ' ' ORDER BY id) FROM bench_probe")
    q "$name" "DROP TABLE IF EXISTS bench_probe" >/dev/null 2>&1 || true
    if [ "$out" != "1=new 2=keep 3=last" ]; then
        PROBE_MSG="COPY ... ON_CONFLICT 'upsert' ran but gave a wrong result on the probe: '$out' (expected '1=new 2=keep 3=last')"
        return 1
    fi
    PROBE_MSG="COPY ... ON_CONFLICT 'upsert' works"
    return 0
}

# ---- server settings ------------------------------------------------------------------------
BENCH_SETTINGS=(server_version shared_buffers work_mem maintenance_work_mem temp_buffers
    max_wal_size checkpoint_timeout fsync synchronous_commit full_page_writes wal_level
    wal_compression autovacuum shared_preload_libraries max_connections)

record_settings() { # NAME  -> meta rows "setting:NAME:guc value"
    local name=$1 s v
    for s in "${BENCH_SETTINGS[@]}"; do
        v=$(q "$name" "SHOW $s" 2>/dev/null || echo '?')
        meta "setting:$name:$s" "$v"
    done
}

median() { # numbers... -> median
    printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if (NR==0) exit; if (NR%2) print a[(NR+1)/2]; else printf "%.6f\n", (a[NR/2]+a[NR/2+1])/2 }'
}
