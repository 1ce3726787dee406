-- pg_ingest 0.4.0 -> 0.5.0
\echo Use "ALTER EXTENSION pg_ingest UPDATE TO '0.5.0'" to load this file. \quit

-- The policy on the job table looked ingest_admin up with pg_has_role('ingest_admin', ...),
-- which fails when the role does not exist: after DROP ROLE ingest_admin (the role is
-- cluster-wide) every other role's SELECT on the table failed. The role is looked up by name.
ALTER POLICY own_jobs ON @extschema@.async_load_job
    USING (pg_catalog.pg_has_role(owner, 'USAGE')
           OR EXISTS (SELECT FROM pg_catalog.pg_roles r
                       WHERE r.rolname OPERATOR(pg_catalog.=) 'ingest_admin'
                         AND pg_catalog.pg_has_role(r.oid, 'USAGE')));

-- Jobs restored from a dump must not run by themselves (a restore loads the job table before
-- the targets' data, keys and privileges, and before the staging tables' rows): each job
-- records the installation it belongs to, and workers leave the others alone until
-- ingest.resume_restored_jobs(). The jobs begun before this update are this installation's.
CREATE TABLE @extschema@.installation (id uuid PRIMARY KEY);
INSERT INTO @extschema@.installation VALUES (pg_catalog.gen_random_uuid());
COMMENT ON TABLE @extschema@.installation IS
    'the id of this installation of pg_ingest (not dumped: a restore makes a new one)';
REVOKE ALL ON @extschema@.installation FROM PUBLIC;
GRANT SELECT ON @extschema@.installation TO PUBLIC;
ALTER TABLE @extschema@.async_load_job ADD COLUMN installation uuid;
-- The id a job records is the installation's made particular to this database (see
-- job_catalog.cpp): databases copied from one template share ingest.installation's row.
UPDATE @extschema@.async_load_job
   SET installation = (SELECT pg_catalog.md5(pg_catalog.concat(i.id, ':', d.oid))::pg_catalog.uuid
                         FROM @extschema@.installation i, pg_catalog.pg_database d
                        WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database());

-- get_async_load_job() returns one more column, restored, so both forms are replaced: the
-- privileges a site gave or took on them are carried over, grant options and grantors included.
-- An object of the site's that uses them (a view) would be dropped with them: the update stops
-- and says which, rather than dropping it.
DO $upgrade$
DECLARE
    fn_all CONSTANT text := '@extschema@.get_async_load_job()';
    fn_one CONSTANT text := '@extschema@.get_async_load_job(bigint)';
    dependents text;
    acl_all aclitem[];
    acl_one aclitem[];
    fn text;
    old_acl aclitem[];
    owner_id oid;
    saved_role CONSTANT text := pg_catalog.current_setting('role');
    g record;
    done text[];
    waiting integer;
    progress boolean;
    stuck boolean;
BEGIN
    SELECT pg_catalog.string_agg(DISTINCT CASE
               WHEN d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
               THEN pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass,
                                                  r.ev_class, 0)
               ELSE pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) END, ', ')
      INTO dependents
      FROM pg_catalog.pg_depend d
      LEFT JOIN pg_catalog.pg_rewrite r
        ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
       AND r.oid OPERATOR(pg_catalog.=) d.objid
     WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
       AND d.refobjid OPERATOR(pg_catalog.=) ANY (ARRAY[fn_all::pg_catalog.regprocedure,
                                                       fn_one::pg_catalog.regprocedure]::pg_catalog.oid[])
       AND d.deptype OPERATOR(pg_catalog.=) 'n';
    IF dependents IS NOT NULL THEN
        RAISE EXCEPTION 'cannot update pg_ingest to 0.5.0: ingest.get_async_load_job() is used by %',
                        dependents
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = 'The update replaces the function, which returns one more column '
                           '(restored).',
                  HINT = 'Drop those objects, run ALTER EXTENSION pg_ingest UPDATE again, then '
                         'create them again.';
    END IF;
    SELECT proacl INTO acl_all FROM pg_catalog.pg_proc
     WHERE oid OPERATOR(pg_catalog.=) fn_all::pg_catalog.regprocedure;
    SELECT proacl INTO acl_one FROM pg_catalog.pg_proc
     WHERE oid OPERATOR(pg_catalog.=) fn_one::pg_catalog.regprocedure;
    DROP FUNCTION @extschema@.get_async_load_job(bigint);
    DROP FUNCTION @extschema@.get_async_load_job();

    -- (at the start of the line: the bodies are those of a fresh install, to the byte)
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

    FOR fn, old_acl IN SELECT * FROM (VALUES (fn_all, acl_all), (fn_one, acl_one)) v LOOP
        -- NULL: never changed, the default (PUBLIC may execute) that the new function has too.
        CONTINUE WHEN old_acl IS NULL;
        SELECT proowner INTO owner_id FROM pg_catalog.pg_proc
         WHERE oid OPERATOR(pg_catalog.=) fn::pg_catalog.regprocedure;
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
        -- Each grant is made again by its grantor, once that one holds the grant option again
        -- (the owner's first); should none of the rest be able to, they are made by the owner.
        done := '{}';
        stuck := false;
        LOOP
            waiting := 0;
            progress := false;
            FOR g IN SELECT a.grantor, a.grantee, pg_catalog.bool_or(a.is_grantable) AS grantable
                       FROM pg_catalog.aclexplode(old_acl) a
                      WHERE a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
                      GROUP BY a.grantor, a.grantee ORDER BY a.grantor, a.grantee LOOP
                CONTINUE WHEN pg_catalog.format('%s/%s', g.grantor, g.grantee)
                              OPERATOR(pg_catalog.=) ANY (done);
                IF g.grantor OPERATOR(pg_catalog.=) owner_id OR stuck
                   OR pg_catalog.has_function_privilege(g.grantor, fn::pg_catalog.regprocedure,
                                                        'EXECUTE WITH GRANT OPTION') THEN
                    IF g.grantor OPERATOR(pg_catalog.<>) owner_id AND NOT stuck THEN
                        EXECUTE pg_catalog.format('SET LOCAL ROLE %I',
                                                  pg_catalog.pg_get_userbyid(g.grantor));
                    END IF;
                    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s%s', fn,
                        CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                             ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.grantee))
                        END,
                        CASE WHEN g.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
                    PERFORM pg_catalog.set_config('role', saved_role, true);
                    done := pg_catalog.array_append(done,
                        pg_catalog.format('%s/%s', g.grantor, g.grantee));
                    progress := true;
                ELSE
                    waiting := waiting OPERATOR(pg_catalog.+) 1;
                END IF;
            END LOOP;
            EXIT WHEN waiting OPERATOR(pg_catalog.=) 0;
            stuck := NOT progress;
        END LOOP;
        -- Privileges changed inside an extension script are recorded as the extension's own
        -- initial ones, which pg_dump leaves out: these are the site's, as they were before.
        DELETE FROM pg_catalog.pg_init_privs
         WHERE objoid OPERATOR(pg_catalog.=) fn::pg_catalog.regprocedure
           AND classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
           AND objsubid OPERATOR(pg_catalog.=) 0;
    END LOOP;
END
$upgrade$;

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
