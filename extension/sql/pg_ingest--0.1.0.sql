-- pg_ingest 0.1.0: source script of the current version.
\echo Use "CREATE EXTENSION pg_ingest" to load this file. \quit

-- The schema "ingest" is created by CREATE EXTENSION (control file: schema = ingest).
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
    SET search_path = pg_catalog, pg_temp
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
