-- The extension creates its schema, reports its version and reserves the GUC prefix.
CREATE EXTENSION pg_ingest;
SELECT nspname FROM pg_namespace WHERE nspname = 'ingest';
SELECT ingest.version() = (SELECT extversion FROM pg_extension WHERE extname = 'pg_ingest') AS version_matches;
SELECT name, setting, context FROM pg_settings WHERE name LIKE 'ingest.%' ORDER BY name;
-- typos under the reserved prefix are rejected
SET ingest.no_such_setting = 1;
-- every function of the extension pins its search_path, except the per-row conflict counter
-- _merge_note_conflict (it runs no SQL and resolves no names; a SET clause would cost per row)
-- and merge (its statement is fully qualified, and the caller's triggers and defaults it fires
-- must see the caller's search_path)
SELECT p.proname, p.proconfig
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_ingest'
WHERE NOT coalesce(p.proconfig @> '{"search_path=pg_catalog, pg_temp"}', false);
