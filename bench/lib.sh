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
#   measure_metric SC KEY "label" UNIT "how"     declare another kind of value (e.g. peak memory)
#   measure SC KEY RUN VALUE STATUS [NOTE]       store one such value (median in the report)
#   bound SC "label" NUM_KEY DEN_KEY MAX         a ratio measure(NUM)/measure(DEN) that must be <= MAX
#   how_measured SC "text"                       a line of the report's "How measured" section
#   bench_build TARGET...                        build CMake targets (client programs), see below
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
measure_metric() { tsv measure_metrics.tsv "$1" "$2" "$3" "$4" "${5:-}"; } # SC KEY label unit how
measure() {                                          # SC KEY RUN VALUE STATUS [NOTE]
    tsv measures.tsv "$1" "$2" "$3" "$4" "$5" "${6:-}"
    log "  $1/$2 run $3: $4 [$5]${6:+ $6}"
}
bound() { tsv bounds.tsv "$@"; }                     # SC label NUM DEN MAX
how_measured() { tsv how.tsv "$@"; }                 # SC text

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
    wal_compression wal_buffers autovacuum shared_preload_libraries max_connections
    ingest.direct_apply ingest.merge_chunk_rows ingest.max_workers)

record_settings() { # NAME  -> meta rows "setting:NAME:guc value"
    local name=$1 s v
    for s in "${BENCH_SETTINGS[@]}"; do
        # ingest.* do not exist on the cluster without pg_ingest
        v=$(q "$name" "SHOW $s" 2>/dev/null || echo 'not defined')
        meta "setting:$name:$s" "$v"
    done
}

median() { # numbers... -> median
    printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if (NR==0) exit; if (NR%2) print a[(NR+1)/2]; else printf "%.6f\n", (a[NR/2]+a[NR/2+1])/2 }'
}

# ---- client programs ------------------------------------------------------------------------
# bench_build TARGET...: builds CMake targets of this source tree (incrementally: a no-op when
# up to date, so a run never measures stale binaries) in BENCH_BUILD_DIR (default $BUILD_DIR,
# else build/) with the bench programs switched on, and sets BENCH_BIN[TARGET] to the program.
# A build directory without a build type gets Release (an unoptimised client would be measured
# otherwise). Returns 1, with the end of the build log on stderr, when the build fails.
BENCH_BUILD_DIR=${BENCH_BUILD_DIR:-${BUILD_DIR:-$ROOT/build}}
case "$BENCH_BUILD_DIR" in /*) ;; *) BENCH_BUILD_DIR=$PWD/$BENCH_BUILD_DIR ;; esac
declare -A BENCH_BIN=()
bench_build() { # TARGET...
    local t todo=() cfg type log=$BENCH_WORK/build.log
    for t in "$@"; do [ -n "${BENCH_BIN[$t]:-}" ] || todo+=("$t"); done
    [ ${#todo[@]} -gt 0 ] || return 0
    command -v cmake >/dev/null || { log "cmake not found (run 'make deps')"; return 1; }
    cfg=(-S "$ROOT" -B "$BENCH_BUILD_DIR" -DPG_INGEST_BUILD_BENCH=ON)
    type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BENCH_BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
    [ -n "$type" ] || cfg+=(-DCMAKE_BUILD_TYPE=Release)
    log "building ${todo[*]} in $BENCH_BUILD_DIR (log: $log)"
    if ! cmake "${cfg[@]}" >>"$log" 2>&1 ||
        ! cmake --build "$BENCH_BUILD_DIR" -j "$(nproc)" --target "${todo[@]}" >>"$log" 2>&1; then
        tail -n 20 "$log" >&2
        return 1
    fi
    type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BENCH_BUILD_DIR/CMakeCache.txt")
    for t in "${todo[@]}"; do
        case "$t" in
            client_bench) BENCH_BIN[$t]=$BENCH_BUILD_DIR/bench/client/client_bench ;;
            pg_ingest_cli) BENCH_BIN[$t]=$BENCH_BUILD_DIR/cli/pg_ingest ;;
            *) BENCH_BIN[$t]=$(find "$BENCH_BUILD_DIR" -type f -perm -u+x -name "$t" -print -quit) ;;
        esac
        [ -x "${BENCH_BIN[$t]}" ] || { log "build of $t produced no program"; unset "BENCH_BIN[$t]"; return 1; }
        meta "program:$t" "${BENCH_BIN[$t]} ($type build of git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    done
}
