# Scenario C: does preloading pg_ingest cost ordinary COPY anything? Two fresh clusters in the same
# run, one with shared_preload_libraries = 'pg_ingest' (+ CREATE EXTENSION), one without
# (pg-tmp --no-preload); identical settings otherwise. Each repetition loads the same N new rows
# into an empty (id bigint primary key, a bigint, b text, c text) table on each, alternating
# with/without so drift cancels, and which side goes first in a pair (ABBA) so an order effect
# does too; both clusters are CHECKPOINTed before every timed load.
scenario C "Ordinary COPY: pg_ingest preloaded vs not" scenario_C \
    "Plain COPY (no ON_CONFLICT) of N new rows (the fresh.csv of scenario A: ids N+1..2N, shuffled) into an empty (id bigint primary key, a bigint, b text, c text) table, on a cluster with pg_ingest preloaded and one without, both running in this run."

scenario_C() {
    local sc=C dir n rep side expect="" got status note out
    dataset_prepare narrow
    dir=$BENCH_WORK/data/narrow
    n=${DS_N[narrow]}
    expect=${DS_EXP_FRESH[narrow]}
    # the main cluster (scenarios A/B) is stopped so only the two compared clusters run
    main_stop
    contender "$sc" ext "COPY, pg_ingest preloaded" "cluster with shared_preload_libraries = 'pg_ingest' and CREATE EXTENSION pg_ingest; \\copy target FROM fresh.csv WITH (FORMAT csv)"
    contender "$sc" noext "COPY, without pg_ingest (reference)" "cluster started with pg-tmp --no-preload; same \\copy" ref
    target "$sc" "ordinary COPY with pg_ingest vs without" ext noext 0.98
    local conf=("${BENCH_CONF_ARGS[@]+"${BENCH_CONF_ARGS[@]}"}")
    if ! cluster_ensure c_ext --durable "${conf[@]+"${conf[@]}"}"; then
        record "$sc" ext - "$n" "" "n/a" "not available: a cluster with pg_ingest preloaded did not start: $(tail -n1 "$BENCH_WORK/cluster-c_ext.err")"
        return 0
    fi
    cluster_ensure c_noext --durable --no-preload "${conf[@]+"${conf[@]}"}" || die "a cluster without pg_ingest did not start"
    if ! out=$(q c_ext "CREATE EXTENSION IF NOT EXISTS pg_ingest" 2>&1); then
        scenario_note "$sc" "CREATE EXTENSION pg_ingest failed on the preloaded cluster (measured with the library preloaded only): $(head -n1 <<<"$out")"
    fi
    record_settings c_ext
    record_settings c_noext
    scenario_note "$sc" "shared_preload_libraries: with = '$(q c_ext 'SHOW shared_preload_libraries')', without = '$(q c_noext 'SHOW shared_preload_libraries')'; both --durable, same pg-tmp settings."
    local create="DROP TABLE IF EXISTS target; CREATE TABLE target (id bigint PRIMARY KEY, a bigint, b text, c text); ALTER TABLE target SET (autovacuum_enabled = off)"
    for side in ext noext; do   # warm-up, untimed
        log "$sc: warm-up on c_$side (untimed)"
        q "c_$side" "$create" >/dev/null
        checkpoint c_ext c_noext
        timed_psql "c_$side" "$dir/plain.sql" || die "$sc warm-up failed on c_$side: $TIMED_ERR"
    done
    local order
    for ((rep = 1; rep <= BENCH_REPEAT_C; rep++)); do
        # ABBA: which cluster goes first alternates, so an order effect (the second load of a
        # pair meeting the first one's write-back) does not land on one side
        order="ext noext"
        ((rep % 2 == 0)) && order="noext ext"
        for side in $order; do
            q "c_$side" "$create" >/dev/null
            checkpoint c_ext c_noext
            status=ok note=""
            if ! timed_psql "c_$side" "$dir/plain.sql"; then
                record "$sc" "$side" "$rep" "$n" "$ELAPSED" failed "$TIMED_ERR"
                continue
            fi
            got=$(table_checksum "c_$side")
            if [ "$got" != "$expect" ]; then
                status=wrong note="end state '$got', expected '$expect'"
            fi
            record "$sc" "$side" "$rep" "$n" "$ELAPSED" "$status" "$note"
        done
    done
    cluster_stop c_ext
    cluster_stop c_noext
}
