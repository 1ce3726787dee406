-- pg_ingest 0.3.0 -> 0.4.0
\echo Use "ALTER EXTENSION pg_ingest UPDATE TO '0.4.0'" to load this file. \quit

-- begin_async_load(ordered => true): a staging table that records the order of its rows, so
-- that chunks staged over several connections are applied in the loader's order. A new
-- parameter changes the function's signature, so the function is replaced; the privileges a
-- site gave or took on it are carried over to the new one.
DO $upgrade$
DECLARE
    fn CONSTANT text := '@extschema@.begin_async_load(regclass, text, text[], text[], text, '
                        'text, regclass, text, bigint, boolean, text[], boolean)';
    old_acl aclitem[];
    owner_id oid;
    saved_role CONSTANT text := pg_catalog.current_setting('role');
    g record;
    done text[];
    waiting integer;
    progress boolean;
    stuck boolean;
BEGIN
    SELECT proacl INTO old_acl FROM pg_catalog.pg_proc
     WHERE oid = '@extschema@.begin_async_load(regclass, text, text[], text[], text, text, '
                 'regclass, text, bigint, boolean, text[])'::pg_catalog.regprocedure;
    DROP FUNCTION @extschema@.begin_async_load(regclass, text, text[], text[], text, text, regclass,
        text, bigint, boolean, text[]);
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
    -- NULL: never changed, the default (PUBLIC may execute) that the new function has too.
    IF old_acl IS NOT NULL THEN
        SELECT proowner INTO owner_id FROM pg_catalog.pg_proc
         WHERE oid OPERATOR(pg_catalog.=) fn::pg_catalog.regprocedure;
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
        -- Each grant is made again by its grantor, once that one holds the grant option again
        -- (the owner's first); should none of the rest be able to, they are made by the owner.
        -- (Before 0.5.0's release this re-granted everything as the owner: the grantors of
        -- grants made WITH GRANT OPTION were lost, and a REVOKE ... CASCADE from them no longer
        -- reached the grants they had made.)
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
    END IF;
END
$upgrade$;
