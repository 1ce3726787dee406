# bench/upsert.sh — the generic "upsert a load into a pre-filled table" scenario (sourced).
#
# A dataset is bench/datasets/DS.sql: it creates `base` (N rows, ids 1..N, a one-column integer
# primary key that is the first column) and `load_src` (LIKE base, plus rn = the load's row
# order; ids N/2+1 .. N/2+N, so half the keys exist). From it, untimed, we write:
#   load.csv    the load, in rn order                       (upsert contenders)
#   fresh.csv   the same rows with ids shifted to N+1..2N    (reference: plain COPY, all new keys)
#   multi.sql   the load as multi-row INSERT ... ON CONFLICT DO UPDATE, BENCH_BATCH rows each
#   perrow.sql  PREPARE + one EXECUTE per row for the first BENCH_PERROW_ROWS rows of the load
#   new.csv     the load's rows whose keys are new, in rn order, and table `floor_existing`
#               (the rows whose keys exist): the floor contender, a lower bound rather than a
#               loader (COPY of the new half + UPDATE ... FROM of the existing half, whose rows
#               are already in a table: neither parsed nor sent)
# and the expected end states (row count + order-independent checksum of the table's row texts).

main_cluster() {
    cluster_ensure main --durable "${BENCH_CONF_ARGS[@]+"${BENCH_CONF_ARGS[@]}"}"
}

# Connection name for database DB on cluster main (libpq: the last dbname= wins).
main_db() { # DB
    main_cluster
    CL_DSN[$1]="${CL_DSN[main]} dbname=$1"
}

# Stop the main cluster (its databases and cached dataset state go with it; files stay).
main_stop() {
    [ -n "${CL_DIR[main]:-}" ] || return 0
    cluster_stop main
    local k
    for k in "${!DS_N[@]}"; do unset "DS_N[$k]"; done
    UPSERT_PROBED=""
}

declare -A DS_COLS=() DS_KEY=() DS_SET=() DS_N=() DS_SHIFT=() DS_P=() DS_EXP_UPSERT=() DS_EXP_PLAIN=() DS_EXP_FRESH=() DS_EXP_PERROW=() DS_NCOL=()

dataset_prepare() { # DS
    local ds=$1 dir=$BENCH_WORK/data/$1 db=ds_$1
    local n=$BENCH_ROWS h kshift p cols key setl fmt types params fresh_sel nonkey t0
    [ -n "${DS_N[$ds]:-}" ] && return 0
    [ -f "$BENCH_DIR/datasets/$ds.sql" ] || die "no dataset bench/datasets/$ds.sql"
    t0=${EPOCHREALTIME/,/.}
    mkdir -p "$dir"
    main_db "$db"
    q main "CREATE DATABASE $db" >/dev/null
    # COPY ... ON_CONFLICT needs the extension in the database it runs in; if this fails the
    # upsert contender fails and says why
    q "$db" "CREATE EXTENSION IF NOT EXISTS pg_ingest" >/dev/null 2>&1 || true
    q "$db" "CREATE EXTENSION IF NOT EXISTS amcheck" >/dev/null || die "CREATE EXTENSION amcheck failed"
    h=$((n / 2))
    kshift=$((n - h))
    p=$((BENCH_PERROW_ROWS < n ? BENCH_PERROW_ROWS : n))
    log "dataset $ds: generating base ($n rows) and load ($n rows, keys $((h + 1))..$((h + n)))"
    psql_cmd "$db"
    "${PSQL[@]}" -v N="$n" -v H="$h" -f "$BENCH_DIR/datasets/$ds.sql" >/dev/null
    q "$db" "VACUUM ANALYZE base" >/dev/null
    q "$db" "VACUUM ANALYZE load_src" >/dev/null

    local attrs="FROM pg_attribute WHERE attrelid = 'base'::regclass AND attnum > 0 AND NOT attisdropped"
    key=$(q "$db" "SELECT string_agg(quote_ident(a.attname), ',') FROM pg_index i JOIN pg_attribute a
                   ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                   WHERE i.indrelid = 'base'::regclass AND i.indisprimary")
    [ -n "$key" ] && [[ $key != *,* ]] || die "dataset $ds: base needs a one-column primary key (got '$key')"
    cols=$(q "$db" "SELECT string_agg(quote_ident(attname), ',' ORDER BY attnum) $attrs")
    [ "${cols%%,*}" = "$key" ] || die "dataset $ds: the key must be the first column"
    nonkey=${cols#*,}
    setl=$(q "$db" "SELECT string_agg(format('%1\$I = EXCLUDED.%1\$I', attname), ', ' ORDER BY attnum) $attrs AND attnum > 1")
    # numbers as bare literals (as a connector would send them), everything else quoted
    fmt=$(q "$db" "SELECT string_agg(CASE WHEN atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype,
                   'numeric'::regtype, 'float4'::regtype, 'float8'::regtype) THEN '%s' ELSE '%L' END, ',' ORDER BY attnum) $attrs")
    types=$(q "$db" "SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum) $attrs")
    params=$(q "$db" "SELECT string_agg('\$' || i, ', ') FROM generate_series(1, (SELECT count(*) $attrs)::int) i")
    DS_NCOL[$ds]=$(q "$db" "SELECT count(*) $attrs")
    fresh_sel="$key + $kshift, $nonkey"

    log "dataset $ds: writing load.csv, fresh.csv, multi.sql, perrow.sql"
    psql_cmd "$db"
    "${PSQL[@]}" -c "COPY (SELECT $cols FROM load_src ORDER BY rn) TO STDOUT (FORMAT csv)" >"$dir/load.csv"
    "${PSQL[@]}" -c "COPY (SELECT $fresh_sel FROM load_src ORDER BY rn) TO STDOUT (FORMAT csv)" >"$dir/fresh.csv"
    "${PSQL[@]}" -c "COPY (SELECT $cols FROM load_src l WHERE NOT EXISTS (SELECT 1 FROM base b WHERE b.$key = l.$key) ORDER BY rn) TO STDOUT (FORMAT csv)" >"$dir/new.csv"
    q "$db" "CREATE TABLE floor_existing AS SELECT $cols FROM load_src l WHERE EXISTS (SELECT 1 FROM base b WHERE b.$key = l.$key) ORDER BY rn" >/dev/null
    q "$db" "VACUUM ANALYZE floor_existing" >/dev/null
    # One transaction, as every other contender: autocommitted statements would each wait for
    # a WAL flush.
    {
        echo "BEGIN;"
        "${PSQL[@]}" -At -c "SELECT 'INSERT INTO target ($cols) VALUES '
                || string_agg(format('($fmt)', $cols), ',' ORDER BY rn)
                || ' ON CONFLICT ($key) DO UPDATE SET $setl;'
            FROM load_src GROUP BY (rn - 1) / $BENCH_BATCH ORDER BY (rn - 1) / $BENCH_BATCH"
        echo "COMMIT;"
    } >"$dir/multi.sql"
    {
        echo "PREPARE ins($types) AS INSERT INTO target ($cols) VALUES ($params) ON CONFLICT ($key) DO UPDATE SET $setl;"
        echo "BEGIN;"
        "${PSQL[@]}" -At -c "SELECT format('EXECUTE ins($fmt);', $cols) FROM load_src WHERE rn <= $p ORDER BY rn"
        echo "COMMIT;"
    } >"$dir/perrow.sql"
    cat >"$dir/plain.sql" <<EOF
\\copy target FROM '$dir/fresh.csv' WITH (FORMAT csv)
EOF
    cat >"$dir/upsert.sql" <<EOF
\\copy target FROM '$dir/load.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert')
EOF
    cat >"$dir/upsert_stmt.sql" <<EOF
SET ingest.direct_apply = off;
\\copy target FROM '$dir/load.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert')
EOF
    cat >"$dir/upsert_serial.sql" <<EOF
SET ingest.copy_parse_workers = 0;
\\copy target FROM '$dir/load.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert')
EOF
    # The same three into a hash-partitioned target (fresh_target with partitions)
    cp "$dir/plain.sql" "$dir/p_plain.sql"
    cp "$dir/upsert.sql" "$dir/p_upsert.sql"
    cp "$dir/upsert_stmt.sql" "$dir/p_upsert_stmt.sql"
    cat >"$dir/floor.sql" <<EOF
BEGIN;
\\copy target FROM '$dir/new.csv' WITH (FORMAT csv)
UPDATE target t SET ${setl//EXCLUDED./s.} FROM floor_existing s WHERE t.$key = s.$key;
COMMIT;
EOF
    cat >"$dir/staged.sql" <<EOF
SET temp_buffers = '$BENCH_TEMP_BUFFERS';
BEGIN;
CREATE TEMP TABLE stage (LIKE target INCLUDING DEFAULTS) ON COMMIT DROP;
\\copy stage FROM '$dir/load.csv' WITH (FORMAT csv)
INSERT INTO target ($cols) SELECT $cols FROM stage ORDER BY $key ON CONFLICT ($key) DO UPDATE SET $setl;
COMMIT;
EOF
    local sum="count(*) || ' ' || coalesce(sum(hashtextextended(t::text, 0)), 0)"
    DS_EXP_UPSERT[$ds]=$(q "$db" "SELECT $sum FROM (SELECT $cols FROM base b WHERE NOT EXISTS
        (SELECT 1 FROM load_src l WHERE l.$key = b.$key) UNION ALL SELECT $cols FROM load_src) t")
    # the per-row contender loads only the first $p rows of the load: its own expected end state
    DS_EXP_PERROW[$ds]=$(q "$db" "SELECT $sum FROM (SELECT $cols FROM base b WHERE NOT EXISTS
        (SELECT 1 FROM load_src l WHERE l.$key = b.$key AND l.rn <= $p)
        UNION ALL SELECT $cols FROM load_src WHERE rn <= $p) t")
    DS_EXP_FRESH[$ds]=$(q "$db" "SELECT $sum FROM (SELECT $fresh_sel FROM load_src) t")
    DS_EXP_PLAIN[$ds]=$(q "$db" "SELECT $sum FROM (SELECT $cols FROM base UNION ALL SELECT $fresh_sel FROM load_src) t")
    DS_COLS[$ds]=$cols DS_KEY[$ds]=$key DS_SET[$ds]=$setl DS_N[$ds]=$n DS_SHIFT[$ds]=$kshift DS_P[$ds]=$p
    local size
    size=$(du -sh "$dir" | cut -f1)
    log "dataset $ds ready in $(awk -v a="${EPOCHREALTIME/,/.}" -v b="$t0" 'BEGIN{printf "%.0f", a-b}')s ($size of files; load.csv $(du -h "$dir/load.csv" | cut -f1))"
    meta "dataset:$ds" "$n base rows, $n load rows ($((n - h)) existing keys, $h new), ${DS_NCOL[$ds]} columns, load.csv $(du -h "$dir/load.csv" | cut -f1)"
}

table_checksum() { # DB
    q "$1" "SELECT count(*) || ' ' || coalesce(sum(hashtextextended(t::text, 0)), 0) FROM target t"
}

# The checksum reads the heap only; the direct apply path maintains the key's index itself, so
# every timed run's primary key is checked too (amcheck: every heap row has its index entry,
# and the btree is well formed), untimed.
index_checked() { # DB
    # the table's, or a partitioned table's partitions' (pg_partition_tree() lists nothing for a
    # table that is neither partitioned nor a partition); none found is an error, not a pass
    local checked
    checked=$(q "$1" "SELECT count(bt_index_check(i.indexrelid, true)) FROM pg_index i
        WHERE (i.indrelid = 'target'::regclass
               OR i.indrelid IN (SELECT relid FROM pg_partition_tree('target') WHERE isleaf))
          AND i.indisprimary AND i.indrelid <> ALL (SELECT relid FROM pg_partition_tree('target') WHERE NOT isleaf)" 2>&1)
    INDEX_ERR=""
    [[ $checked =~ ^[1-9][0-9]*$ ]] || INDEX_ERR=${checked:-no primary key index found to check}
    [ -z "$INDEX_ERR" ]
}

# A fresh copy of the pre-filled table, untimed, then CHECKPOINT so no checkpoint I/O is left over.
# With PARTS > 0: partitioned by hash of the key into PARTS partitions.
BENCH_PARTITIONS=${BENCH_PARTITIONS:-8}
fresh_target() { # DB [PARTS]
    local parts=${2:-0} key i
    if [ "$parts" -gt 0 ]; then
        key=$(q "$1" "SELECT quote_ident(a.attname) FROM pg_index i JOIN pg_attribute a
                      ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                      WHERE i.indrelid = 'base'::regclass AND i.indisprimary")
        {
            echo "DROP TABLE IF EXISTS target;"
            echo "CREATE TABLE target (LIKE base INCLUDING ALL) PARTITION BY HASH ($key);"
            for ((i = 0; i < parts; i++)); do
                echo "CREATE TABLE target_$i PARTITION OF target FOR VALUES WITH (MODULUS $parts, REMAINDER $i) WITH (autovacuum_enabled = off);"
            done
            echo "INSERT INTO target SELECT * FROM base;"
            echo "VACUUM ANALYZE target;"
            echo "CHECKPOINT;"
        } | qf "$1" >/dev/null
        return
    fi
    qf "$1" >/dev/null <<'EOF'
DROP TABLE IF EXISTS target;
CREATE TABLE target (LIKE base INCLUDING ALL);
ALTER TABLE target SET (autovacuum_enabled = off);
INSERT INTO target SELECT * FROM base;
VACUUM ANALYZE target;
CHECKPOINT;
EOF
}

# An empty copy of base (same columns and primary key), untimed, then CHECKPOINT.
empty_target() { # DB
    qf "$1" >/dev/null <<'EOF'
DROP TABLE IF EXISTS target;
CREATE TABLE target (LIKE base INCLUDING ALL);
ALTER TABLE target SET (autovacuum_enabled = off);
CHECKPOINT;
EOF
}

UPSERT_PROBED="" UPSERT_OK=1 UPSERT_MSG=""
upsert_available() {
    if [ -z "$UPSERT_PROBED" ]; then
        main_cluster
        UPSERT_PROBED=1
        if probe_upsert main; then UPSERT_OK=0; else UPSERT_OK=1; fi
        UPSERT_MSG=$PROBE_MSG
        log "probe: $UPSERT_MSG"
        meta "probe" "$UPSERT_MSG"
    fi
    return "$UPSERT_OK"
}

# One timed run of contender KEY (script DIR/KEY.sql) on a fresh pre-filled table, then the check.
upsert_one() { # SC DS KEY REP
    local sc=$1 ds=$2 key=$3 rep=$4 db=ds_$2 dir=$BENCH_WORK/data/$2 rows expect got status=ok note=""
    rows=${DS_N[$ds]}
    expect=${DS_EXP_UPSERT[$ds]}
    case "$key" in
        plain | p_plain) expect=${DS_EXP_PLAIN[$ds]} ;;
        perrow) rows=${DS_P[$ds]} expect=${DS_EXP_PERROW[$ds]} ;;
    esac
    if [[ $key == p_* ]]; then fresh_target "$db" "$BENCH_PARTITIONS"; else fresh_target "$db"; fi
    if ! timed_psql "$db" "$dir/$key.sql"; then
        record "$sc" "$key" "$rep" "$rows" "$ELAPSED" failed "$TIMED_ERR"
        wait_ready "$db" || die "cluster does not answer after $key failed"
        return 0
    fi
    got=$(table_checksum "$db")
    if [ "$got" != "$expect" ]; then
        status=wrong
        note="end state (count checksum) '$got', expected '$expect'"
    elif ! index_checked "$db"; then
        status=wrong
        note="the primary key index does not match the table: $INDEX_ERR"
    fi
    record "$sc" "$key" "$rep" "$rows" "$ELAPSED" "$status" "$note"
}

# The whole scenario: contenders 1-5, BENCH_REPEAT rounds, each round runs every contender once.
run_upsert_scenario() { # SC DS
    local sc=$1 ds=$2 rep key n p
    dataset_prepare "$ds"
    n=${DS_N[$ds]} p=${DS_P[$ds]}
    contender "$sc" plain "plain COPY (reference)" \
        "\\copy of $n NEW rows (ids N+1..2N, same payloads and order as the load) into the pre-filled table" ref
    contender "$sc" upsert "COPY ... ON_CONFLICT 'upsert'" \
        "\\copy target FROM load.csv WITH (FORMAT csv, ON_CONFLICT 'upsert')"
    contender "$sc" upsert_stmt "COPY ... ON_CONFLICT 'upsert', statement path" \
        "as above with SET ingest.direct_apply = off: one INSERT ... ON CONFLICT per merge chunk instead of the direct apply path (the default for this table)"
    contender "$sc" upsert_serial "COPY ... ON_CONFLICT 'upsert', no parse workers" \
        "as COPY ... ON_CONFLICT 'upsert' with SET ingest.copy_parse_workers = 0: the session converts every field itself instead of with a parallel worker (the default: 1 worker, from the 10000th row on)"
    contender "$sc" staged "temp table + INSERT ... ON CONFLICT" \
        "one transaction: CREATE TEMP TABLE (temp_buffers=$BENCH_TEMP_BUFFERS), \\copy into it, INSERT INTO target SELECT ... ORDER BY key ON CONFLICT DO UPDATE (in key order, as COPY ON CONFLICT applies its rows)"
    contender "$sc" multi "multi-row INSERT ... ON CONFLICT" \
        "$BENCH_BATCH-row INSERT ... VALUES ... ON CONFLICT DO UPDATE statements, psql -f, all in one transaction (BEGIN ... COMMIT)"
    contender "$sc" perrow "per-row prepared INSERT ... ON CONFLICT" \
        "psql: PREPARE once, then one EXECUTE per row (one round trip each), one transaction; first $p rows of the load$([ "$p" -lt "$n" ] && echo " (checked against base + those $p rows)")"
    target "$sc" "upsert vs plain COPY" upsert plain 0.8
    target "$sc" "upsert vs temp table + INSERT ON CONFLICT" upsert staged 1.5
    target "$sc" "upsert vs multi-row INSERT ON CONFLICT" upsert multi 5
    contender "$sc" floor "floor: COPY of the new half + UPDATE of the existing half" \
        "a lower bound, not a loader: one transaction of \\copy target FROM new.csv (the load's $((n - ${DS_SHIFT[$ds]})) new-key rows) and UPDATE target SET (every non-key column) FROM floor_existing WHERE keys match (the ${DS_SHIFT[$ds]} existing-key rows, already in a table: not parsed, not sent). What applying this load costs the server with the cheapest statement for each half, without input parsing or concurrency safety"
    target "$sc" "upsert vs per-row prepared INSERT ON CONFLICT" upsert perrow ""
    target "$sc" "upsert (direct apply) vs the same through the statement path" upsert upsert_stmt ""
    target "$sc" "upsert (1 parse worker) vs the same with the session converting every field" upsert upsert_serial ""
    target "$sc" "floor (new-half COPY + existing-half UPDATE) vs plain COPY: the best ratio an upsert built from these statements could reach" floor plain ""
    contender "$sc" p_plain "partitioned: plain COPY" \
        "as plain COPY, into a copy of the pre-filled table partitioned by hash of the key into $BENCH_PARTITIONS partitions (BENCH_PARTITIONS)"
    contender "$sc" p_upsert "partitioned: COPY ... ON_CONFLICT 'upsert'" \
        "as COPY ... ON_CONFLICT 'upsert', into the partitioned table (direct apply path, rows routed to their partitions)"
    contender "$sc" p_upsert_stmt "partitioned: COPY ... ON_CONFLICT 'upsert', statement path" \
        "as above with SET ingest.direct_apply = off"
    target "$sc" "partitioned: upsert vs plain COPY into the same partitioned table" p_upsert p_plain ""
    target "$sc" "partitioned: upsert (direct apply) vs the same through the statement path" p_upsert p_upsert_stmt ""

    local keys=(plain upsert upsert_stmt upsert_serial staged multi perrow floor p_plain p_upsert p_upsert_stmt)
    if ! upsert_available; then
        record "$sc" upsert - "$n" "" "n/a" "not available: $UPSERT_MSG"
        record "$sc" upsert_stmt - "$n" "" "n/a" "not available: $UPSERT_MSG"
        record "$sc" upsert_serial - "$n" "" "n/a" "not available: $UPSERT_MSG"
        record "$sc" p_upsert - "$n" "" "n/a" "not available: $UPSERT_MSG"
        record "$sc" p_upsert_stmt - "$n" "" "n/a" "not available: $UPSERT_MSG"
        keys=(plain staged multi perrow floor p_plain)
    fi
    # warm-up (untimed): WAL segments get created, caches filled, before the first measurement
    log "$sc: warm-up (plain COPY, untimed)"
    fresh_target "ds_$ds"
    timed_psql "ds_$ds" "$BENCH_WORK/data/$ds/plain.sql" || die "$sc warm-up failed: $TIMED_ERR"
    # Each round starts one contender further on (round 1 at the first, round 2 at the second,
    # ...): a contender is not always measured right after the same one, and a slow drift of
    # the machine does not always fall on the same contenders.
    local nkeys=${#keys[@]} i
    for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
        for ((i = 0; i < nkeys; i++)); do
            key=${keys[$(((i + rep - 1) % nkeys))]}
            if [ "$key" = perrow ] && [ "$rep" -gt "$BENCH_PERROW_REPEAT" ]; then continue; fi
            upsert_one "$sc" "$ds" "$key" "$rep"
        done
    done
    q "ds_$ds" "DROP TABLE IF EXISTS target" >/dev/null
    checkpoint main
}
