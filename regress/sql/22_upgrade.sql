-- The upgrade path gives the same extension as a fresh install of the current version.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS pg_ingest CASCADE;
CREATE EXTENSION pg_ingest VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_ingest';
ALTER EXTENSION pg_ingest UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pg_ingest';
CREATE TEMP TABLE upgraded_functions AS
    SELECT p.oid::regprocedure::text AS fn, p.proconfig, p.prosecdef, p.provolatile
    FROM pg_proc p WHERE p.pronamespace = 'ingest'::regnamespace;
CREATE TEMP TABLE upgraded AS
    SELECT pg_describe_object(classid, objid, objsubid) AS obj
    FROM pg_depend
    WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_ingest');
DROP EXTENSION pg_ingest CASCADE;
CREATE EXTENSION pg_ingest;
CREATE TEMP TABLE fresh AS
    SELECT pg_describe_object(classid, objid, objsubid) AS obj
    FROM pg_depend
    WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_ingest');
SELECT count(*) AS extension_objects FROM fresh;
(SELECT 'only after upgrade' AS diff, obj FROM upgraded EXCEPT SELECT 'only after upgrade', obj FROM fresh)
UNION ALL
(SELECT 'only in fresh install', obj FROM fresh EXCEPT SELECT 'only in fresh install', obj FROM upgraded);
-- the function definitions match too
SELECT count(*) AS functions FROM pg_proc WHERE pronamespace = 'ingest'::regnamespace;
-- ... down to their settings (SET search_path), security and volatility
(SELECT 'only after upgrade' AS diff, * FROM upgraded_functions
 EXCEPT SELECT 'only after upgrade', p.oid::regprocedure::text, p.proconfig, p.prosecdef, p.provolatile
 FROM pg_proc p WHERE p.pronamespace = 'ingest'::regnamespace)
UNION ALL
(SELECT 'only in fresh install', p.oid::regprocedure::text, p.proconfig, p.prosecdef, p.provolatile
 FROM pg_proc p WHERE p.pronamespace = 'ingest'::regnamespace
 EXCEPT SELECT 'only in fresh install', * FROM upgraded_functions);
