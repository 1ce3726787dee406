-- The direct apply path finds existing rows in batches of conflict index entries, each read
-- by one descent (one key column, ascending btree), and with one probe per row otherwise.
-- Either way the outcome must be the statement path's: the same table and the same counts,
-- here on tables with dead row versions, sparse and dense keys, a text key under an ICU
-- collation (where the server has one), a descending index and NULL keys. Every table is
-- built twice by the same statements (dead versions included), loaded once with
-- ingest.direct_apply on and once off, then compared. (TAP 012 checks that the direct loads
-- are not redone by statement.)
CREATE EXTENSION IF NOT EXISTS pg_ingest;
SET ingest.merge_chunk_rows = 1000;

CREATE FUNCTION dp_make(t text, kind text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF kind = 'bigint' THEN
        -- every 7th key; versions left dead by two updates; some keys deleted
        EXECUTE format('CREATE TABLE %I (k bigint PRIMARY KEY, v text, w int)', t);
        EXECUTE format('INSERT INTO %I SELECT g * 7, ''init'', 0 FROM generate_series(0, 30000) g', t);
        EXECUTE format('UPDATE %I SET w = 1 WHERE k %% 3 = 0', t);
        EXECUTE format('UPDATE %I SET w = 2 WHERE k %% 5 = 0', t);
        EXECUTE format('DELETE FROM %I WHERE k %% 11 = 0', t);
    ELSIF kind = 'text' THEN
        EXECUTE format('CREATE TABLE %I (k text COLLATE %I UNIQUE, v text)', t,
                       CASE WHEN EXISTS (SELECT FROM pg_collation WHERE collname = 'und-x-icu')
                            THEN 'und-x-icu' ELSE 'default' END);
        EXECUTE format('INSERT INTO %I SELECT ''Key-'' || g * 3, ''init'' FROM generate_series(0, 20000) g', t);
        EXECUTE format('UPDATE %I SET v = ''u'' WHERE length(k) %% 2 = 0', t);
    ELSE
        EXECUTE format('CREATE TABLE %I (k int, v text)', t);
        EXECUTE format('CREATE UNIQUE INDEX ON %I (k DESC)', t);
        EXECUTE format('INSERT INTO %I SELECT g * 2, ''init'' FROM generate_series(0, 5000) g', t);
    END IF;
END $$;

CREATE FUNCTION dp_differences(a regclass, b regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((TABLE %s EXCEPT ALL TABLE %s) UNION ALL (TABLE %s EXCEPT ALL TABLE %s)) d',
                   a, b, b, a) INTO n;
    RETURN n;
END $$;

-- Loads in random order: keys spread thinly over the table (the scan descends again), a dense
-- run, keys of deleted rows, keys past the last row.
COPY (SELECT k, 'load ' || k, k % 97 FROM (
        SELECT generate_series(0, 250000, 1000) AS k
        UNION SELECT generate_series(70000, 75000)
        UNION SELECT generate_series(300000, 300050)) s ORDER BY md5(k::text))
    TO '/tmp/pg_ingest_regress_dp_bigint.csv' (FORMAT csv);
COPY (SELECT k, 'load ' || k FROM (
        SELECT 'Key-' || generate_series(0, 60000, 17) AS k
        UNION SELECT 'key-' || generate_series(0, 1000)
        UNION SELECT 'KEY-' || generate_series(0, 300)) s ORDER BY md5(k))
    TO '/tmp/pg_ingest_regress_dp_text.csv' (FORMAT csv);
COPY (SELECT CASE WHEN g % 500 = 0 THEN NULL ELSE g END, 'load ' || g
        FROM generate_series(3000, 12000) g ORDER BY md5(g::text))
    TO '/tmp/pg_ingest_regress_dp_desc.csv' (FORMAT csv);

SELECT dp_make('dp_bigint_upsert_on', 'bigint'), dp_make('dp_bigint_upsert_off', 'bigint'),
       dp_make('dp_bigint_ignore_on', 'bigint'), dp_make('dp_bigint_ignore_off', 'bigint'),
       dp_make('dp_text_upsert_on', 'text'), dp_make('dp_text_upsert_off', 'text'),
       dp_make('dp_text_ignore_on', 'text'), dp_make('dp_text_ignore_off', 'text'),
       dp_make('dp_desc_upsert_on', 'desc'), dp_make('dp_desc_upsert_off', 'desc');

SET ingest.direct_apply = on;
COPY dp_bigint_upsert_on FROM '/tmp/pg_ingest_regress_dp_bigint.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');
SELECT 'bigint upsert, direct' AS load, * FROM ingest.last_copy_stats();
COPY dp_bigint_ignore_on FROM '/tmp/pg_ingest_regress_dp_bigint.csv' WITH (FORMAT csv, ON_CONFLICT 'ignore');
SELECT 'bigint ignore, direct' AS load, * FROM ingest.last_copy_stats();
COPY dp_text_upsert_on FROM '/tmp/pg_ingest_regress_dp_text.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');
SELECT 'text upsert, direct' AS load, * FROM ingest.last_copy_stats();
COPY dp_text_ignore_on FROM '/tmp/pg_ingest_regress_dp_text.csv' WITH (FORMAT csv, ON_CONFLICT 'ignore');
SELECT 'text ignore, direct' AS load, * FROM ingest.last_copy_stats();
COPY dp_desc_upsert_on FROM '/tmp/pg_ingest_regress_dp_desc.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');
SELECT 'desc upsert, direct' AS load, * FROM ingest.last_copy_stats();

SET ingest.direct_apply = off;
COPY dp_bigint_upsert_off FROM '/tmp/pg_ingest_regress_dp_bigint.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');
SELECT 'bigint upsert, statement' AS load, * FROM ingest.last_copy_stats();
COPY dp_bigint_ignore_off FROM '/tmp/pg_ingest_regress_dp_bigint.csv' WITH (FORMAT csv, ON_CONFLICT 'ignore');
SELECT 'bigint ignore, statement' AS load, * FROM ingest.last_copy_stats();
COPY dp_text_upsert_off FROM '/tmp/pg_ingest_regress_dp_text.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');
SELECT 'text upsert, statement' AS load, * FROM ingest.last_copy_stats();
COPY dp_text_ignore_off FROM '/tmp/pg_ingest_regress_dp_text.csv' WITH (FORMAT csv, ON_CONFLICT 'ignore');
SELECT 'text ignore, statement' AS load, * FROM ingest.last_copy_stats();
COPY dp_desc_upsert_off FROM '/tmp/pg_ingest_regress_dp_desc.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');
SELECT 'desc upsert, statement' AS load, * FROM ingest.last_copy_stats();
RESET ingest.direct_apply;

SELECT t, dp_differences(format('%s_on', t)::regclass, format('%s_off', t)::regclass) AS differences,
       (SELECT count(*) FROM pg_class WHERE relname = t || '_on') AS built
FROM unnest(ARRAY['dp_bigint_upsert', 'dp_bigint_ignore', 'dp_text_upsert', 'dp_text_ignore',
                  'dp_desc_upsert']) t;

DROP TABLE dp_bigint_upsert_on, dp_bigint_upsert_off, dp_bigint_ignore_on, dp_bigint_ignore_off,
    dp_text_upsert_on, dp_text_upsert_off, dp_text_ignore_on, dp_text_ignore_off,
    dp_desc_upsert_on, dp_desc_upsert_off;
DROP FUNCTION dp_make(text, text), dp_differences(regclass, regclass);
RESET ingest.merge_chunk_rows;

-- An empty upsert into a published table without a replica identity: nothing to update, so
-- COPY 0 as the statement gives (the direct path's set-up is not built for no rows); with a
-- row, both paths refuse the update (55000).
SET client_min_messages = error;  -- the publication's wal_level warning
CREATE TABLE dp_pub (k int NOT NULL UNIQUE, v int);
CREATE PUBLICATION dp_pub_p FOR TABLE dp_pub;
RESET client_min_messages;
COPY dp_pub FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
\.
COPY dp_pub FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert') WHERE k > 5;
1,1
\.
SELECT * FROM ingest.last_copy_stats();
COPY dp_pub FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,1
\.
SET ingest.direct_apply = off;
COPY dp_pub FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,1
\.
RESET ingest.direct_apply;
-- as INSERT ... ON CONFLICT DO UPDATE is
INSERT INTO dp_pub VALUES (1, 1) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v;
SELECT count(*) FROM dp_pub;
DROP PUBLICATION dp_pub_p;
DROP TABLE dp_pub;

-- A row that fails with ON_ERROR 'stop': the error names its input line, as plain COPY's do
-- (the line of the key's winning row; rows are applied in key order). The direct path finds
-- the line, and the statement that redoes the chunk names it when it fails the same way,
-- also for a partitioned table (the row routed to its partition); the statement path alone
-- (direct_apply off) names no line.
\set VERBOSITY default
CREATE TABLE dp_line (k int PRIMARY KEY, v int CHECK (v > 0), u int UNIQUE);
INSERT INTO dp_line VALUES (1, 1, 1);
COPY dp_line (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
3,3
1,-1
2,2
\.
COPY dp_line FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
5,5,5
4,4,4
6,6,5
\.
COPY dp_line FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore');
7,7,7
8,8,1
\.
SET ingest.direct_apply = off;
COPY dp_line (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
3,3
1,-1
\.
RESET ingest.direct_apply;
CREATE TABLE dp_line_p (k int PRIMARY KEY, v int NOT NULL) PARTITION BY RANGE (k);
CREATE TABLE dp_line_p1 PARTITION OF dp_line_p FOR VALUES FROM (0) TO (100);
COPY dp_line_p FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,1
2,
\.
SELECT * FROM dp_line ORDER BY k;
-- ingest.merge() reads its source table in no set order, so its errors name the merge and no
-- row number: directly, through the statement path, and for a superseded row
CREATE TABLE dp_line_src (k int, v int);
INSERT INTO dp_line_src VALUES (3, 3), (1, -1);
SELECT * FROM ingest.merge('dp_line_src', 'dp_line', 'upsert');
SET ingest.direct_apply = off;
SELECT * FROM ingest.merge('dp_line_src', 'dp_line', 'upsert');
RESET ingest.direct_apply;
TRUNCATE dp_line_src;
INSERT INTO dp_line_src VALUES (20, -1), (20, 2);
SELECT * FROM ingest.merge('dp_line_src', 'dp_line', 'upsert');
SELECT * FROM dp_line ORDER BY k;
\set VERBOSITY terse
DROP TABLE dp_line, dp_line_p, dp_line_src;

-- A partition loaded directly (not through its parent) is applied directly too. Its rows must
-- satisfy its partition constraint, as INSERT ... ON CONFLICT checks them: the proposed row
-- before the conflict is looked for, and the updated row (here an update of one column of a
-- two-column range key, allowed by a unique index of the partition alone) before it is written.
-- Each load runs on both paths and as INSERT ... ON CONFLICT; the errors must be the same.
\set VERBOSITY default
CREATE TABLE dp_leaf (k int, d int, v text, PRIMARY KEY (k, d)) PARTITION BY RANGE (d);
CREATE TABLE dp_leaf_1 PARTITION OF dp_leaf FOR VALUES FROM (0) TO (10);
CREATE TABLE dp_leaf_2 PARTITION OF dp_leaf FOR VALUES FROM (10) TO (20);
CREATE TABLE dp_leaf_on (LIKE dp_leaf_1 INCLUDING ALL);
INSERT INTO dp_leaf SELECT g, g % 20, 'old' FROM generate_series(1, 400) g;
INSERT INTO dp_leaf_on SELECT * FROM dp_leaf_1;
SET ingest.direct_apply = off;
COPY dp_leaf_1 FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
3,3,new 3
4,4,new 4
1000,5,new 1000
21,1,new 21
21,1,new 21 again
\.
SELECT 'leaf, statement' AS load, * FROM ingest.last_copy_stats();
RESET ingest.direct_apply;
ALTER TABLE dp_leaf DETACH PARTITION dp_leaf_1;
ALTER TABLE dp_leaf ATTACH PARTITION dp_leaf_on FOR VALUES FROM (0) TO (10);
COPY dp_leaf_on FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
3,3,new 3
4,4,new 4
1000,5,new 1000
21,1,new 21
21,1,new 21 again
\.
SELECT 'leaf, direct' AS load, * FROM ingest.last_copy_stats();
SELECT (SELECT count(*) FROM ((TABLE dp_leaf_1 EXCEPT ALL TABLE dp_leaf_on)
                              UNION ALL (TABLE dp_leaf_on EXCEPT ALL TABLE dp_leaf_1)) d) AS differences,
       count(*) AS rows FROM dp_leaf_on;
-- a proposed row outside the partition: nothing loaded, the line named
COPY dp_leaf_on FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
5,5,in range
6,16,out of range
\.
SET ingest.direct_apply = off;
COPY dp_leaf_on FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore');
5,5,in range
6,16,out of range
\.
RESET ingest.direct_apply;
INSERT INTO dp_leaf_on VALUES (6, 16, 'out of range') ON CONFLICT (k, d) DO NOTHING;
-- an updated row outside the partition
CREATE TABLE dp_leaf2 (a int, b int, k int, v text) PARTITION BY RANGE (a, b);
CREATE TABLE dp_leaf2_1 PARTITION OF dp_leaf2 FOR VALUES FROM (1, 5) TO (2, 5);
CREATE UNIQUE INDEX ON dp_leaf2_1 (k);
INSERT INTO dp_leaf2 VALUES (2, 3, 1, 'old');
COPY dp_leaf2_1 (k, a, b, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'a');
1,1,7,new
\.
SET ingest.direct_apply = off;
COPY dp_leaf2_1 (k, a, b, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'a');
1,1,7,new
\.
RESET ingest.direct_apply;
INSERT INTO dp_leaf2_1 (k, a, b, v) VALUES (1, 1, 7, 'new') ON CONFLICT (k) DO UPDATE SET a = EXCLUDED.a;
-- and one inside it is written
COPY dp_leaf2_1 (k, a, b, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'b,v');
1,2,4,new
\.
SELECT * FROM dp_leaf2;
SELECT count(*) AS rows, count(*) FILTER (WHERE v = 'in range') AS loaded FROM dp_leaf;
\set VERBOSITY terse
DROP TABLE dp_leaf, dp_leaf_1, dp_leaf2;

-- A partition that gets a trigger after the merge began (here from the source view, in the
-- merge's own transaction; another session could, as the check before the merge only locks
-- partitions for reading) is not written directly when rows first reach it: that chunk and the
-- rest go through the statement, which fires the trigger for every row.
CREATE TABLE dp_late (k int PRIMARY KEY, v int) PARTITION BY RANGE (k);
CREATE TABLE dp_late_1 PARTITION OF dp_late FOR VALUES FROM (0) TO (100);
CREATE TABLE dp_late_log (k int);
CREATE FUNCTION dp_late_log() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN INSERT INTO dp_late_log VALUES (NEW.k); RETURN NEW; END$$;
CREATE FUNCTION dp_late_add() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgname = 'dp_late_trg') THEN
        CREATE TRIGGER dp_late_trg BEFORE INSERT ON dp_late_1
            FOR EACH ROW EXECUTE FUNCTION dp_late_log();
    END IF;
    RETURN 0;
END $$;
CREATE TABLE dp_late_src (k int, v int);
INSERT INTO dp_late_src VALUES (1, 1), (2, 2), (3, 3);
CREATE VIEW dp_late_view AS SELECT k, v + dp_late_add() AS v FROM dp_late_src;
SELECT * FROM ingest.merge('dp_late_view', 'dp_late', 'upsert');
SELECT (SELECT count(*) FROM dp_late) AS rows, (SELECT count(*) FROM dp_late_log) AS trigger_fired;
DROP VIEW dp_late_view;
DROP TABLE dp_late, dp_late_log, dp_late_src;
DROP FUNCTION dp_late_add(), dp_late_log();
