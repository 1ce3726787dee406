-- COPY ON CONFLICT behaves as INSERT ... ON CONFLICT for triggers, generated columns,
-- constraints, foreign keys, row-level security and privileges.
CREATE EXTENSION IF NOT EXISTS pg_ingest;

-- Row triggers fire as for INSERT ... ON CONFLICT: BEFORE INSERT for every row, then
-- BEFORE/AFTER UPDATE for the conflicting ones.
CREATE TABLE trg (k int PRIMARY KEY, v text);
CREATE TABLE trg_log (op text, k int, v text);
CREATE FUNCTION trg_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO trg_log VALUES (TG_WHEN || ' ' || TG_OP, NEW.k, NEW.v);
    IF TG_WHEN = 'BEFORE' THEN NEW.v := upper(NEW.v); END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER b BEFORE INSERT OR UPDATE ON trg FOR EACH ROW EXECUTE FUNCTION trg_note();
CREATE TRIGGER a AFTER INSERT OR UPDATE ON trg FOR EACH ROW EXECUTE FUNCTION trg_note();
INSERT INTO trg VALUES (1, 'one');
TRUNCATE trg_log;
COPY trg FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,uno
2,two
\.
SELECT * FROM trg ORDER BY k;
SELECT * FROM trg_log ORDER BY op, k;

-- Generated columns are computed; defaults fill columns left out.
CREATE TABLE gen (k int PRIMARY KEY, price numeric, qty int DEFAULT 1,
                  total numeric GENERATED ALWAYS AS (price * qty) STORED);
COPY gen (k, price) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,2.5
\.
COPY gen (k, price, qty) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,3,4
2,1,1
\.
SELECT * FROM gen ORDER BY k;
-- a generated column cannot be loaded
COPY gen (k, total) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
3,3
\.

-- Identity columns GENERATED ALWAYS take the loaded values, as in plain COPY; an existing row
-- keeps its identity value (UPDATE cannot change it either).
CREATE TABLE ident (k int PRIMARY KEY, id bigint GENERATED ALWAYS AS IDENTITY, v text);
COPY ident FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,100,a
2,200,b
\.
COPY ident FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,999,a2
3,300,c
\.
-- left out of the column list, it is generated
COPY ident (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore');
4,d
\.
SELECT * FROM ident ORDER BY k;
-- naming it in UPDATE_COLUMNS is refused before anything is read
COPY ident FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'id');
1,5,x
\.
-- ingest.merge() and update mode do the same
CREATE TABLE ident_src (k int, id bigint, v text);
INSERT INTO ident_src VALUES (2, 7, 'b2'), (5, 500, 'e');
SELECT * FROM ingest.merge('ident_src', 'ident', 'upsert');
UPDATE ident_src SET v = v || '!';
SELECT * FROM ingest.merge('ident_src', 'ident', 'update');
SELECT * FROM ingest.merge('ident_src', 'ident', 'update', update_columns => '{id}');
SELECT * FROM ident ORDER BY k;
-- an identity key: repeated keys, last wins, and the sequence is left alone
CREATE TABLE ident_key (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
COPY ident_key FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
10,a
10,b
11,c
\.
INSERT INTO ident_key (v) VALUES ('generated');
SELECT * FROM ident_key ORDER BY id;

-- CHECK, NOT NULL and foreign keys are enforced; with ON_ERROR 'stop' nothing is loaded.
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent VALUES (1);
CREATE TABLE child (k int PRIMARY KEY, parent int REFERENCES parent, qty int CHECK (qty > 0),
                    label text NOT NULL);
COPY child FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,1,5,ok
2,1,-1,bad qty
\.
COPY child FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,1,5,ok
3,99,1,no parent
\.
COPY child FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
4,1,1,
\.
SELECT count(*) AS loaded_nothing FROM child;

-- Row-level security: the policy's WITH CHECK applies to inserted and updated rows, and
-- USING hides rows the role may not update (they conflict but cannot be updated).
CREATE ROLE pgi_loader LOGIN;
CREATE TABLE tenant_rows (k int PRIMARY KEY, tenant text, v text);
INSERT INTO tenant_rows VALUES (1, 'acme', 'a'), (2, 'other', 'o');
ALTER TABLE tenant_rows ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON tenant_rows USING (tenant = 'acme') WITH CHECK (tenant = 'acme');
GRANT SELECT, INSERT, UPDATE ON tenant_rows TO pgi_loader;
GRANT USAGE ON SCHEMA ingest TO pgi_loader;
SET ROLE pgi_loader;
COPY tenant_rows FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,acme,a2
3,acme,c
\.
COPY tenant_rows FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
4,other,sneaky
\.
COPY tenant_rows FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
2,acme,takeover
\.
RESET ROLE;
SELECT * FROM tenant_rows ORDER BY k;

-- Privileges: INSERT is needed, and UPDATE for upsert/update; column grants count.
CREATE TABLE priv (k int PRIMARY KEY, a text, b text);
INSERT INTO priv VALUES (1, 'a', 'b');
GRANT SELECT ON priv TO pgi_loader;
SET ROLE pgi_loader;
COPY priv FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore');
2,x,y
\.
RESET ROLE;
GRANT INSERT ON priv TO pgi_loader;
SET ROLE pgi_loader;
COPY priv FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore');
2,x,y
\.
COPY priv FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,x,y
\.
RESET ROLE;
GRANT UPDATE (a) ON priv TO pgi_loader;
SET ROLE pgi_loader;
COPY priv FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'a');
1,new a,ignored b
\.
COPY priv FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,new a,new b
\.
-- ON CONFLICT (k) reads the key: without SELECT on it, refused as INSERT ... ON CONFLICT is,
-- before any input is read; strict (a plain insert) does not need it
RESET ROLE;
CREATE TABLE priv2 (k int PRIMARY KEY, a text);
GRANT INSERT, UPDATE ON priv2 TO pgi_loader;
SET ROLE pgi_loader;
INSERT INTO priv2 VALUES (1, 'stock') ON CONFLICT (k) DO NOTHING;
COPY priv2 FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore');
1,x
\.
COPY priv2 FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'strict');
1,strict
\.
RESET ROLE;
GRANT SELECT (k) ON priv2 TO pgi_loader;
SET ROLE pgi_loader;
COPY priv2 FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore');
2,ignored
\.
-- upsert's SET a = EXCLUDED.a reads the updated columns too
INSERT INTO priv2 VALUES (1, 'stock') ON CONFLICT (k) DO UPDATE SET a = EXCLUDED.a;
COPY priv2 FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,upserted
\.
RESET ROLE;
GRANT SELECT (a) ON priv2 TO pgi_loader;
SET ROLE pgi_loader;
COPY priv2 FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,upserted
3,new
\.
RESET ROLE;
SELECT * FROM priv2 ORDER BY k;
SET ROLE pgi_loader;
-- reading a server file needs pg_read_server_files, as for plain COPY
COPY priv FROM '/etc/hostname' WITH (FORMAT csv, ON_CONFLICT 'ignore');
RESET ROLE;
SELECT * FROM priv ORDER BY k;

DROP TABLE trg, trg_log, gen, child, parent, tenant_rows, priv, priv2;
DROP FUNCTION trg_note();
DROP OWNED BY pgi_loader;
DROP ROLE pgi_loader;

-- a BEFORE UPDATE trigger that skips an update: the row counts as skipped, not updated
-- (plain target, and a partitioned one whose trigger is on one partition only)
CREATE TABLE sup (k int PRIMARY KEY, v text);
CREATE TRIGGER z BEFORE UPDATE ON sup FOR EACH ROW
    EXECUTE FUNCTION suppress_redundant_updates_trigger();
INSERT INTO sup VALUES (1, 'a'), (2, 'b');
COPY sup FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,a
2,changed
3,c
\.
SELECT * FROM ingest.last_copy_stats();
SELECT * FROM sup ORDER BY k;
CREATE TABLE psup (k int PRIMARY KEY, v text) PARTITION BY RANGE (k);
CREATE TABLE psup1 PARTITION OF psup FOR VALUES FROM (0) TO (10);
CREATE TABLE psup2 PARTITION OF psup FOR VALUES FROM (10) TO (20);
CREATE TRIGGER z BEFORE UPDATE ON psup1 FOR EACH ROW
    EXECUTE FUNCTION suppress_redundant_updates_trigger();
INSERT INTO psup VALUES (1, 'a'), (11, 'a');
COPY psup FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,a
11,a
12,b
\.
SELECT * FROM ingest.last_copy_stats();
SELECT * FROM psup ORDER BY k;
-- ... and a role with SELECT on some columns only (counting by xmax would need SELECT on the
-- whole table): the upsert runs, counted by groups
CREATE ROLE pgi_colsel;
GRANT INSERT, UPDATE, SELECT (k, v) ON sup TO pgi_colsel;
GRANT USAGE ON SCHEMA ingest TO pgi_colsel;
SET ROLE pgi_colsel;
COPY sup FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,a
2,again
4,d
\.
SELECT * FROM ingest.last_copy_stats();
RESET ROLE;
SELECT * FROM sup ORDER BY k;
DROP TABLE sup, psup;
DROP OWNED BY pgi_colsel;
DROP ROLE pgi_colsel;

-- ingest.merge() fires the target's triggers with the caller's search_path, as COPY ON
-- CONFLICT and INSERT do: a trigger naming a table without its schema finds it
CREATE SCHEMA app;
CREATE TABLE app.audit (k int);
CREATE TABLE app.items (k int PRIMARY KEY, v text);
CREATE FUNCTION app.note_item() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit VALUES (NEW.k); RETURN NEW; END $$;
CREATE TRIGGER a AFTER INSERT ON app.items FOR EACH ROW EXECUTE FUNCTION app.note_item();
CREATE TABLE app.items_src (k int, v text);
INSERT INTO app.items_src VALUES (1, 'one'), (2, 'two');
SET search_path = app, public;
SELECT * FROM ingest.merge('items_src', 'items', 'upsert');
RESET search_path;
SELECT * FROM app.audit ORDER BY k;
DROP SCHEMA app CASCADE;

-- COPY ... WHERE filters the input as plain COPY does: filtered rows are neither loaded nor
-- counted, also when their key repeats or exists. A row whose condition fails to evaluate is a
-- bad row: it stops the COPY, or under ON_ERROR 'ignore' it is rejected and recorded.
CREATE TABLE wh (k int PRIMARY KEY, v text, n int DEFAULT 7);
INSERT INTO wh VALUES (1, 'old', 0), (2, 'old', 0);
COPY wh (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert') WHERE v <> 'skip' AND k < 100;
1,new
2,skip
3,new
3,skip
4,skip
100,new
\.
SELECT * FROM ingest.last_copy_stats();
SELECT * FROM wh ORDER BY k;
-- the last occurrence that passes the filter wins
COPY wh (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert') WHERE v LIKE 'keep%';
5,keep 1
5,keep 2
5,drop 3
\.
SELECT * FROM wh WHERE k = 5;
-- a condition that fails on a row: with ON_ERROR 'stop' nothing is loaded
COPY wh (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert') WHERE 10 / k > 0;
6,six
0,zero
\.
SELECT count(*) AS no_six FROM wh WHERE k = 6;
-- ... with ON_ERROR 'ignore' that row is rejected with its line, the rest loads
COPY wh (k, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore') WHERE 10 / k > 0;
6,six
0,zero
x,bad
\.
SELECT * FROM ingest.last_copy_stats();
SELECT line_number, raw_line, sqlstate, message FROM ingest.last_copy_rejects();
SELECT * FROM wh WHERE k IN (0, 6) ORDER BY k;
-- ignore mode, binary format and a partitioned target
CREATE TABLE whp (k int PRIMARY KEY, v text) PARTITION BY RANGE (k);
CREATE TABLE whp1 PARTITION OF whp FOR VALUES FROM (0) TO (10);
CREATE TABLE whp2 PARTITION OF whp FOR VALUES FROM (10) TO (20);
INSERT INTO whp VALUES (1, 'old'), (11, 'old');
COPY (VALUES (1, 'new'), (2, 'new'), (11, 'new'), (12, 'new'), (13, 'no'))
    TO '/tmp/pg_ingest_regress_whp.bin' WITH (FORMAT binary);
COPY whp FROM '/tmp/pg_ingest_regress_whp.bin' WITH (FORMAT binary, ON_CONFLICT 'ignore')
    WHERE v = 'new';
SELECT * FROM ingest.last_copy_stats();
SELECT * FROM whp ORDER BY k;
DROP TABLE wh, whp;
