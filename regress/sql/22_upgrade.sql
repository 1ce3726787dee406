-- The upgrade path gives the same extension as a fresh install of the current version.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS pg_ingest CASCADE;

-- Every catalog fact of the extension that the server, pg_dump or a user acts on, as (kind,
-- object, detail), by name (never by OID): members, functions (settings, security, volatility,
-- argument and result types with OUT columns, body, defaults, ACL, comment), relations (ACL,
-- row-level security, comment), columns (type, NOT NULL, default, ACL), constraints, indexes,
-- row-level security policies with their expressions, sequences, types, schemas (ACL), the
-- tables pg_dump dumps (extconfig), the initial privileges pg_dump leaves out (pg_init_privs)
-- and dependencies.
CREATE TEMP VIEW extension_catalog AS
SELECT 'member' AS kind, pg_describe_object(d.classid, d.objid, d.objsubid) AS obj, '' AS detail
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'pg_ingest'
UNION ALL
SELECT 'function', p.oid::regprocedure::text,
       ROW(p.prokind, p.prosecdef, p.proleakproof, p.proisstrict, p.proretset, p.provolatile,
           p.proparallel, p.prorettype::regtype, p.proargnames, p.proargmodes,
           pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
           pg_get_expr(p.proargdefaults, 0), p.proconfig, p.proacl, p.procost, p.prorows,
           p.prosrc, p.probin, pg_get_userbyid(p.proowner),
           obj_description(p.oid, 'pg_proc'))::text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'ingest'
UNION ALL
SELECT 'relation', c.oid::regclass::text,
       ROW(c.relkind, c.relacl, c.relrowsecurity, c.relforcerowsecurity, c.reloptions,
           c.relpersistence, pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class'))::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'ingest'
UNION ALL
SELECT 'column', c.oid::regclass::text || '.' || a.attname,
       ROW(a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
           pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated, a.attacl,
           (SELECT co.collname FROM pg_collation co WHERE co.oid = a.attcollation),
           col_description(a.attrelid, a.attnum))::text
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE n.nspname = 'ingest' AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint', con.conrelid::regclass::text || ' ' || con.conname,
       ROW(con.contype, pg_get_constraintdef(con.oid), con.condeferrable, con.condeferred,
           con.convalidated)::text
  FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
 WHERE n.nspname = 'ingest'
UNION ALL
SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'ingest'
UNION ALL
SELECT 'policy', pol.polrelid::regclass::text || ' ' || pol.polname,
       ROW(pol.polcmd, pol.polpermissive, pol.polroles::regrole[],
           pg_get_expr(pol.polqual, pol.polrelid), pg_get_expr(pol.polwithcheck, pol.polrelid))::text
  FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'ingest'
UNION ALL
SELECT 'sequence', s.seqrelid::regclass::text,
       ROW(s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache,
           s.seqcycle)::text
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'ingest'
UNION ALL
SELECT 'type', t.oid::regtype::text,
       ROW(t.typtype, t.typacl, (SELECT array_agg(en.enumlabel ORDER BY en.enumsortorder)
                                   FROM pg_enum en WHERE en.enumtypid = t.oid))::text
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'ingest'
UNION ALL
SELECT 'schema', n.nspname, ROW(pg_get_userbyid(n.nspowner), n.nspacl)::text
  FROM pg_namespace n WHERE n.nspname IN ('ingest', 'ingest_staging')
UNION ALL
SELECT 'dumped table', cfg.rel::regclass::text, cfg.cond
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS cfg(rel, cond)
 WHERE e.extname = 'pg_ingest'
UNION ALL
SELECT 'initial privileges', pg_describe_object(ip.classoid, ip.objoid, ip.objsubid),
       ROW(ip.privtype, ip.initprivs)::text
  FROM pg_init_privs ip WHERE ip.privtype = 'e'
UNION ALL
SELECT 'dependency', pg_describe_object(d.classid, d.objid, d.objsubid),
       pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) || ' ' || d.deptype::text
  FROM pg_depend d
 WHERE d.deptype <> 'i'
   AND (d.classid = 'pg_proc'::regclass
        AND d.objid IN (SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                         WHERE n.nspname = 'ingest')
        OR d.classid = 'pg_class'::regclass
        AND d.objid IN (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = 'ingest'));

CREATE EXTENSION pg_ingest VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_ingest';
ALTER EXTENSION pg_ingest UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pg_ingest';
CREATE TEMP TABLE upgraded AS SELECT * FROM extension_catalog;
DROP EXTENSION pg_ingest CASCADE;
CREATE EXTENSION pg_ingest;
SELECT kind, count(*) FROM extension_catalog GROUP BY kind ORDER BY kind;
-- no difference, in any of them
(SELECT 'only after upgrade' AS diff, * FROM upgraded
 EXCEPT SELECT 'only after upgrade', * FROM extension_catalog)
UNION ALL
(SELECT 'only in fresh install', * FROM extension_catalog
 EXCEPT SELECT 'only in fresh install', * FROM upgraded)
ORDER BY kind, obj, diff;
-- ingest_admin is looked up by name: a cluster without that role can still read the job table
SELECT pol.polname, pg_get_expr(pol.polqual, pol.polrelid) AS using
  FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid
 WHERE c.relnamespace = 'ingest'::regnamespace ORDER BY pol.polname;
-- the installation id is not dumped (a restore makes its own)
SELECT obj FROM extension_catalog WHERE kind = 'dumped table' ORDER BY obj;
SELECT count(*) AS installation_ids FROM ingest.installation;

-- The update from 0.4.0 replaces get_async_load_job() (one more column, restored). The
-- privileges a site set on it carry over, with their grantors and grant options, and they are
-- the site's, not the extension's initial ones (which pg_dump leaves out).
DROP EXTENSION pg_ingest CASCADE;
CREATE EXTENSION pg_ingest VERSION '0.4.0';
CREATE ROLE regress_upg_loader;
CREATE ROLE regress_upg_reader;
REVOKE EXECUTE ON FUNCTION ingest.get_async_load_job() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ingest.get_async_load_job() TO regress_upg_loader WITH GRANT OPTION;
SET ROLE regress_upg_loader;
GRANT EXECUTE ON FUNCTION ingest.get_async_load_job() TO regress_upg_reader;
RESET ROLE;
-- (by name: a view holding the function's OID would depend on it)
CREATE TEMP VIEW get_job_grants AS
    SELECT p.oid::regprocedure::text AS fn,
           CASE WHEN a.grantor = p.proowner THEN 'owner' ELSE a.grantor::regrole::text END AS grantor,
           CASE WHEN a.grantee = p.proowner THEN 'owner' WHEN a.grantee = 0 THEN 'PUBLIC'
                ELSE a.grantee::regrole::text END AS grantee,
           a.is_grantable
      FROM pg_proc p, aclexplode(p.proacl) a
     WHERE p.proname = 'get_async_load_job' AND p.pronargs = 0
       AND p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'ingest');
CREATE TEMP TABLE grants_before AS SELECT * FROM get_job_grants;
-- a job begun before the update is this installation's after it: a worker applies it
CREATE TABLE upg_t (id int PRIMARY KEY, v text);
SELECT id AS u1, staging AS us1 FROM ingest.begin_async_load('upg_t') \gset
INSERT INTO :us1 VALUES (1, 'begun before the update');
-- a view of the site's on the function stops the update, which says what to do
CREATE VIEW upg_jobs AS SELECT id, state FROM ingest.get_async_load_job();
ALTER EXTENSION pg_ingest UPDATE TO '0.5.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_ingest';
DROP VIEW upg_jobs;
ALTER EXTENSION pg_ingest UPDATE TO '0.5.0';
SELECT * FROM get_job_grants ORDER BY grantor, grantee;
(SELECT 'lost' AS diff, * FROM grants_before EXCEPT SELECT 'lost', * FROM get_job_grants)
UNION ALL
(SELECT 'new', * FROM get_job_grants EXCEPT SELECT 'new', * FROM grants_before)
ORDER BY diff, grantor, grantee;
SELECT count(*) AS init_privs FROM pg_init_privs
 WHERE objoid IN ('ingest.get_async_load_job()'::regprocedure,
                  'ingest.get_async_load_job(bigint)'::regprocedure);
-- untouched privileges stay the default: everyone
SELECT has_function_privilege('regress_upg_loader', 'ingest.get_async_load_job(bigint)', 'EXECUTE');
SELECT state, restored FROM ingest.get_async_load_job(:u1);
SELECT ingest.submit_async_load(:u1);
SELECT ingest.wait_async_load(:u1, '60 s');
SELECT * FROM upg_t;
DROP TABLE upg_t;

-- The update from 0.3.0 replaces begin_async_load() (one more parameter, ordered): its
-- privileges carry over with their grantors too, so a REVOKE ... CASCADE from a grantor still
-- reaches the grants it made.
DROP EXTENSION pg_ingest CASCADE;
CREATE EXTENSION pg_ingest VERSION '0.3.0';
REVOKE EXECUTE ON FUNCTION ingest.begin_async_load(regclass, text, text[], text[], text, text,
    regclass, text, bigint, boolean, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ingest.begin_async_load(regclass, text, text[], text[], text, text,
    regclass, text, bigint, boolean, text[]) TO regress_upg_loader WITH GRANT OPTION;
SET ROLE regress_upg_loader;
GRANT EXECUTE ON FUNCTION ingest.begin_async_load(regclass, text, text[], text[], text, text,
    regclass, text, bigint, boolean, text[]) TO regress_upg_reader;
RESET ROLE;
CREATE TEMP VIEW begin_grants AS
    SELECT CASE WHEN a.grantor = p.proowner THEN 'owner' ELSE a.grantor::regrole::text END AS grantor,
           CASE WHEN a.grantee = p.proowner THEN 'owner' WHEN a.grantee = 0 THEN 'PUBLIC'
                ELSE a.grantee::regrole::text END AS grantee,
           a.is_grantable
      FROM pg_proc p, aclexplode(p.proacl) a
     WHERE p.proname = 'begin_async_load'
       AND p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'ingest');
CREATE TEMP TABLE begin_grants_before AS SELECT * FROM begin_grants;
ALTER EXTENSION pg_ingest UPDATE TO '0.4.0';
SELECT * FROM begin_grants ORDER BY grantor, grantee;
(SELECT 'lost' AS diff, * FROM begin_grants_before EXCEPT SELECT 'lost', * FROM begin_grants)
UNION ALL
(SELECT 'new', * FROM begin_grants EXCEPT SELECT 'new', * FROM begin_grants_before)
ORDER BY diff, grantor, grantee;
REVOKE EXECUTE ON FUNCTION ingest.begin_async_load(regclass, text, text[], text[], text, text,
    regclass, text, bigint, boolean, text[], boolean) FROM regress_upg_loader CASCADE;
SELECT has_function_privilege('regress_upg_reader', 'ingest.begin_async_load(regclass, text,
    text[], text[], text, text, regclass, text, bigint, boolean, text[], boolean)', 'EXECUTE')
    AS reader_still_may;
DROP EXTENSION pg_ingest CASCADE;
DROP ROLE regress_upg_loader, regress_upg_reader;
CREATE EXTENSION pg_ingest;
