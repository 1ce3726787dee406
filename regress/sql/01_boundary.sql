-- The C++/PostgreSQL error boundary. The test-only functions are not part of the extension:
-- they are declared here from the library.
CREATE SCHEMA ingest_test;
CREATE FUNCTION ingest_test.throw(kind text) RETURNS void
    LANGUAGE c STRICT AS 'pg_ingest_test', 'pgi_test_throw';
CREATE FUNCTION ingest_test.destroyed() RETURNS bigint
    LANGUAGE c STRICT AS 'pg_ingest_test', 'pgi_test_destroyed';
CREATE FUNCTION ingest_test.run_sql(sql text) RETURNS void
    LANGUAGE c STRICT AS 'pg_ingest_test', 'pgi_test_run_sql';
CREATE FUNCTION ingest_test.recover(sql text) RETURNS text
    LANGUAGE c STRICT AS 'pg_ingest_test', 'pgi_test_recover';
CREATE FUNCTION ingest_test.recover_failed_commit(sql text) RETURNS text
    LANGUAGE c STRICT AS 'pg_ingest_test', 'pgi_test_recover_failed_commit';

-- Runs a statement and shows what reached the client: SQLSTATE, message, detail and hint.
CREATE FUNCTION ingest_test.err(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE st text; msg text; det text; hnt text; con text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                            hnt = PG_EXCEPTION_HINT, con = CONSTRAINT_NAME;
    RETURN concat_ws(' | ', st, msg, nullif(det, ''), nullif(hnt, ''), nullif(con, ''));
END $f$;

-- no exception: returns normally
SELECT ingest_test.err($$SELECT ingest_test.throw('none')$$);
-- our own error keeps its SQLSTATE, detail and hint (22023 invalid_parameter_value)
SELECT ingest_test.err($$SELECT ingest_test.throw('server_error')$$);
-- std::bad_alloc maps to out_of_memory (53200)
SELECT ingest_test.err($$SELECT ingest_test.throw('bad_alloc')$$);
-- any other std::exception maps to internal_error (XX000) with its message
SELECT ingest_test.err($$SELECT ingest_test.throw('runtime_error')$$);
-- a non-std exception too
SELECT ingest_test.err($$SELECT ingest_test.throw('unknown')$$);
-- a PostgreSQL error raised inside C++ code comes back unchanged (22012 with detail and hint)
SELECT ingest_test.err($$SELECT ingest_test.throw('pg_error')$$);
-- ... from SQL run inside C++ code too, whatever its SQLSTATE, detail and hint
SELECT ingest_test.err($q$SELECT ingest_test.run_sql($r$DO $b$ BEGIN RAISE EXCEPTION 'custom failure' USING ERRCODE = 'P0099', DETAIL = 'custom detail', HINT = 'custom hint'; END $b$ $r$)$q$);
CREATE TABLE ingest_test.u (k int PRIMARY KEY);
INSERT INTO ingest_test.u VALUES (1);
SELECT ingest_test.err($$SELECT ingest_test.run_sql('INSERT INTO ingest_test.u VALUES (1)')$$);

-- destructors of live C++ objects ran on every error path above
SELECT ingest_test.destroyed() AS before \gset
SELECT ingest_test.throw('pg_error');
SELECT ingest_test.run_sql('SELECT 1/0');
SELECT ingest_test.throw('runtime_error');
SELECT ingest_test.destroyed() - :before AS destroyed_during_errors;

-- the backend keeps working: the next query in the same session succeeds
SELECT 1 AS still_alive;

-- a C++ exception thrown inside pg_call (under PG_TRY) is 53200, and PostgreSQL's error
-- handler is restored: the errors that follow in this session are reported, not a crash
SELECT ingest_test.err($$SELECT ingest_test.throw('bad_alloc_in_pg_call')$$);
SELECT ingest_test.throw('bad_alloc_in_pg_call');
SELECT 1/0;
SELECT ingest_test.err('SELECT 1/0');
SELECT 2 AS still_alive;

-- recovering inside C++ (subtransaction) lets the caller's transaction go on
BEGIN;
INSERT INTO ingest_test.u VALUES (2);
SELECT ingest_test.recover('INSERT INTO ingest_test.u VALUES (3), (2)');
SELECT ingest_test.recover('SELECT 1');
INSERT INTO ingest_test.u VALUES (4);
COMMIT;
SELECT k FROM ingest_test.u ORDER BY k;

-- a subtransaction whose commit fails is rolled back (5 is not kept), and the caller's
-- transaction goes on
BEGIN;
SELECT ingest_test.recover_failed_commit('INSERT INTO ingest_test.u VALUES (5)');
INSERT INTO ingest_test.u VALUES (6);
COMMIT;
SELECT k FROM ingest_test.u ORDER BY k;

DROP SCHEMA ingest_test CASCADE;
