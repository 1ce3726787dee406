-- pg_ingest 0.2.0 -> 0.3.0
\echo Use "ALTER EXTENSION pg_ingest UPDATE TO '0.3.0'" to load this file. \quit

-- ingest.merge() runs an INSERT ... ON CONFLICT that fires the caller's triggers, defaults and
-- CHECK functions: with the function's own search_path they could not find the caller's
-- unqualified names (COPY ON CONFLICT, which runs the same statement, could). Every name in the
-- statement is schema-qualified, so the function needs no search_path of its own.
ALTER FUNCTION @extschema@.merge(regclass, regclass, text, text[], text[]) RESET search_path;
