-- Async load jobs and roles: a role sees and controls only its own jobs (ingest_admin sees
-- all), workers apply as the owner with the owner's privileges at apply time, and nobody
-- reads another role's staging table or writes the job catalog directly.
CREATE EXTENSION IF NOT EXISTS pg_ingest;
SET client_min_messages = warning;
CREATE ROLE pgi_alice;
CREATE ROLE pgi_bob;
CREATE ROLE pgi_boss IN ROLE ingest_admin;
CREATE TABLE sec_t (id int PRIMARY KEY, v text);
GRANT SELECT, INSERT, UPDATE ON sec_t TO pgi_alice;
GRANT SELECT ON sec_t TO pgi_bob;

SET ROLE pgi_alice;
SELECT id AS a1, staging AS as1 FROM ingest.begin_async_load('sec_t', job_key => 'x') \gset
INSERT INTO :as1 VALUES (1, 'alice');

-- bob sees nothing of alice's and cannot touch her job or its staging
SET ROLE pgi_bob;
SELECT count(*) FROM ingest.get_async_load_job();
SELECT count(*) FROM ingest.async_load_job;
SELECT ingest.submit_async_load(:a1);
SELECT ingest.cancel_async_load(:a1);
SELECT ingest.get_async_load_job(:a1);
SELECT * FROM :as1;
INSERT INTO :as1 VALUES (2, 'bob');
-- the same job key is bob's own namespace; without INSERT on the target he cannot begin
SELECT * FROM ingest.begin_async_load('sec_t', job_key => 'x');
-- nobody writes the catalog directly
INSERT INTO ingest.async_load_job (owner, target, conflict_mode) VALUES ('pgi_bob', 'sec_t', 'none');
UPDATE ingest.async_load_job SET state = 'READY';
DELETE FROM ingest.async_load_reject;

-- after submit the owner cannot add to staging (rows added later could never be applied)
SET ROLE pgi_alice;
SELECT ingest.submit_async_load(:a1);
INSERT INTO :as1 VALUES (3, 'late');
SELECT ingest.wait_async_load(:a1, '60 s');
SELECT state, rows_inserted FROM ingest.get_async_load_job(:a1);

-- the admin role sees and controls every job
SET ROLE pgi_boss;
SELECT count(*) FROM ingest.get_async_load_job() WHERE owner = 'pgi_alice'::regrole;
RESET ROLE;
-- ... it cancels alice's job, which bob cannot (42704, as for an id that does not exist)
SET ROLE pgi_alice;
SELECT id AS a8 FROM ingest.begin_async_load('sec_t') \gset
SET ROLE pgi_bob;
\set VERBOSITY sqlstate
SELECT ingest.cancel_async_load(:a8);
\set VERBOSITY default
SET ROLE pgi_boss;
SELECT ingest.cancel_async_load(:a8);
SET ROLE pgi_alice;
SELECT state, staging IS NULL AS staging_dropped FROM ingest.get_async_load_job(:a8);
RESET ROLE;

-- privileges are checked again when the job runs: revoked after begin -> FAIL with 42501
SET ROLE pgi_alice;
SELECT id AS a2, staging AS as2 FROM ingest.begin_async_load('sec_t') \gset
INSERT INTO :as2 VALUES (1, 'upsert me');
RESET ROLE;
REVOKE UPDATE ON sec_t FROM pgi_alice;
SET ROLE pgi_alice;
SELECT ingest.submit_async_load(:a2);
SELECT ingest.wait_async_load(:a2, '60 s');
SELECT state, error_sqlstate, error_message FROM ingest.get_async_load_job(:a2);
-- without UPDATE on the target alice cannot begin an upsert job (42501); an 'ignore' one needs
-- only INSERT
\set VERBOSITY sqlstate
SELECT * FROM ingest.begin_async_load('sec_t');
SELECT * FROM ingest.begin_async_load('sec_t', 'update');
\set VERBOSITY default
BEGIN;
SELECT state FROM ingest.begin_async_load('sec_t', 'ignore');
ROLLBACK;
-- another ordinary role can neither retry nor wait on her failed job: 42704, the same as for an
-- id that does not exist
SET ROLE pgi_bob;
\set VERBOSITY sqlstate
SELECT ingest.retry_async_load(:a2);
SELECT ingest.wait_async_load(:a2, '0');
SELECT ingest.wait_async_load(:a1);
SELECT ingest.retry_async_load(-1);
SELECT ingest.wait_async_load(-1, '0');
\set VERBOSITY default
-- the admin role retries it and waits for it (it fails again: alice still lacks UPDATE)
SET ROLE pgi_boss;
SELECT ingest.retry_async_load(:a2);
SELECT ingest.wait_async_load(:a2, '60 s');
SET ROLE pgi_alice;
SELECT state, attempts, error_sqlstate FROM ingest.get_async_load_job(:a2);
RESET ROLE;

-- a job writes only where its owner could: row-level security applies to the worker
ALTER TABLE sec_t ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON sec_t TO pgi_alice USING (v = 'alice') WITH CHECK (v = 'alice');
SET ROLE pgi_alice;
SELECT id AS a3, staging AS as3 FROM ingest.begin_async_load('sec_t', 'ignore') \gset
INSERT INTO :as3 VALUES (10, 'alice'), (11, 'mallory');
SELECT ingest.submit_async_load(:a3);
SELECT ingest.wait_async_load(:a3, '60 s');
SELECT state, error_sqlstate FROM ingest.get_async_load_job(:a3);
RESET ROLE;
SELECT * FROM sec_t ORDER BY id;

-- a job of a role that is not a superuser records its rejects (with the worker's own identity:
-- the job's owner may only read them)
CREATE TABLE sec_r (id bigint PRIMARY KEY, n int CHECK (n > 0));
GRANT SELECT, INSERT, UPDATE, TRIGGER ON sec_r TO pgi_alice;
SET ROLE pgi_alice;
SELECT id AS a4, staging AS as4 FROM ingest.begin_async_load('sec_r', exception_mode => 'ignore') \gset
INSERT INTO :as4 VALUES (1, 1), (2, -2), (3, 3);
SELECT ingest.submit_async_load(:a4);
SELECT ingest.wait_async_load(:a4, '60 s');
SELECT state, rows_inserted, rows_rejected, error_message FROM ingest.get_async_load_job(:a4);
SELECT row_number, sqlstate FROM ingest.async_load_reject WHERE job_id = :a4;
RESET ROLE;

-- ingest_admin is a cluster-wide role and may be dropped: the job catalog stays readable to
-- everyone (its policy named the role, which failed once it was gone), and a role created again
-- under that name sees all jobs. In a transaction rolled back: the cluster keeps its role.
BEGIN;
DROP ROLE ingest_admin;
SET ROLE pgi_alice;
SELECT count(*) > 0 AS sees_hers FROM ingest.async_load_job;
SELECT count(*) > 0 AS sees_hers FROM ingest.get_async_load_job();
SELECT ingest.wait_async_load(:a4, '0');
SELECT row_number FROM ingest.async_load_reject WHERE job_id = :a4;
SET ROLE pgi_bob;
SELECT count(*) FROM ingest.async_load_job;
SELECT count(*) FROM ingest.async_load_reject;
RESET ROLE;
CREATE ROLE ingest_admin NOLOGIN;
GRANT ingest_admin TO pgi_bob;
SET ROLE pgi_bob;
SELECT count(*) > 0 AS sees_alices FROM ingest.async_load_job WHERE owner = 'pgi_alice'::regrole;
SELECT count(*) AS rejects FROM ingest.async_load_reject WHERE job_id = :a4;
RESET ROLE;
ROLLBACK;

-- jobs restored from a dump (made to look so by hand: another installation's id) are resumed
-- by their owner, or by ingest_admin; nobody else sees or resumes them
SET ROLE pgi_alice;
SELECT id AS a6 FROM ingest.begin_async_load('sec_r') \gset
RESET ROLE;
SELECT id AS s6 FROM ingest.begin_async_load('sec_r') \gset
UPDATE ingest.async_load_job SET installation = gen_random_uuid() WHERE id IN (:a6, :s6);
SET ROLE pgi_bob;
SELECT ingest.resume_restored_jobs();
SET ROLE pgi_alice;
SELECT restored FROM ingest.get_async_load_job(:a6);
SELECT ingest.resume_restored_jobs();
SELECT restored FROM ingest.get_async_load_job(:a6);
SELECT count(*) FROM ingest.get_async_load_job() WHERE restored;
SET ROLE pgi_boss;
SELECT count(*) FROM ingest.get_async_load_job() WHERE restored;
SELECT ingest.resume_restored_jobs();
RESET ROLE;
SELECT count(*) FROM ingest.get_async_load_job() WHERE restored;
SELECT ingest.cancel_async_load(:a6), ingest.cancel_async_load(:s6);

-- the owner's code cannot steer the worker's own statements: a trigger that points
-- search_path at a schema holding its own bigint = operator reaches only code run as the owner
CREATE SCHEMA pgi_evil AUTHORIZATION pgi_alice;
CREATE TABLE pgi_evil_log (who text);
GRANT INSERT ON pgi_evil_log TO PUBLIC;
SET ROLE pgi_alice;
CREATE FUNCTION pgi_evil.eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.pgi_evil_log VALUES (current_user);
    RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR pgi_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = pgi_evil.eq);
CREATE FUNCTION pgi_evil.steer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pgi_evil, pg_catalog', false);
    RETURN NEW;
END $$;
CREATE TRIGGER steer BEFORE INSERT ON sec_r FOR EACH ROW EXECUTE FUNCTION pgi_evil.steer();
SELECT id AS a5, staging AS as5 FROM ingest.begin_async_load('sec_r', exception_mode => 'ignore') \gset
INSERT INTO :as5 VALUES (4, 4), (5, -5), (6, 6);
SELECT ingest.submit_async_load(:a5);
SELECT ingest.wait_async_load(:a5, '60 s');
SELECT state, rows_inserted, rows_rejected FROM ingest.get_async_load_job(:a5);
RESET ROLE;
SELECT count(*) AS not_as_owner FROM pgi_evil_log WHERE who <> 'pgi_alice';
SELECT id, n FROM sec_r ORDER BY id;
DROP TABLE sec_r, pgi_evil_log;
DROP SCHEMA pgi_evil CASCADE;

-- default privileges of the extension owner (here the role running these tests) do not reach
-- staging tables: only the job's owner has rights on one (nobody on an ordered one's sequence),
-- and after submit only to read it
ALTER DEFAULT PRIVILEGES GRANT SELECT, INSERT, UPDATE ON TABLES TO pgi_bob, PUBLIC;
ALTER DEFAULT PRIVILEGES GRANT USAGE, UPDATE ON SEQUENCES TO pgi_bob;
-- (a table's row type takes no default privileges ON TYPES: checked below as row_type)
ALTER DEFAULT PRIVILEGES GRANT USAGE ON TYPES TO pgi_bob;
SET ROLE pgi_alice;
SELECT id AS a7, staging AS as7 FROM ingest.begin_async_load('sec_t', 'ignore', ordered => true) \gset
INSERT INTO :as7 (id, v, _pg_ingest_chunk) VALUES (20, 'alice', 1);
SET ROLE pgi_bob;
SELECT count(*) FROM :as7;
INSERT INTO :as7 (id, v, _pg_ingest_chunk) VALUES (21, 'bob', 1);
RESET ROLE;
SELECT r AS role, has_table_privilege(r, :'as7', 'SELECT') AS sel,
       has_table_privilege(r, :'as7', 'INSERT') AS ins,
       has_table_privilege(r, :'as7', 'UPDATE') AS upd,
       has_sequence_privilege(r, pg_get_serial_sequence(:'as7', '_pg_ingest_row'),
                              'USAGE, UPDATE') AS seq,
       has_type_privilege(r, (SELECT reltype FROM pg_class WHERE oid = :'as7'::regclass),
                          'USAGE') AS row_type
  FROM unnest('{pgi_alice,pgi_bob,pgi_boss}'::text[]) r;
-- a grant made since begin goes at submit (checked before the submit commits: after that a
-- worker may finish the job and drop the table at any moment)
GRANT SELECT, INSERT ON :as7 TO pgi_bob;
BEGIN;
SET LOCAL ROLE pgi_alice;
SELECT ingest.submit_async_load(:a7);
RESET ROLE;
SELECT r AS role, has_table_privilege(r, :'as7', 'SELECT') AS sel,
       has_table_privilege(r, :'as7', 'INSERT') AS ins
  FROM unnest('{pgi_alice,pgi_bob}'::text[]) r;
COMMIT;
SELECT ingest.wait_async_load(:a7, '60 s');
SELECT state, error_sqlstate, error_message FROM ingest.get_async_load_job(:a7);
SELECT id, v FROM sec_t WHERE id = 20;
ALTER DEFAULT PRIVILEGES REVOKE ALL ON TABLES FROM pgi_bob, PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE ALL ON SEQUENCES FROM pgi_bob;
ALTER DEFAULT PRIVILEGES REVOKE ALL ON TYPES FROM pgi_bob;

-- a table in a schema alice has no USAGE on is out of her reach, also named by OID: begin
-- refuses it (42501, checked before the table is locked), and a job begun while she had
-- USAGE fails when applied after USAGE was revoked, on the direct path (a plain table) as on
-- the statement path; the table keeps its rows
CREATE SCHEMA pgi_hidden;
CREATE TABLE pgi_hidden.t (id int PRIMARY KEY, v text);
INSERT INTO pgi_hidden.t VALUES (1, 'orig');
GRANT SELECT, INSERT, UPDATE ON pgi_hidden.t TO pgi_alice;
SELECT 'pgi_hidden.t'::regclass::oid AS hidden_oid \gset
SET ROLE pgi_alice;
\set VERBOSITY sqlstate
SELECT * FROM ingest.begin_async_load(:hidden_oid::oid::regclass, 'upsert');
\set VERBOSITY default
RESET ROLE;
GRANT USAGE ON SCHEMA pgi_hidden TO pgi_alice;
SET ROLE pgi_alice;
SELECT id AS h1, staging AS hs1 FROM ingest.begin_async_load(:hidden_oid::oid::regclass, 'upsert') \gset
INSERT INTO :hs1 VALUES (1, 'overwritten'), (3, 'new');
SELECT id AS h2, staging AS hs2 FROM ingest.begin_async_load(:hidden_oid::oid::regclass, 'update') \gset
INSERT INTO :hs2 VALUES (1, 'updated');
RESET ROLE;
REVOKE USAGE ON SCHEMA pgi_hidden FROM pgi_alice;
SET ROLE pgi_alice;
SELECT ingest.submit_async_load(:h1), ingest.submit_async_load(:h2);
SELECT ingest.wait_async_load(:h1, '60 s'), ingest.wait_async_load(:h2, '60 s');
SELECT id = :h1 AS upsert_job, state, error_sqlstate, error_message
  FROM ingest.get_async_load_job() WHERE id IN (:h1, :h2) ORDER BY id;
RESET ROLE;
SELECT * FROM pgi_hidden.t ORDER BY id;
DROP SCHEMA pgi_hidden CASCADE;

-- a staging table goes into the database's default tablespace, whatever the caller's
-- default_tablespace says (it is created by the extension's owner, for the caller to fill)
SET ROLE pgi_alice;
SET default_tablespace = pg_global;
SELECT id AS t1, staging AS ts1 FROM ingest.begin_async_load('sec_t', 'ignore') \gset
RESET default_tablespace;
RESET ROLE;
SELECT reltablespace = 0 AS database_default FROM pg_class WHERE oid = :'ts1'::regclass;
SELECT ingest.cancel_async_load(:t1);

-- nobody else may build on a staging table's row type (a column or an argument of that type
-- would keep the table from being dropped when its job ends)
CREATE TABLE sec_pin (id int PRIMARY KEY);
GRANT SELECT, INSERT ON sec_pin TO pgi_alice;
SET ROLE pgi_alice;
SELECT id AS r1, staging AS rs1 FROM ingest.begin_async_load('sec_pin') \gset
SET ROLE pgi_bob;
CREATE TEMP TABLE pin (x :rs1);
CREATE FUNCTION pg_temp.pin(x :rs1) RETURNS int LANGUAGE sql AS 'SELECT 1';
-- a view on it (here the superuser's) does not keep the job from ending: the table is kept
-- with a WARNING saying why
RESET ROLE;
CREATE VIEW sec_pin_view AS SELECT * FROM :rs1;
SET client_min_messages = warning;
SELECT ingest.cancel_async_load(:r1);
SELECT state FROM ingest.get_async_load_job(:r1);
SELECT to_regclass(:'rs1') IS NOT NULL AS staging_kept;
DROP VIEW sec_pin_view;
DROP TABLE :rs1, sec_pin;

-- the job catalog must be the extension's, in a schema a superuser owns: the workers write it
-- as a superuser, and the schema's owner could put a table of its own in its place
ALTER SCHEMA ingest OWNER TO pgi_bob;
SET ROLE pgi_alice;
SELECT * FROM ingest.begin_async_load('sec_t');
RESET ROLE;
ALTER SCHEMA ingest OWNER TO CURRENT_USER;
-- CREATE EXTENSION refuses a schema "ingest" that another role made beforehand
SELECT current_database() AS regress_db \gset
CREATE DATABASE pg_ingest_schema;
\c pg_ingest_schema
CREATE ROLE pgi_squatter;
CREATE SCHEMA ingest AUTHORIZATION pgi_squatter;
CREATE EXTENSION pg_ingest;
SELECT count(*) FROM pg_extension WHERE extname = 'pg_ingest';
DROP SCHEMA ingest;
CREATE EXTENSION pg_ingest;
SELECT extversion = ingest.version() AS installed FROM pg_extension WHERE extname = 'pg_ingest';
\c :regress_db
DROP DATABASE pg_ingest_schema;
DROP ROLE pgi_squatter;

-- a role whose jobs exist can still be dropped once its privileges are gone
DROP OWNED BY pgi_alice, pgi_bob, pgi_boss;
DROP ROLE pgi_alice, pgi_bob, pgi_boss;
