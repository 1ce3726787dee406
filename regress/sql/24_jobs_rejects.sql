-- Rejects of async load jobs (exception_mode 'ignore'): recorded in ingest.async_load_reject as
-- the job meets them (not held until the end), and a job past its reject_limit stops at the
-- first row past it rather than at the end of its rows.
CREATE EXTENSION IF NOT EXISTS pg_ingest;
\set VERBOSITY default
SET client_min_messages = warning;

CREATE TABLE rj (id int PRIMARY KEY, qty int CHECK (qty > 0), note text);

-- many rejects, no limit: every one recorded, the good rows loaded
SELECT id AS j1, staging AS s1 FROM ingest.begin_async_load('rj', exception_mode => 'ignore') \gset
INSERT INTO :s1 SELECT g, CASE WHEN g % 4 = 0 THEN g ELSE -g END, 'n' || g
  FROM generate_series(1, 4000) g;
SELECT ingest.submit_async_load(:j1);
SELECT ingest.wait_async_load(:j1, '120 s');
SELECT state, rows_inserted, rows_rejected FROM ingest.get_async_load_job(:j1);
SELECT count(*) AS recorded, count(DISTINCT row_number) AS distinct_rows,
       bool_and(sqlstate = '23514') AS all_check_violations
  FROM ingest.async_load_reject WHERE job_id = :j1;
SELECT count(*) AS loaded, bool_and(qty > 0) AS all_good FROM rj;

-- reject_limit 2 and 50 bad rows: the job fails at its third reject; those three are recorded
SELECT id AS j2, staging AS s2
  FROM ingest.begin_async_load('rj', exception_mode => 'ignore', reject_limit => 2) \gset
INSERT INTO :s2 SELECT 10000 + g, -g, 'bad' FROM generate_series(1, 50) g;
SELECT ingest.submit_async_load(:j2);
SELECT ingest.wait_async_load(:j2, '60 s');
SELECT state, error_sqlstate, regexp_replace(error_message, 'job \d+', 'job N') AS error_message,
       rows_rejected
  FROM ingest.get_async_load_job(:j2);
SELECT row_number, sqlstate FROM ingest.async_load_reject WHERE job_id = :j2 ORDER BY row_number;
SELECT count(*) AS applied FROM rj WHERE id > 10000;

-- retried with a higher limit: the earlier attempt's rejects are replaced by this one's
UPDATE ingest.async_load_job SET reject_limit = 100 WHERE id = :j2;
SELECT ingest.retry_async_load(:j2);
SELECT ingest.wait_async_load(:j2, '60 s');
SELECT state, rows_inserted, rows_rejected FROM ingest.get_async_load_job(:j2);
SELECT count(*) AS recorded FROM ingest.async_load_reject WHERE job_id = :j2;

DROP TABLE rj;

-- a deferred constraint is checked within the apply (a job's apply may not leave trigger
-- events to its COMMIT): rows that satisfy it load; a violation fails the job once with its
-- error, nothing applied, not queued again
CREATE TABLE rj_parent (id int PRIMARY KEY);
INSERT INTO rj_parent VALUES (7);
CREATE TABLE rj_child (id int PRIMARY KEY,
    parent int REFERENCES rj_parent DEFERRABLE INITIALLY DEFERRED);
SELECT id AS d0, staging AS ds0 FROM ingest.begin_async_load('rj_child', 'none') \gset
INSERT INTO :ds0 VALUES (1, 7);
SELECT ingest.submit_async_load(:d0);
SELECT ingest.wait_async_load(:d0, '60 s');
SELECT id AS d1, staging AS ds1 FROM ingest.begin_async_load('rj_child', 'none') \gset
INSERT INTO :ds1 VALUES (2, 7), (3, 42);
SELECT ingest.submit_async_load(:d1);
SELECT ingest.wait_async_load(:d1, '60 s');
SELECT state, error_sqlstate, attempts FROM ingest.get_async_load_job(:d1);
SELECT * FROM rj_child;
DROP TABLE rj_child, rj_parent;

-- A column of a domain type is staged as the domain's base type (staging has no constraints):
-- with exception mode 'ignore' a value the domain refuses (its CHECK, its NOT NULL) is a rejected
-- row, numbered and shown as staged, and counts toward reject_limit; with 'strict' it fails
-- the job with the domain's error. As COPY ... ON_ERROR 'ignore' into the table would skip it.
CREATE DOMAIN rj_pos AS int CHECK (VALUE > 0);
CREATE DOMAIN rj_nn AS text NOT NULL;
CREATE TABLE rj_dom (k int PRIMARY KEY, v rj_pos, w rj_nn);
SELECT id AS m1, staging AS ms1
  FROM ingest.begin_async_load('rj_dom', exception_mode => 'ignore') \gset
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = :'ms1'::regclass AND attnum > 0 ORDER BY attnum;
INSERT INTO :ms1 VALUES (1, 5, 'a'), (2, -1, 'b'), (3, 7, NULL), (4, 8, 'd');
SELECT ingest.submit_async_load(:m1);
SELECT ingest.wait_async_load(:m1, '60 s');
SELECT state, rows_staged, rows_inserted, rows_rejected FROM ingest.get_async_load_job(:m1);
SELECT row_number, raw_row, sqlstate, message FROM ingest.async_load_reject
 WHERE job_id = :m1 ORDER BY row_number;
SELECT * FROM rj_dom ORDER BY k;
SELECT id AS m2, staging AS ms2
  FROM ingest.begin_async_load('rj_dom', exception_mode => 'ignore', reject_limit => 1) \gset
INSERT INTO :ms2 VALUES (6, -6, 'x'), (7, -7, 'y'), (8, 8, 'z');
SELECT ingest.submit_async_load(:m2);
SELECT ingest.wait_async_load(:m2, '60 s');
SELECT state, error_sqlstate FROM ingest.get_async_load_job(:m2);
SELECT id AS m3, staging AS ms3 FROM ingest.begin_async_load('rj_dom') \gset
INSERT INTO :ms3 VALUES (9, -9, 'q');
SELECT ingest.submit_async_load(:m3);
SELECT ingest.wait_async_load(:m3, '60 s');
SELECT state, error_sqlstate, error_message FROM ingest.get_async_load_job(:m3);
SELECT count(*) AS rows_in_rj_dom FROM rj_dom;
DROP TABLE rj_dom;
-- An array of a domain is staged as an array of its base type, and checked the same way.
CREATE TABLE rj_arr (k int PRIMARY KEY, v rj_pos[]);
SELECT id AS m4, staging AS ms4
  FROM ingest.begin_async_load('rj_arr', exception_mode => 'ignore') \gset
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = :'ms4'::regclass AND attnum > 0 ORDER BY attnum;
INSERT INTO :ms4 VALUES (1, '{1,2}'), (2, '{3,-1}'), (3, NULL);
SELECT ingest.submit_async_load(:m4);
SELECT ingest.wait_async_load(:m4, '60 s');
SELECT state, rows_inserted, rows_rejected FROM ingest.get_async_load_job(:m4);
SELECT row_number, raw_row, sqlstate, message FROM ingest.async_load_reject
 WHERE job_id = :m4 ORDER BY row_number;
SELECT * FROM rj_arr ORDER BY k;
DROP TABLE rj_arr;
DROP DOMAIN rj_pos, rj_nn;
