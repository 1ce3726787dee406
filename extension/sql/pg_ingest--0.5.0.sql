-- pg_ingest 0.5.0: source script of the current version (0.1.0 plus the upgrade scripts
-- pg_ingest--0.1.0--0.2.0.sql, pg_ingest--0.2.0--0.3.0.sql, pg_ingest--0.3.0--0.4.0.sql and
-- pg_ingest--0.4.0--0.5.0.sql; regress 22_upgrade checks that both give the same catalog).
\echo Use "CREATE EXTENSION pg_ingest" to load this file. \quit

-- The schema "ingest" is created by CREATE EXTENSION (control file: schema = ingest), which
-- reuses one that exists. The background workers write the job catalog in it as a superuser,
-- so it must not be another role's: its owner could rename it and put a table of its own,
-- with triggers, in the catalog's place. (The library refuses such a catalog too.)
DO $$
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_namespace n
            JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
            WHERE n.nspname OPERATOR(pg_catalog.=) 'ingest') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'insufficient_privilege',
            MESSAGE = 'schema "ingest" exists and is owned by a role that is not a superuser',
            DETAIL = 'pg_ingest''s background workers write their job catalog in it as a superuser.',
            HINT = 'Drop the schema or, after checking its objects, make a superuser its owner; '
                   'then run CREATE EXTENSION pg_ingest again.';
    END IF;
END
$$;
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

CREATE FUNCTION @extschema@.version() RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ingest_version';
COMMENT ON FUNCTION @extschema@.version() IS 'version of the pg_ingest library';

-- Merge engine -------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.merge(
    source regclass, target regclass, conflict_mode text,
    conflict_columns text[] DEFAULT NULL, update_columns text[] DEFAULT NULL,
    OUT inserted bigint, OUT updated bigint, OUT skipped bigint, OUT rejected bigint)
    RETURNS record
    LANGUAGE c VOLATILE
    -- No SET search_path: the INSERT ... ON CONFLICT it runs fires the caller's triggers,
    -- defaults and CHECK functions, which must resolve names as they would for the caller (and
    -- as under COPY ON CONFLICT). Every name in the statement it builds is schema-qualified.
    AS 'MODULE_PATHNAME', 'ingest_merge';
COMMENT ON FUNCTION @extschema@.merge(regclass, regclass, text, text[], text[]) IS
    'apply the rows of source to target with a conflict mode (upsert, update, ignore, strict)';

CREATE FUNCTION @extschema@.last_copy_stats(
    OUT inserted bigint, OUT updated bigint, OUT skipped bigint, OUT rejected bigint)
    RETURNS record
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ingest_last_copy_stats';
COMMENT ON FUNCTION @extschema@.last_copy_stats() IS
    'counts of the session''s last COPY ON CONFLICT';

CREATE FUNCTION @extschema@.last_copy_rejects(
    OUT line_number bigint, OUT raw_line text, OUT sqlstate text, OUT message text)
    RETURNS SETOF record
    LANGUAGE c VOLATILE ROWS 100
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ingest_last_copy_rejects';
COMMENT ON FUNCTION @extschema@.last_copy_rejects() IS
    'rows rejected by the session''s last COPY ON CONFLICT with ON_ERROR ''ignore''';

-- Internal: the merge statements read their rows from here. Only the running merge of the
-- calling session can serve rows, so EXECUTE stays with PUBLIC (every loading role needs it).
CREATE FUNCTION @extschema@._merge_rows(handle integer) RETURNS SETOF record
    LANGUAGE c VOLATILE STRICT ROWS 10000
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ingest_merge_rows';
COMMENT ON FUNCTION @extschema@._merge_rows(integer) IS 'internal to the merge engine';

-- Internal: counts upsert conflicts; called per updated row, so no SET clause (it resolves no
-- names and runs no SQL).
CREATE FUNCTION @extschema@._merge_note_conflict() RETURNS boolean
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'ingest_merge_note_conflict';
COMMENT ON FUNCTION @extschema@._merge_note_conflict() IS 'internal to the merge engine';


-- Members see all jobs and may control them (cancel, retry); see the README ("Async load jobs").
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'ingest_admin') THEN
        CREATE ROLE ingest_admin NOLOGIN;
    END IF;
END
$$;

CREATE TYPE @extschema@.job_state AS ENUM ('INIT', 'READY', 'LOADING', 'FINISH', 'FAIL', 'CANCEL');

-- Staging tables live here, one per job, owned by the extension owner; the job owner gets
-- INSERT/SELECT/DELETE/TRUNCATE until submit, SELECT afterwards. Nobody else gets anything.
CREATE SCHEMA ingest_staging;
REVOKE ALL ON SCHEMA ingest_staging FROM PUBLIC;
GRANT USAGE ON SCHEMA ingest_staging TO PUBLIC;

CREATE TABLE @extschema@.async_load_job (
    id                  bigserial PRIMARY KEY,
    job_key             text,
    owner               regrole NOT NULL,
    target              regclass NOT NULL,
    state               @extschema@.job_state NOT NULL DEFAULT 'INIT',
    conflict_mode       text NOT NULL
        CHECK (conflict_mode IN ('none', 'upsert', 'update', 'ignore', 'strict')),
    conflict_columns    text[],
    update_columns      text[],
    overwrite           text NOT NULL DEFAULT 'none'
        CHECK (overwrite IN ('none', 'table', 'partition')),
    overwrite_partition regclass,
    exception_mode      text NOT NULL DEFAULT 'strict'
        CHECK (exception_mode IN ('strict', 'ignore')),
    reject_limit        bigint CHECK (reject_limit >= 0),
    keep_staging        boolean NOT NULL DEFAULT false,
    -- the columns staged and loaded (NULL: every insertable column); the rest get defaults
    columns             text[],
    staging             regclass,
    rows_staged         bigint,
    bytes_staged        bigint,
    rows_inserted       bigint NOT NULL DEFAULT 0,
    rows_updated        bigint NOT NULL DEFAULT 0,
    rows_skipped        bigint NOT NULL DEFAULT 0,
    rows_rejected       bigint NOT NULL DEFAULT 0,
    attempts            integer NOT NULL DEFAULT 0,
    error_sqlstate      text,
    error_message       text,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    submitted_at        timestamptz,
    started_at          timestamptz,
    finished_at         timestamptz,
    worker_pid          integer,
    -- Position in the apply queue of its target (submission order; a retry queues again).
    queue_position      bigint,
    -- The installation (ingest.installation) the job was begun, submitted or resumed in. A job
    -- of another one was restored from a dump: workers leave it alone until
    -- ingest.resume_restored_jobs(). No default: a dump of 0.4.0 or earlier has no such column,
    -- and its jobs must not become this installation's by themselves either.
    installation        uuid,
    UNIQUE (owner, job_key),
    CHECK ((overwrite = 'partition') = (overwrite_partition IS NOT NULL))
);
CREATE INDEX async_load_job_queue ON @extschema@.async_load_job (queue_position)
    WHERE state IN ('READY', 'LOADING');
CREATE INDEX async_load_job_finished ON @extschema@.async_load_job (finished_at);
COMMENT ON TABLE @extschema@.async_load_job IS
    'async load jobs; written only by the pg_ingest functions and workers';

CREATE TABLE @extschema@.async_load_reject (
    job_id      bigint NOT NULL REFERENCES @extschema@.async_load_job (id) ON DELETE CASCADE,
    row_number  bigint NOT NULL,
    raw_row     text,
    sqlstate    text NOT NULL,
    message     text NOT NULL,
    PRIMARY KEY (job_id, row_number)
);
COMMENT ON TABLE @extschema@.async_load_reject IS
    'rows of async load jobs rejected under exception_mode ''ignore''';

-- Only the functions (as the extension owner) write; roles read their own jobs.
REVOKE ALL ON @extschema@.async_load_job, @extschema@.async_load_reject FROM PUBLIC;
GRANT SELECT ON @extschema@.async_load_job, @extschema@.async_load_reject TO PUBLIC;
ALTER TABLE @extschema@.async_load_job ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.async_load_reject ENABLE ROW LEVEL SECURITY;
-- ingest_admin is looked up by name in pg_roles, never cast: the role is cluster-wide and may
-- be dropped, which must not make the table unreadable (pg_has_role('ingest_admin', ...)
-- fails when the role does not exist).
CREATE POLICY own_jobs ON @extschema@.async_load_job FOR SELECT
    USING (pg_catalog.pg_has_role(owner, 'USAGE')
           OR EXISTS (SELECT FROM pg_catalog.pg_roles r
                       WHERE r.rolname OPERATOR(pg_catalog.=) 'ingest_admin'
                         AND pg_catalog.pg_has_role(r.oid, 'USAGE')));
CREATE POLICY own_rejects ON @extschema@.async_load_reject FOR SELECT
    USING (EXISTS (SELECT FROM @extschema@.async_load_job j WHERE j.id = job_id));

SELECT pg_catalog.pg_extension_config_dump('@extschema@.async_load_job', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.async_load_job_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.async_load_reject', '');

CREATE SEQUENCE @extschema@.async_load_queue_seq;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.async_load_queue_seq', '');

-- This installation of pg_ingest: one row, a random id made by CREATE EXTENSION. Deliberately
-- not registered with pg_extension_config_dump, so pg_dump leaves it out and a restore gets a
-- new id from its own CREATE EXTENSION, while the job table keeps the id each job was begun
-- under: restored jobs are told from this installation's, and workers leave them alone (a
-- restore loads the job table before the targets' data, keys and privileges, and before the
-- staging tables' rows) until ingest.resume_restored_jobs().
CREATE TABLE @extschema@.installation (id uuid PRIMARY KEY);
INSERT INTO @extschema@.installation VALUES (pg_catalog.gen_random_uuid());
COMMENT ON TABLE @extschema@.installation IS
    'the id of this installation of pg_ingest (not dumped: a restore makes a new one)';
REVOKE ALL ON @extschema@.installation FROM PUBLIC;
GRANT SELECT ON @extschema@.installation TO PUBLIC;

CREATE FUNCTION @extschema@.begin_async_load(
    target regclass,
    conflict_mode text DEFAULT 'upsert',
    conflict_columns text[] DEFAULT NULL,
    update_columns text[] DEFAULT NULL,
    job_key text DEFAULT NULL,
    overwrite text DEFAULT 'none',
    overwrite_partition regclass DEFAULT NULL,
    exception_mode text DEFAULT 'strict',
    reject_limit bigint DEFAULT NULL,
    keep_staging boolean DEFAULT false,
    columns text[] DEFAULT NULL,
    ordered boolean DEFAULT false,
    OUT id bigint, OUT staging regclass, OUT state @extschema@.job_state)
    RETURNS record
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ingest_begin_async_load';
COMMENT ON FUNCTION @extschema@.begin_async_load(regclass, text, text[], text[], text, text,
    regclass, text, bigint, boolean, text[], boolean) IS
    'create an async load job (INIT) and its staging table, or return the job with this job_key';

CREATE FUNCTION @extschema@.submit_async_load(id bigint) RETURNS @extschema@.job_state
    LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ingest_submit_async_load';
COMMENT ON FUNCTION @extschema@.submit_async_load(bigint) IS
    'hand a staged job to the workers (INIT -> READY)';

CREATE FUNCTION @extschema@.cancel_async_load(id bigint) RETURNS @extschema@.job_state
    LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ingest_cancel_async_load';
COMMENT ON FUNCTION @extschema@.cancel_async_load(bigint) IS
    'cancel a job that has not ended; a LOADING job is rolled back';

CREATE FUNCTION @extschema@.retry_async_load(id bigint) RETURNS @extschema@.job_state
    LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ingest_retry_async_load';
COMMENT ON FUNCTION @extschema@.retry_async_load(bigint) IS 'queue a failed job again (FAIL -> READY)';

CREATE FUNCTION @extschema@.wait_async_load(id bigint, timeout interval DEFAULT NULL)
    RETURNS @extschema@.job_state
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ingest_wait_async_load';
COMMENT ON FUNCTION @extschema@.wait_async_load(bigint, interval) IS
    'wait until the job ends (or the timeout passes) and return its state';

-- Live progress of a LOADING job (rows applied so far by its worker); NULL when not loading here.
CREATE FUNCTION @extschema@._job_rows_applied(id bigint) RETURNS bigint
    LANGUAGE c VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ingest_job_rows_applied';

CREATE FUNCTION @extschema@.get_async_load_job()
    RETURNS TABLE (
        id bigint, job_key text, owner regrole, target regclass, state @extschema@.job_state,
        conflict_mode text, conflict_columns text[], update_columns text[], overwrite text,
        overwrite_partition regclass, exception_mode text, reject_limit bigint,
        keep_staging boolean, columns text[], staging regclass, rows_staged bigint, bytes_staged bigint,
        rows_inserted bigint, rows_updated bigint, rows_skipped bigint, rows_rejected bigint,
        attempts integer, error_sqlstate text, error_message text, created_at timestamptz,
        submitted_at timestamptz, started_at timestamptz, finished_at timestamptz,
        worker_pid integer, rows_applied bigint, restored boolean)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT j.id, j.job_key, j.owner, j.target, j.state, j.conflict_mode, j.conflict_columns,
               j.update_columns, j.overwrite, j.overwrite_partition, j.exception_mode,
               j.reject_limit, j.keep_staging, j.columns, j.staging, j.rows_staged, j.bytes_staged,
               j.rows_inserted, j.rows_updated, j.rows_skipped, j.rows_rejected, j.attempts,
               j.error_sqlstate, j.error_message, j.created_at, j.submitted_at, j.started_at,
               j.finished_at, j.worker_pid,
               CASE j.state
                   WHEN 'LOADING' THEN
                       coalesce(@extschema@._job_rows_applied(j.id), 0)
                   WHEN 'FINISH' THEN j.rows_inserted OPERATOR(pg_catalog.+) j.rows_updated
                   ELSE 0
               END,
               -- restored: begun in another installation (NULL: dumped before 0.5.0)
               NOT coalesce(j.installation OPERATOR(pg_catalog.=)
                            (SELECT pg_catalog.md5(pg_catalog.concat(i.id, ':', d.oid))::pg_catalog.uuid
                             FROM @extschema@.installation i, pg_catalog.pg_database d
                            WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()), false)
        FROM @extschema@.async_load_job j
        ORDER BY j.id
    $$;
COMMENT ON FUNCTION @extschema@.get_async_load_job() IS
    'the caller''s async load jobs (all jobs for ingest_admin), with live progress';

CREATE FUNCTION @extschema@.get_async_load_job(job_id bigint)
    RETURNS TABLE (
        id bigint, job_key text, owner regrole, target regclass, state @extschema@.job_state,
        conflict_mode text, conflict_columns text[], update_columns text[], overwrite text,
        overwrite_partition regclass, exception_mode text, reject_limit bigint,
        keep_staging boolean, columns text[], staging regclass, rows_staged bigint, bytes_staged bigint,
        rows_inserted bigint, rows_updated bigint, rows_skipped bigint, rows_rejected bigint,
        attempts integer, error_sqlstate text, error_message text, created_at timestamptz,
        submitted_at timestamptz, started_at timestamptz, finished_at timestamptz,
        worker_pid integer, rows_applied bigint, restored boolean)
    LANGUAGE plpgsql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        RETURN QUERY SELECT * FROM @extschema@.get_async_load_job() g WHERE g.id = job_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'async load job % does not exist', job_id
                USING ERRCODE = 'undefined_object',
                      HINT = 'ingest.get_async_load_job() lists the jobs you can see.';
        END IF;
    END
    $$;
COMMENT ON FUNCTION @extschema@.get_async_load_job(bigint) IS
    'one async load job with live progress; 42704 when it does not exist or is not yours';

CREATE FUNCTION @extschema@.resume_restored_jobs() RETURNS bigint
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ingest_resume_restored_jobs';
COMMENT ON FUNCTION @extschema@.resume_restored_jobs() IS
    'hand the caller''s jobs restored from a dump (every one for ingest_admin) to this '
    'installation''s workers; returns how many';

-- Internal: tells the async load launcher, when the transaction commits, that this database has
-- pg_ingest, so that its workers visit it (and report jobs restored from a dump) without
-- waiting for a first submit.
CREATE FUNCTION @extschema@._watch_database() RETURNS void
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ingest_watch_database';
REVOKE ALL ON FUNCTION @extschema@._watch_database() FROM PUBLIC;
SELECT @extschema@._watch_database();
