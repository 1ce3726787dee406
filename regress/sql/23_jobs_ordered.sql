-- Ordered staging: begin_async_load(ordered => true) numbers staged rows by the session's
-- ingest.stage_chunk and the order each session staged them, and the job applies them in that
-- order, whatever order the chunks arrived in (loaders stage chunks over several connections).
CREATE EXTENSION IF NOT EXISTS pg_ingest;
\set VERBOSITY default
SET client_min_messages = warning;

-- the upgrade to 0.4.0 replaces begin_async_load (a new parameter): the privileges a site set
-- on the old one carry over
DROP EXTENSION pg_ingest CASCADE;
CREATE EXTENSION pg_ingest VERSION '0.3.0';
CREATE ROLE regress_ord_loader;
CREATE ROLE regress_ord_other;
REVOKE EXECUTE ON FUNCTION ingest.begin_async_load(regclass, text, text[], text[], text, text,
    regclass, text, bigint, boolean, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ingest.begin_async_load(regclass, text, text[], text[], text, text,
    regclass, text, bigint, boolean, text[]) TO regress_ord_loader;
ALTER EXTENSION pg_ingest UPDATE TO '0.4.0';
SELECT r AS role, has_function_privilege(r, 'ingest.begin_async_load(regclass, text, text[],
    text[], text, text, regclass, text, bigint, boolean, text[], boolean)', 'EXECUTE')
  FROM unnest(ARRAY['regress_ord_loader', 'regress_ord_other']) r;
-- they are the site's, not the extension's initial privileges (which pg_dump leaves out)
SELECT count(*) AS init_privs FROM pg_init_privs
 WHERE objoid = 'ingest.begin_async_load(regclass, text, text[], text[], text, text, regclass,
    text, bigint, boolean, text[], boolean)'::regprocedure;
-- untouched privileges stay the default: everyone
DROP EXTENSION pg_ingest CASCADE;
CREATE EXTENSION pg_ingest VERSION '0.3.0';
ALTER EXTENSION pg_ingest UPDATE TO '0.4.0';
SELECT has_function_privilege('regress_ord_other', 'ingest.begin_async_load(regclass, text, text[],
    text[], text, text, regclass, text, bigint, boolean, text[], boolean)', 'EXECUTE');
DROP EXTENSION pg_ingest CASCADE;
CREATE EXTENSION pg_ingest;

CREATE TABLE ord (id int PRIMARY KEY, qty int CHECK (qty >= 0), note text);
SHOW ingest.stage_chunk;

-- the staging table has the loaded columns, then the two order columns
SELECT id AS j1, staging AS s1 FROM ingest.begin_async_load('ord', ordered => true) \gset
SELECT attname, format_type(atttypid, atttypmod), attidentity, pg_get_expr(adbin, adrelid) AS default
  FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
 WHERE attrelid = :'s1'::regclass AND attnum > 0 ORDER BY attnum;

-- chunk 2 arrives before chunk 1, chunk 3 last; within a chunk the later row wins
SELECT set_config('ingest.stage_chunk', '2', false);
INSERT INTO :s1 (id, qty, note) VALUES (10, 2, 'chunk 2'), (13, 2, 'chunk 2');
SELECT set_config('ingest.stage_chunk', '1', false);
INSERT INTO :s1 (id, qty, note) VALUES (10, 1, 'chunk 1'), (11, 1, 'chunk 1'), (12, 1, 'a');
COPY :s1 (id, qty, note) FROM STDIN;
12	1	b
\.
SELECT set_config('ingest.stage_chunk', '3', false);
INSERT INTO :s1 (id, qty, note) VALUES (11, 3, 'chunk 3');
SELECT ingest.submit_async_load(:j1);
SELECT ingest.wait_async_load(:j1, '60 s');
SELECT state, rows_staged, rows_inserted, rows_updated FROM ingest.get_async_load_job(:j1);
SELECT * FROM ord ORDER BY id;

-- the same rows staged into an unordered table: the row staged last wins instead
TRUNCATE ord;
SELECT id AS j2, staging AS s2 FROM ingest.begin_async_load('ord') \gset
INSERT INTO :s2 (id, qty, note) VALUES (10, 2, 'chunk 2'), (13, 2, 'chunk 2');
INSERT INTO :s2 (id, qty, note) VALUES (10, 1, 'chunk 1'), (11, 1, 'chunk 1'), (12, 1, 'a');
INSERT INTO :s2 (id, qty, note) VALUES (12, 1, 'b');
INSERT INTO :s2 (id, qty, note) VALUES (11, 3, 'chunk 3');
SELECT ingest.submit_async_load(:j2);
SELECT ingest.wait_async_load(:j2, '60 s');
SELECT * FROM ord ORDER BY id;

-- ignore (DO NOTHING): the first row in order wins, though it was staged last
TRUNCATE ord;
SELECT id AS j3, staging AS s3 FROM ingest.begin_async_load('ord', 'ignore', ordered => true) \gset
SELECT set_config('ingest.stage_chunk', '2', false);
INSERT INTO :s3 (id, note) VALUES (20, 'chunk 2');
SELECT set_config('ingest.stage_chunk', '1', false);
INSERT INTO :s3 (id, note) VALUES (20, 'chunk 1');
SELECT ingest.submit_async_load(:j3);
SELECT ingest.wait_async_load(:j3, '60 s');
SELECT * FROM ord ORDER BY id;

-- rejects are numbered in that order too
TRUNCATE ord;
SELECT id AS j4, staging AS s4
  FROM ingest.begin_async_load('ord', 'none', exception_mode => 'ignore', ordered => true) \gset
SELECT set_config('ingest.stage_chunk', '2', false);
INSERT INTO :s4 (id, qty) VALUES (31, 1), (32, -2);
SELECT set_config('ingest.stage_chunk', '1', false);
INSERT INTO :s4 (id, qty) VALUES (30, -1);
SELECT ingest.submit_async_load(:j4);
SELECT ingest.wait_async_load(:j4, '60 s');
SELECT row_number, raw_row, sqlstate FROM ingest.async_load_reject WHERE job_id = :j4
 ORDER BY row_number;
SELECT * FROM ord ORDER BY id;

-- a strict append ignores the order columns (order cannot change its outcome)
SELECT id AS j5, staging AS s5 FROM ingest.begin_async_load('ord', 'none', ordered => true) \gset
INSERT INTO :s5 (id, qty) VALUES (40, 4);
SELECT ingest.submit_async_load(:j5);
SELECT ingest.wait_async_load(:j5, '60 s');
SELECT * FROM ord WHERE id = 40;

-- a caller with only the privileges a load needs stages in order too (the order columns'
-- default and identity need nothing more)
GRANT SELECT, INSERT, UPDATE ON ord TO regress_ord_loader;
TRUNCATE ord;
SET ROLE regress_ord_loader;
SELECT id AS j7, staging AS s7 FROM ingest.begin_async_load('ord', ordered => true) \gset
SELECT set_config('ingest.stage_chunk', '2', false);
INSERT INTO :s7 (id, note) VALUES (50, 'chunk 2');
SELECT set_config('ingest.stage_chunk', '1', false);
COPY :s7 (id, note) FROM STDIN;
50	chunk 1
\.
TRUNCATE :s7;
INSERT INTO :s7 (id, note) VALUES (50, 'chunk 1 again');
SELECT set_config('ingest.stage_chunk', '2', false);
INSERT INTO :s7 (id, note) VALUES (50, 'chunk 2 again');
SELECT ingest.submit_async_load(:j7);
RESET ROLE;
SELECT ingest.wait_async_load(:j7, '60 s');
SELECT * FROM ord ORDER BY id;
REVOKE ALL ON ord FROM regress_ord_loader;

-- a loaded column with an order column's name is refused for ordered staging only
CREATE TABLE clash (id int PRIMARY KEY, _pg_ingest_row text);
SELECT ingest.begin_async_load('clash', ordered => true);
SELECT state FROM ingest.begin_async_load('clash', columns => '{id}', ordered => true);
SELECT state FROM ingest.begin_async_load('clash');
-- and that column, staged unordered, is loaded like any other
SELECT id AS j6, staging AS s6 FROM ingest.begin_async_load('clash', job_key => 'clash-1') \gset
INSERT INTO :s6 VALUES (1, 'kept');
SELECT ingest.submit_async_load(:j6);
SELECT ingest.wait_async_load(:j6, '60 s');
SELECT * FROM clash;

SELECT ingest.cancel_async_load(id) FROM ingest.get_async_load_job()
 WHERE state = 'INIT' AND target IN ('ord'::regclass, 'clash'::regclass);
DROP TABLE ord, clash;
DROP ROLE regress_ord_loader, regress_ord_other;
