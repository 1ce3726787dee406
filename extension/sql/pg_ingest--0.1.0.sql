-- pg_ingest 0.1.0: source script of the current version.
\echo Use "CREATE EXTENSION pg_ingest" to load this file. \quit

-- The schema "ingest" is created by CREATE EXTENSION (control file: schema = ingest).
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

CREATE FUNCTION @extschema@.version() RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'ingest_version';
COMMENT ON FUNCTION @extschema@.version() IS 'version of the pg_ingest library';
