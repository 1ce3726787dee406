-- The checks INSERT ... ON CONFLICT makes, which the merge must make too: source values are
-- converted to the target's types as INSERT converts them, no writes in read-only
-- transactions, replica identity for replicated updates, keys equal as the unique index sees
-- them, and counts that a nested merge (from a trigger) leaves alone.
CREATE EXTENSION IF NOT EXISTS pg_ingest;
CREATE FUNCTION try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st || ': ' || msg;
END $$;

-- ingest.merge(): assignment casts, typmods and domains, as INSERT ... SELECT applies them
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE mt (id int PRIMARY KEY, v varchar(3), p posint, n int);
CREATE TABLE ms_long (id int, v text);
INSERT INTO ms_long VALUES (1, 'abcdefgh');
CREATE TABLE ms_dom (id int, p int);
INSERT INTO ms_dom VALUES (1, -7);
CREATE TABLE ms_big (id bigint);
INSERT INTO ms_big VALUES (4294967297);
CREATE TABLE ms_text (id int, n text);
INSERT INTO ms_text VALUES (1, '5');
SELECT src, try(format('SELECT * FROM ingest.merge(%L, ''mt'', ''upsert'')', src))
FROM (VALUES ('ms_long'), ('ms_dom'), ('ms_big'), ('ms_text')) AS t(src);
SELECT count(*) AS nothing_loaded FROM mt;
-- conversions that INSERT makes are made: numeric rounds into int, int into bigint's
-- narrower key, varchar(5) into varchar(3) when it fits, int into the domain when valid
CREATE TABLE ms_ok (id numeric, v varchar(5), p int, n smallint);
INSERT INTO ms_ok VALUES (1.6, 'ab', 4, 7), (3, 'xyz', 1, NULL);
-- more than one fetch of the source's cursor (1000 rows each), all converted
INSERT INTO ms_ok SELECT g + 0.4, 'r' || (g % 100), 1 + g % 5, g % 7 FROM generate_series(10, 3009) g;
SELECT * FROM ingest.merge('ms_ok', 'mt', 'upsert');
SELECT count(*), sum(id), sum(length(v)), sum(p), sum(n) FROM mt;
SET ingest.direct_apply = off;
UPDATE ms_ok SET n = 8;
SELECT * FROM ingest.merge('ms_ok', 'mt', 'upsert');
RESET ingest.direct_apply;
SELECT count(*), sum(id), sum(n) FROM mt;
SELECT * FROM mt WHERE id <= 3 ORDER BY id;

-- no writes in a read-only transaction (25006), on either path; a temp target is fine
BEGIN READ ONLY;
SELECT try('SELECT * FROM ingest.merge(''ms_ok'', ''mt'', ''upsert'')');
ROLLBACK;
BEGIN READ ONLY;
SET LOCAL ingest.direct_apply = off;
SELECT try('SELECT * FROM ingest.merge(''ms_ok'', ''mt'', ''upsert'')');
ROLLBACK;
CREATE TEMP TABLE mt_temp (id int PRIMARY KEY, v text);
CREATE TEMP TABLE ms_temp (id int, v text);
INSERT INTO ms_temp VALUES (1, 'one');
BEGIN READ ONLY;
SELECT * FROM ingest.merge('ms_temp', 'mt_temp', 'upsert');
COMMIT;

-- a table whose updates are published needs a replica identity for the update path (55000),
-- on both paths; inserts and ignore mode do not
CREATE TABLE ri (k int NOT NULL, v text);
CREATE UNIQUE INDEX ri_k ON ri (k);
SET client_min_messages = error;  -- the WARNING about wal_level depends on the server
CREATE PUBLICATION ri_pub FOR TABLE ri;
RESET client_min_messages;
INSERT INTO ri VALUES (1, 'a');
COPY (VALUES (1, 'b'), (2, 'b')) TO '/tmp/pg_ingest_regress_ri.csv' WITH (FORMAT csv);
SELECT direct, try($$COPY ri FROM '/tmp/pg_ingest_regress_ri.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert')$$)
FROM (VALUES ('on'), ('off')) AS t(direct), set_config('ingest.direct_apply', direct, false);
RESET ingest.direct_apply;
COPY ri FROM '/tmp/pg_ingest_regress_ri.csv' WITH (FORMAT csv, ON_CONFLICT 'ignore');
SELECT * FROM ri ORDER BY k;
-- an upsert with nothing to update is DO NOTHING: no replica identity needed, on either path
CREATE TABLE ri_key (k int NOT NULL);
CREATE UNIQUE INDEX ON ri_key (k);
ALTER PUBLICATION ri_pub ADD TABLE ri_key;
INSERT INTO ri_key VALUES (1);
COPY ri_key FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1
2
\.
SET ingest.direct_apply = off;
COPY ri_key FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
2
3
\.
RESET ingest.direct_apply;
SELECT * FROM ri_key ORDER BY k;
ALTER TABLE ri REPLICA IDENTITY USING INDEX ri_k;
COPY ri FROM '/tmp/pg_ingest_regress_ri.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');
SELECT * FROM ri ORDER BY k;
DROP PUBLICATION ri_pub;

-- update mode matches keys with the unique index's collation, as upsert does
CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE ct (k text NOT NULL, v text);
CREATE UNIQUE INDEX ON ct (k COLLATE ci);
INSERT INTO ct VALUES ('abc', 'old');
COPY ct FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'update');
ABC,updated
\.
SELECT * FROM ingest.last_copy_stats();
SELECT * FROM ct;

-- a merge inside a trigger of the target keeps its own counts and leaves the outer ones
CREATE TABLE side (k int PRIMARY KEY, v text);
CREATE TABLE side_src (k int, v text);
INSERT INTO side_src VALUES (1, 'x'), (2, 'y');
CREATE TABLE nt (k int PRIMARY KEY, v text);
INSERT INTO nt VALUES (1, 'a'), (2, 'a'), (3, 'a');
CREATE FUNCTION nt_side() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM ingest.merge('side_src', 'side', 'upsert'); RETURN NULL; END $$;
CREATE TRIGGER nt_side AFTER INSERT OR UPDATE ON nt FOR EACH ROW EXECUTE FUNCTION nt_side();
COPY nt FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,b
2,b
3,b
4,b
\.
SELECT * FROM ingest.last_copy_stats();
SELECT * FROM nt ORDER BY k;
SELECT * FROM side ORDER BY k;

DROP TABLE mt, ms_long, ms_dom, ms_big, ms_text, ms_ok, ri, ri_key, ct, side, side_src, nt;
DROP FUNCTION nt_side(), try(text);
DROP DOMAIN posint;
DROP COLLATION ci;

-- A target given by OID in a schema the caller may not use: refused as INSERT INTO hidden.t
-- would be, on the direct path too (it parses no name, so nothing else checks USAGE).
CREATE SCHEMA hidden;
CREATE TABLE hidden.t (k int PRIMARY KEY, v text);
INSERT INTO hidden.t VALUES (1, 'old');
CREATE TABLE hid_src (k int, v text);
INSERT INTO hid_src VALUES (1, 'new'), (2, 'new');
CREATE ROLE pgi_nousage;
GRANT USAGE ON SCHEMA ingest TO pgi_nousage;
GRANT SELECT, INSERT, UPDATE ON hidden.t TO pgi_nousage;
GRANT SELECT ON hid_src TO pgi_nousage;
SELECT 'hidden.t'::regclass::oid AS hidden_oid \gset
SET ROLE pgi_nousage;
SELECT * FROM ingest.merge('hid_src', :hidden_oid, 'upsert');
SET ingest.direct_apply = off;
SELECT * FROM ingest.merge('hid_src', :hidden_oid, 'upsert');
RESET ingest.direct_apply;
RESET ROLE;
SELECT * FROM hidden.t ORDER BY k;
DROP TABLE hidden.t, hid_src;
DROP SCHEMA hidden;
DROP OWNED BY pgi_nousage;
DROP ROLE pgi_nousage;
