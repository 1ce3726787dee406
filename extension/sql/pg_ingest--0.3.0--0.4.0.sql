-- pg_ingest 0.3.0 -> 0.4.0
\echo Use "ALTER EXTENSION pg_ingest UPDATE TO '0.4.0'" to load this file. \quit

-- begin_async_load(ordered => true): a staging table that records the order of its rows, so
-- that chunks staged over several connections are applied in the loader's order. A new
-- parameter changes the function's signature, so the function is replaced; the privileges a
-- site gave or took on it are carried over to the new one.
DO $upgrade$
DECLARE
    old_acl aclitem[];
    grant_to record;
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
        REVOKE ALL ON FUNCTION @extschema@.begin_async_load(regclass, text, text[], text[], text, text, regclass, text, bigint, boolean, text[], boolean) FROM PUBLIC;
        FOR grant_to IN SELECT a.grantee, pg_catalog.bool_or(a.is_grantable) AS grantable
                          FROM pg_catalog.aclexplode(old_acl) a
                         WHERE a.privilege_type = 'EXECUTE' GROUP BY a.grantee LOOP
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION @extschema@.begin_async_load(regclass, text, text[], text[], text, text, regclass, text, bigint, boolean, text[], boolean) TO %s%s',
                CASE WHEN grant_to.grantee = 0 THEN 'PUBLIC'
                     ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(grant_to.grantee)) END,
                CASE WHEN grant_to.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        -- Privileges changed inside an extension script are recorded as the extension's own
        -- initial ones, which pg_dump leaves out: these are the site's, as they were before.
        DELETE FROM pg_catalog.pg_init_privs
         WHERE objoid = '@extschema@.begin_async_load(regclass, text, text[], text[], text, text, regclass, text, bigint, boolean, text[], boolean)'::pg_catalog.regprocedure
           AND classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND objsubid = 0;
    END IF;
END
$upgrade$;
