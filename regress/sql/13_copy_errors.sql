-- Bad input gets a clear error with its SQLSTATE, and nothing is loaded; ON_ERROR 'ignore'
-- skips and records bad rows.
CREATE EXTENSION IF NOT EXISTS pg_ingest;
CREATE TABLE e (k int PRIMARY KEY, v text, n int CHECK (n >= 0), u text UNIQUE);
INSERT INTO e VALUES (1, 'one', 1, 'u1');
CREATE FUNCTION try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hnt text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hnt = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || coalesce(' HINT: ' || nullif(hnt, ''), '');
END $$;
-- server-side input file for the statements below
COPY (SELECT 2, 'two', 2, 'u2') TO '/tmp/pg_ingest_regress_e.csv' (FORMAT csv);
COPY (SELECT 2, 'two', 2, 'u2') TO '/tmp/pg_ingest_regress_e.bin' (FORMAT binary);

SELECT sql, try(sql) FROM (VALUES
    -- unknown mode, unknown ON_ERROR value
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'merge')$$),
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'skip')$$),
    -- an option given twice
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_CONFLICT 'ignore')$$),
    -- our options without ON_CONFLICT
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, CONFLICT_COLUMNS 'k')$$),
    -- COPY TO
    ($$COPY e TO '/tmp/pg_ingest_regress_out.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert')$$),
    ($$COPY (SELECT 1) TO '/tmp/pg_ingest_regress_out.csv' WITH (ON_CONFLICT 'upsert')$$),
    -- CONFLICT_COLUMNS naming a missing column, or columns with no unique index
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', CONFLICT_COLUMNS 'nope')$$),
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', CONFLICT_COLUMNS 'k, v')$$),
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', CONFLICT_COLUMNS '')$$),
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', CONFLICT_COLUMNS (k, v))$$),
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 1)$$),
    -- UPDATE_COLUMNS naming a key column or a missing column, or with ignore/strict
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'k')$$),
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'nope')$$),
    ($$COPY e (k, v) FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'n')$$),
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'ignore', UPDATE_COLUMNS 'v')$$),
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'strict', UPDATE_COLUMNS 'v')$$),
    -- the key is not in the column list
    ($$COPY e (v) FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert')$$),
    -- ON_ERROR 'ignore' with binary format
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.bin' WITH (FORMAT binary, ON_CONFLICT 'upsert', ON_ERROR 'ignore')$$),
    -- a WHERE naming a column that is not loaded (its default comes after the filter), the
    -- whole row or a system column; a subquery, refused as plain COPY refuses it
    ($$COPY e (k, v, n) FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert') WHERE u IS NULL$$),
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert') WHERE e IS NOT NULL$$),
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert') WHERE xmin IS NULL$$),
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert') WHERE k IN (SELECT 1)$$),
    -- FREEZE
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, FREEZE, ON_CONFLICT 'upsert')$$),
    -- a bad ordinary COPY option is still reported by COPY
    ($$COPY e FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT xml, ON_CONFLICT 'upsert')$$)
) AS t(sql);

-- Targets without a usable unique index, views, foreign tables.
CREATE TABLE nokey (a int, b text);
CREATE TABLE twokeys (a int UNIQUE, b int UNIQUE);
CREATE TABLE partkey (k int, part int, UNIQUE (k, part)) PARTITION BY LIST (part);
CREATE TABLE partkey_1 PARTITION OF partkey FOR VALUES IN (1);
CREATE TABLE partonly (k int, part int) PARTITION BY LIST (part);
CREATE TABLE partonly_1 PARTITION OF partonly FOR VALUES IN (1);
CREATE UNIQUE INDEX ON partonly_1 (k);
CREATE VIEW ev AS SELECT * FROM e;
CREATE FOREIGN DATA WRAPPER dummy_fdw;
CREATE SERVER dummy_srv FOREIGN DATA WRAPPER dummy_fdw;
CREATE FOREIGN TABLE ft (k int) SERVER dummy_srv;
SELECT sql, try(sql) FROM (VALUES
    ($$COPY nokey FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert')$$),
    ($$COPY twokeys FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert')$$),
    ($$COPY partkey (k, part) FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', CONFLICT_COLUMNS 'k')$$),
    ($$COPY partonly (k, part) FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', CONFLICT_COLUMNS 'k')$$),
    ($$COPY ev FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert')$$),
    ($$COPY ft FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert')$$)
) AS t(sql);

-- A target with INSERT or UPDATE rules is refused in every mode, as INSERT ... ON CONFLICT
-- refuses it (the rows are applied by INSERT statements, which the rules would rewrite).
CREATE TABLE ruled (k int PRIMARY KEY, v text);
CREATE TABLE ruled_log (k int, v text);
CREATE RULE ruled_log AS ON INSERT TO ruled DO ALSO INSERT INTO ruled_log VALUES (NEW.k, NEW.v);
SELECT sql, try(sql) FROM (VALUES
    ($$COPY ruled FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'strict')$$),
    ($$COPY ruled FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore')$$)
) AS t(sql);
COPY ruled (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore');
1,a
\.
SELECT * FROM ingest.merge('ruled_log', 'ruled', 'upsert');
SELECT (SELECT count(*) FROM ruled) AS loaded, (SELECT count(*) FROM ruled_log) AS logged;
DROP TABLE ruled, ruled_log;

-- Malformed rows under ON_ERROR 'stop' (the default): the statement fails, nothing loads.
COPY e FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
5,five,5,u5
6,six,not a number,u6
\.
COPY e FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
7,seven,7,u7
8,"unterminated,8,u8
\.
SELECT count(*) AS still_one_row FROM e;

-- ON_ERROR 'ignore': bad input and constraint violations other than the conflict are
-- skipped and recorded with line, raw line, SQLSTATE and message; the rest loads.
COPY e FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
1,uno,1,u1
2,two,2,u2
3,three,not a number,u3
4,four,-4,u4
5,five,5,u2
6,six,6
7,seven,7,u7,extra
8,eight,8,u8
\.
SELECT * FROM ingest.last_copy_stats();
SELECT * FROM ingest.last_copy_rejects() ORDER BY line_number;
SELECT * FROM e ORDER BY k;

-- the session keeps at most ingest.copy_rejects_kept rejected rows; the rest are counted, and
-- a NOTICE says how many were not kept
CREATE TABLE ek (k int PRIMARY KEY, n int);
SET ingest.copy_rejects_kept = 2;
COPY ek FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
1,x
2,2
3,y
4,z
\.
SELECT * FROM ingest.last_copy_stats();
SELECT line_number, raw_line FROM ingest.last_copy_rejects() ORDER BY line_number;
SET ingest.copy_rejects_kept = 0;
COPY ek FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
5,x
\.
SELECT count(*) FROM ingest.last_copy_rejects();
-- rows are rejected in key order; the list keeps those of the first bad lines, and returns them
-- in input order (no ORDER BY here on purpose)
SET ingest.copy_rejects_kept = 2;
COPY ek FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
19,x
18,8
17,y
16,z
15,w
\.
SELECT line_number, raw_line FROM ingest.last_copy_rejects();
RESET ingest.copy_rejects_kept;
SELECT * FROM ek ORDER BY k;
DROP TABLE ek;

-- a repeated key whose applied row fails: the key's rows are applied one at a time in input
-- order, so its good rows load (upsert: the last good one; ignore: the first good one)
CREATE TABLE eg (k int PRIMARY KEY, n int CHECK (n >= 0));
COPY eg FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
1,5
1,-1
2,3
2,4
2,-2
\.
SELECT * FROM ingest.last_copy_stats();
SELECT line_number, raw_line, sqlstate FROM ingest.last_copy_rejects() ORDER BY line_number;
SELECT * FROM eg ORDER BY k;
COPY eg FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore', ON_ERROR 'ignore');
3,-1
3,7
3,8
\.
SELECT * FROM ingest.last_copy_stats();
SELECT line_number, raw_line, sqlstate FROM ingest.last_copy_rejects() ORDER BY line_number;
SELECT * FROM eg ORDER BY k;
DROP TABLE eg;

-- ... but only a line that was read whole can be skipped: a bare carriage return in a
-- newline-ended file, or an invalid byte sequence, stops the reading of the input itself,
-- so it fails the COPY (it would otherwise repeat forever) and nothing is loaded
CREATE TABLE cr (k int PRIMARY KEY, v text);
SELECT lo_from_bytea(0, convert_to(E'1,a\n2,b\rc\n3,d\n', 'UTF8')) AS cr_lo \gset
SELECT lo_export(:cr_lo, '/tmp/pg_ingest_regress_cr.csv'), lo_unlink(:cr_lo);
SELECT try($$COPY cr FROM '/tmp/pg_ingest_regress_cr.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore')$$);
SELECT lo_from_bytea(0, '\x312c610a322cff0a332c640a'::bytea) AS cr_lo \gset
SELECT lo_export(:cr_lo, '/tmp/pg_ingest_regress_cr.csv'), lo_unlink(:cr_lo);
SELECT try($$COPY cr FROM '/tmp/pg_ingest_regress_cr.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore')$$);
SELECT count(*) AS nothing_loaded FROM cr;
DROP TABLE cr;

-- the next COPY starts afresh
COPY e FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore', ON_ERROR 'ignore');
9,nine,9,u9
\.
SELECT * FROM ingest.last_copy_stats();
SELECT count(*) FROM ingest.last_copy_rejects();

-- strict + ON_ERROR 'ignore': a duplicate key is the conflict itself, never a bad row
COPY e FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'strict', ON_ERROR 'ignore');
10,ten,10,u10
1,dup,1,u100
\.
SELECT count(*) AS no_ten FROM e WHERE k = 10;
-- ... also on a partitioned table, where the violation names the partition's index
CREATE TABLE pe (k int PRIMARY KEY, v text) PARTITION BY HASH (k);
CREATE TABLE pe0 PARTITION OF pe FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE pe1 PARTITION OF pe FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO pe VALUES (1, 'old');
COPY pe FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'strict', ON_ERROR 'ignore');
1,dup
2,new
\.
SELECT * FROM pe ORDER BY k;
DROP TABLE pe;

-- ingest.merge(): the same engine from a table, with its own bad input.
CREATE TABLE src (k int, v text, n int);
INSERT INTO src VALUES (1, 'merged', 11), (20, 'new', 20), (20, 'newer', 21);
SELECT * FROM ingest.merge('src', 'e', 'upsert');
SELECT k, v, n FROM e WHERE k IN (1, 20) ORDER BY k;
SELECT * FROM ingest.merge('src', 'e', 'update', update_columns => '{v}');
CREATE TABLE src_bad (k int, zzz text);
SELECT try($$SELECT ingest.merge('src_bad', 'e', 'upsert')$$);
SELECT try($$SELECT ingest.merge('src', 'e', 'nope')$$);
SELECT try($$SELECT ingest.merge('src', 'ev', 'upsert')$$);
SELECT try($$SELECT ingest.merge('src', 'e', 'upsert', '{v}')$$);
SELECT try($$SELECT ingest.merge('src', 'e', 'ignore', NULL, '{v}')$$);
SELECT try($$SELECT ingest.merge('no_such_table', 'e', 'upsert')$$);
-- a system catalog is refused as INSERT refuses it, before any input is read
SELECT try($$COPY pg_catalog.pg_class FROM '/dev/null' WITH (ON_CONFLICT 'upsert')$$);
-- an empty list names nothing, as CONFLICT_COLUMNS '' and UPDATE_COLUMNS '' (NULL: the default)
SELECT try($$SELECT ingest.merge('src', 'e', 'upsert', '{}')$$);
SELECT try($$SELECT ingest.merge('src', 'e', 'upsert', update_columns => '{}')$$);

DROP TABLE e, nokey, twokeys, partkey, partonly, src, src_bad CASCADE;
DROP FOREIGN TABLE ft;
DROP SERVER dummy_srv;
DROP FOREIGN DATA WRAPPER dummy_fdw;
DROP FUNCTION try(text);

-- ON_ERROR 'ignore' skips a value its domain refuses (23514 from the input function)
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE dom (k int PRIMARY KEY, n posint);
COPY dom FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
1,1
2,-1
3,3
\.
SELECT * FROM dom ORDER BY k;
SELECT line_number, raw_line, sqlstate FROM ingest.last_copy_rejects();

-- HEADER MATCH: a header that does not match fails the COPY, also under ON_ERROR 'ignore'
CREATE TABLE hm (k int PRIMARY KEY, a int, b int);
COPY hm FROM STDIN WITH (FORMAT csv, HEADER match, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
k,b,a
1,10,20
\.
SELECT count(*) FROM hm;
COPY hm FROM STDIN WITH (FORMAT csv, HEADER match, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
k,a,b
1,10,x
2,20,30
\.
SELECT * FROM hm ORDER BY k;
SELECT line_number, raw_line, sqlstate FROM ingest.last_copy_rejects();

-- an empty line's raw text is '', and an error after a skipped row names its own line only
CREATE TABLE el (k int PRIMARY KEY, v int);
COPY el FROM STDIN WITH (ON_CONFLICT 'upsert', ON_ERROR 'ignore');
1	1

2	2
\.
SELECT line_number, raw_line IS NULL AS null_raw, raw_line, sqlstate FROM ingest.last_copy_rejects();
SELECT lo_from_bytea(0, convert_to(E'3,x\n4,b\rc\n', 'UTF8')) AS ctx_lo \gset
SELECT lo_export(:ctx_lo, '/tmp/pg_ingest_regress_ctx.csv'), lo_unlink(:ctx_lo);
COPY el FROM '/tmp/pg_ingest_regress_ctx.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
SELECT * FROM el ORDER BY k;
DROP TABLE dom, hm, el;
DROP DOMAIN posint;

-- In a database without the extension the option is refused before any input is read
SELECT current_database() AS regress_db \gset
CREATE DATABASE pg_ingest_noext;
\c pg_ingest_noext
CREATE TABLE t (k int PRIMARY KEY);
COPY t FROM STDIN WITH (ON_CONFLICT 'upsert');
1
\.
\c :regress_db
DROP DATABASE pg_ingest_noext;

-- a deferrable primary key cannot detect conflicts, and another unique index does not stand in
-- for it (the key would be updated): a clear error, nothing loaded; naming that index works
CREATE TABLE dpk (id int PRIMARY KEY DEFERRABLE, email text UNIQUE, name text);
INSERT INTO dpk VALUES (1, 'a@x', 'old');
COPY dpk FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
2,a@x,new
\.
COPY dpk FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', CONFLICT_COLUMNS 'id');
2,a@x,new
\.
COPY dpk FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', CONFLICT_COLUMNS 'email');
1,a@x,new
\.
SELECT * FROM dpk;
DROP TABLE dpk;

-- another unique index on the conflict columns that ON CONFLICT would also take as an arbiter:
-- deferrable, or comparing the keys differently, is refused before anything is read
CREATE TABLE sib (k text NOT NULL, v text);
CREATE UNIQUE INDEX sib_c ON sib (k COLLATE "C");
ALTER TABLE sib ADD CONSTRAINT sib_d UNIQUE (k) DEFERRABLE;
COPY sib FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', CONFLICT_COLUMNS 'k');
a,1
\.
ALTER TABLE sib DROP CONSTRAINT sib_d;
CREATE COLLATION sib_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE UNIQUE INDEX sib_nd ON sib (k COLLATE sib_ci);
COPY sib FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore', CONFLICT_COLUMNS 'k');
a,1
\.
-- the same equality twice is fine: a duplicate index, another deterministic collation, an
-- operator class with the same "="
DROP INDEX sib_nd;
DROP COLLATION sib_ci;
CREATE UNIQUE INDEX sib_c2 ON sib (k COLLATE "C");
CREATE UNIQUE INDEX sib_default ON sib (k);
CREATE UNIQUE INDEX sib_pattern ON sib (k text_pattern_ops);
COPY sib FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', CONFLICT_COLUMNS 'k');
a,1
a,2
\.
SELECT * FROM sib;
DROP TABLE sib;
-- NULLS NOT DISTINCT makes no difference on a column that cannot be NULL
CREATE TABLE nnd (k int PRIMARY KEY, v text);
CREATE UNIQUE INDEX nnd_k ON nnd (k) NULLS NOT DISTINCT;
COPY nnd FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,a
1,b
\.
SELECT * FROM nnd;
DROP TABLE nnd;

-- A row superseded by a later (upsert) or earlier (ignore) row of its key is checked as INSERT
-- checks a proposed row before it looks for a conflict (NOT NULL, CHECK, with defaults): with
-- ON_ERROR 'stop' it fails the COPY, with 'ignore' it is rejected and its key applied one row
-- at a time, as a row-at-a-time load would. On both paths.
CREATE TABLE sup (k int PRIMARY KEY, v int CHECK (v > 0), w int NOT NULL DEFAULT 1,
                  x int CHECK (x IS NULL OR x < w));
INSERT INTO sup VALUES (9, 9, 1, NULL);
COPY sup (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,-1
1,7
\.
COPY sup (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore');
9,5
9,-1
\.
COPY sup (k, v, x) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
2,1,5
2,1,
\.
SELECT count(*) AS rows_after_failures FROM sup;
COPY sup (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
1,5
1,-1
1,7
2,3
9,
9,-9
\.
SELECT * FROM ingest.last_copy_stats();
SELECT line_number, raw_line, sqlstate FROM ingest.last_copy_rejects();
COPY sup (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore', ON_ERROR 'ignore');
3,5
3,-1
4,1
\.
SELECT * FROM ingest.last_copy_stats();
SELECT line_number, raw_line, sqlstate FROM ingest.last_copy_rejects();
SET ingest.direct_apply = off;
COPY sup (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
5,-1
5,7
\.
COPY sup (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
5,1
5,7
\.
RESET ingest.direct_apply;
SELECT * FROM ingest.last_copy_stats();
SELECT * FROM sup ORDER BY k;
DROP TABLE sup;
-- With UPDATE_COLUMNS a key's applied row is its first row's other columns and its last row's
-- update columns; the last row is checked as the proposed row it is too (INSERT checks it before
-- its DO UPDATE), new key or existing: (5,0,5) breaks b <= a, (7,,2) a's NOT NULL. On both
-- paths; with ON_ERROR 'ignore' the bad last row is rejected and the first one stays.
CREATE TABLE sup_cols (k int PRIMARY KEY, a int NOT NULL, b int, CHECK (b <= a));
INSERT INTO sup_cols VALUES (8, 10, 1);
COPY sup_cols FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'b');
5,10,1
5,0,5
\.
COPY sup_cols FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'b');
7,10,1
7,,2
\.
COPY sup_cols FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'b');
8,10,2
8,0,5
\.
SET ingest.direct_apply = off;
COPY sup_cols FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'b');
5,10,1
5,0,5
\.
RESET ingest.direct_apply;
SELECT count(*) AS rows_after_failures FROM sup_cols;
COPY sup_cols FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'b', ON_ERROR 'ignore');
5,10,1
5,0,5
6,10,1
6,20,3
\.
SELECT * FROM ingest.last_copy_stats();
SELECT line_number, raw_line, sqlstate FROM ingest.last_copy_rejects();
SELECT * FROM sup_cols ORDER BY k;
DROP TABLE sup_cols;
-- A superseded row's stored generated columns are computed as INSERT computes them: an
-- expression that fails (100 / 0) or a NOT NULL generated column left NULL fails the COPY, with
-- or without a CHECK on the table, as INSERT of the row would (22012, 23502).
CREATE TABLE sup_gen1 (k int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (100 / v) STORED);
CREATE TABLE sup_gen2 (k int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (100 / v) STORED,
                       CHECK (k > 0));
CREATE TABLE sup_gen3 (k int PRIMARY KEY, v int,
                       g int GENERATED ALWAYS AS (nullif(v, 0)) STORED NOT NULL);
COPY sup_gen1 FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,0
1,5
\.
COPY sup_gen2 FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,0
1,5
\.
COPY sup_gen3 FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,0
1,5
\.
COPY sup_gen3 FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
1,0
1,5
2,7
2,0
\.
SELECT line_number, raw_line, sqlstate FROM ingest.last_copy_rejects();
SELECT (SELECT count(*) FROM sup_gen1) AS gen1, (SELECT count(*) FROM sup_gen2) AS gen2;
SELECT * FROM sup_gen3 ORDER BY k;
DROP TABLE sup_gen1, sup_gen2, sup_gen3;
-- A BEFORE ROW INSERT trigger runs before INSERT's checks and may fill what they test: such a
-- target's superseded rows are not checked (the trigger fills "filled" for the applied row).
CREATE TABLE sup_trg (k int PRIMARY KEY, v int, filled text NOT NULL);
CREATE FUNCTION sup_fill() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN NEW.filled := coalesce(NEW.filled, 'x'); RETURN NEW; END$$;
CREATE TRIGGER sup_fill BEFORE INSERT ON sup_trg FOR EACH ROW EXECUTE FUNCTION sup_fill();
COPY sup_trg (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,5
1,7
\.
SELECT * FROM sup_trg;
-- Defaults are evaluated only for columns a CHECK reads: an identity column keeps the value a
-- row-at-a-time load gives (1), the sequence is not drawn for superseded rows.
CREATE TABLE sup_id (id int GENERATED ALWAYS AS IDENTITY, k int PRIMARY KEY, v int NOT NULL,
                     CHECK (v > 0));
COPY sup_id (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,1
1,2
1,3
\.
SELECT * FROM sup_id;
-- A CHECK whose expression fails while it is prepared (constant folding): every row rejected,
-- no half-prepared state reused (this crashed the backend).
CREATE FUNCTION sup_bad() RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$BEGIN RETURN 1/0; END$$;
CREATE TABLE sup_cz (k int PRIMARY KEY, v int, CONSTRAINT b_bad CHECK (v < sup_bad()),
                     CONSTRAINT a_ok CHECK (v > 0));
COPY sup_cz (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
1,5
1,7
2,5
2,7
\.
SELECT * FROM ingest.last_copy_stats();
DROP TABLE sup_trg, sup_id, sup_cz;
DROP FUNCTION sup_fill(), sup_bad();
-- A COPY that fails leaves no results: its counts and the rows it rejected before it failed
-- both go (the rejects used to stay, next to counts of zero).
CREATE TABLE fail_res (k int PRIMARY KEY, n int);
INSERT INTO fail_res VALUES (1, 1);
COPY fail_res FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore', ON_ERROR 'ignore');
2,x
\.
SELECT * FROM ingest.last_copy_stats();
SELECT count(*) FROM ingest.last_copy_rejects();
COPY fail_res FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'strict', ON_ERROR 'ignore');
3,y
1,1
\.
SELECT * FROM ingest.last_copy_stats();
SELECT count(*) FROM ingest.last_copy_rejects();
DROP TABLE fail_res;
-- The results are the role's that ran the COPY (rejected rows hold raw input): after SET ROLE
-- another role reads none, and DISCARD ALL (a pooler handing the session on) forgets them.
CREATE TABLE res_owner (k int PRIMARY KEY, n int);
CREATE ROLE res_other;
COPY res_owner FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
1,1
2,secret
\.
SET ROLE res_other;
SELECT * FROM ingest.last_copy_stats();
SELECT count(*) FROM ingest.last_copy_rejects();
RESET ROLE;
SELECT * FROM ingest.last_copy_stats();
SELECT raw_line FROM ingest.last_copy_rejects();
DISCARD ALL;
SELECT * FROM ingest.last_copy_stats();
SELECT count(*) FROM ingest.last_copy_rejects();
DROP TABLE res_owner;
DROP ROLE res_other;
-- A DISCARD ALL that PostgreSQL refuses (in a transaction block) forgets nothing.
CREATE TABLE res_keep (k int PRIMARY KEY, n int);
COPY res_keep FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
1,1
2,x
\.
BEGIN;
DISCARD ALL;
ROLLBACK;
SELECT * FROM ingest.last_copy_stats();
-- An error of ours that the caller catches (PL/pgSQL EXCEPTION) leaves no memory behind in
-- the transaction (each held a small memory context until the commit).
CREATE TABLE res_src (k int, n int);
INSERT INTO res_src VALUES (1, -1);
ALTER TABLE res_keep ADD CHECK (n > 0);
BEGIN;
DO $$
BEGIN
    FOR i IN 1..200 LOOP
        BEGIN
            PERFORM ingest.merge('res_src', 'res_keep', 'upsert');
        EXCEPTION WHEN check_violation THEN NULL;
        END;
    END LOOP;
END $$;
SELECT count(*) AS error_contexts_left FROM pg_backend_memory_contexts
WHERE name = 'pg_ingest error';
COMMIT;
DROP TABLE res_keep, res_src;

-- WHERE on a generated column (by name or through the whole row) is refused as plain COPY
-- refuses it (42P10), before the ON_CONFLICT rule that WHERE names only loaded columns
CREATE TABLE gw (k int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED);
DO $$
DECLARE
    stmt text;
    detail text;
BEGIN
    FOREACH stmt IN ARRAY ARRAY[
        $q$COPY gw (k, v) FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert') WHERE g > 0$q$,
        $q$COPY gw (k, v) FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv) WHERE g > 0$q$,
        $q$COPY gw (k, v) FROM '/tmp/pg_ingest_regress_e.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert') WHERE gw IS NOT NULL$q$]
    LOOP
        BEGIN
            EXECUTE stmt;
            RAISE NOTICE 'no error: %', stmt;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
            RAISE NOTICE '%: % (%)', SQLSTATE, SQLERRM, detail;
        END;
    END LOOP;
END $$;
DROP TABLE gw;
