-- COPY ON CONFLICT: every mode x {plain, partitioned} x {text, csv, binary}, with keys repeated
-- inside one COPY. The data goes through server-side files so one loop covers the matrix.
CREATE EXTENSION IF NOT EXISTS pg_ingest;
CREATE SCHEMA m;
CREATE TABLE m.plain (k int PRIMARY KEY, v text, n int DEFAULT 0);
CREATE TABLE m.parted (k int PRIMARY KEY, v text, n int DEFAULT 0) PARTITION BY HASH (k);
CREATE TABLE m.parted_0 PARTITION OF m.parted FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE m.parted_1 PARTITION OF m.parted FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE m.result (mode text, tab text, fmt text, outcome text, stats text, contents text);

-- Input: key 2 exists, key 3 and 4 are new; 2 and 3 repeat inside the batch.
CREATE VIEW m.batch AS
    SELECT * FROM (VALUES (1, 2, 'x', 20), (2, 3, 'y', 30), (3, 2, 'z', 21), (4, 3, 'w', 31),
                          (5, 4, 'q', 40)) AS b(ord, k, v, n);

-- Strict mode also loads: only new keys, and a key repeated inside the batch (23505).
CREATE VIEW m.fresh AS
    SELECT * FROM (VALUES (1, 5, 'x', 50), (2, 3, 'y', 30), (3, 4, 'z', 40)) AS b(ord, k, v, n);
CREATE VIEW m.repeated AS
    SELECT * FROM (VALUES (1, 5, 'x', 50), (2, 3, 'y', 30), (3, 5, 'z', 51)) AS b(ord, k, v, n);

CREATE FUNCTION m.run(mode text, tab text, fmt text, batch text DEFAULT 'batch')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    f text := current_setting('data_directory') || '/pgi_batch.' || fmt;
    outcome text := 'ok';
    st record;
BEGIN
    EXECUTE format('TRUNCATE m.%I', tab);
    EXECUTE format('INSERT INTO m.%I VALUES (1, %L, 1), (2, %L, 2)', tab, 'a', 'b');
    EXECUTE format('COPY (SELECT k, v, n FROM m.%I ORDER BY ord) TO %L (FORMAT %s)', batch, f, fmt);
    BEGIN
        EXECUTE format('COPY m.%I (k, v, n) FROM %L WITH (FORMAT %s, ON_CONFLICT %L)',
                       tab, f, fmt, mode);
    EXCEPTION WHEN unique_violation THEN
        outcome := 'unique_violation ' || SQLSTATE;
    END;
    SELECT * INTO st FROM ingest.last_copy_stats();
    INSERT INTO m.result SELECT mode || CASE batch WHEN 'batch' THEN '' ELSE ' ' || batch END,
        tab, fmt, outcome,
        format('ins=%s upd=%s skip=%s rej=%s', st.inserted, st.updated, st.skipped, st.rejected),
        CASE tab WHEN 'plain' THEN
            (SELECT string_agg(format('%s:%s:%s', k, v, n), ' ' ORDER BY k) FROM m.plain)
        ELSE (SELECT string_agg(format('%s:%s:%s', k, v, n), ' ' ORDER BY k) FROM m.parted) END;
END $$;

SELECT m.run(mode, tab, fmt)
FROM unnest('{upsert,update,ignore,strict}'::text[]) AS mode,
     unnest('{plain,parted}'::text[]) AS tab,
     unnest('{text,csv,binary}'::text[]) AS fmt;
SELECT m.run('strict', tab, fmt, batch)
FROM unnest('{plain,parted}'::text[]) AS tab,
     unnest('{text,csv,binary}'::text[]) AS fmt,
     unnest('{fresh,repeated}'::text[]) AS batch;

-- One line per mode: every table kind and format must give the same result.
SELECT mode, count(*) AS runs, count(DISTINCT (outcome, stats, contents)) AS distinct_results,
       min(outcome) AS outcome, min(stats) AS stats, min(contents) AS contents
FROM m.result GROUP BY mode ORDER BY mode;

-- Rows went to the right partitions.
SELECT m.run('upsert', 'parted', 'csv');
SELECT tableoid::regclass AS part, k FROM m.parted ORDER BY k;

-- Inline COPY FROM STDIN, text format with a header and a NULL marker.
TRUNCATE m.plain;
INSERT INTO m.plain VALUES (1, 'a', 1);
COPY m.plain (k, v, n) FROM STDIN WITH (FORMAT csv, HEADER true, NULL 'NULL', ON_CONFLICT 'upsert');
k,v,n
1,NULL,10
5,"quoted, comma",NULL
5,"last, wins",55
\.
SELECT * FROM m.plain ORDER BY k;
SELECT * FROM ingest.last_copy_stats();

-- text format, DELIMITER
COPY m.plain FROM STDIN WITH (DELIMITER '|', ON_CONFLICT 'ignore');
5|ignored|0
6|six|6
6|second six ignored|66
\.
SELECT * FROM m.plain ORDER BY k;
SELECT * FROM ingest.last_copy_stats();

-- The command tag counts rows written (inserted + updated).
\set QUIET off
COPY m.plain (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'update');
1,one
7,not there
\.
\set QUIET on

-- An empty input is fine.
COPY m.plain FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
\.
SELECT * FROM ingest.last_copy_stats();

-- Ordinary COPY is untouched by the hook.
COPY m.plain FROM STDIN WITH (FORMAT csv);
8,plain copy,8
\.
SELECT count(*) FROM m.plain;

DROP SCHEMA m CASCADE;
