-- What INSERT ... ON CONFLICT does that the direct path and the superseded-row check must do
-- too, each compared with a twin table loaded by INSERT ... ON CONFLICT: columns added with a
-- default after rows were written, CHECK constraints that read tableoid; and ingest._merge_rows()
-- called by a user's function while a merge runs.
CREATE EXTENSION IF NOT EXISTS pg_ingest;

-- A column added with a default after the rows exist (a "fast default": the old rows do not
-- store it) keeps that default when such a row is updated, on both paths; a key column added
-- so stays the key.
CREATE TABLE fd (x int PRIMARY KEY, v int);
CREATE TABLE fd_oracle (x int PRIMARY KEY, v int);
INSERT INTO fd VALUES (1, 1), (2, 2), (3, 3);
INSERT INTO fd_oracle VALUES (1, 1), (2, 2), (3, 3);
ALTER TABLE fd ADD COLUMN added int DEFAULT 42;
ALTER TABLE fd_oracle ADD COLUMN added int DEFAULT 42;
COPY fd (x, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,100
4,400
\.
SET ingest.direct_apply = off;
COPY fd (x, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
2,200
\.
RESET ingest.direct_apply;
INSERT INTO fd_oracle (x, v) VALUES (1, 100), (4, 400), (2, 200)
    ON CONFLICT (x) DO UPDATE SET v = EXCLUDED.v;
SELECT * FROM fd ORDER BY x;
SELECT (SELECT string_agg(concat_ws(':', x, v, added), ',' ORDER BY x) FROM fd) =
       (SELECT string_agg(concat_ws(':', x, v, added), ',' ORDER BY x) FROM fd_oracle) AS same_rows;

CREATE TABLE fk (a int, v int);
INSERT INTO fk SELECT g, g FROM generate_series(1, 3) g;
ALTER TABLE fk ADD COLUMN key int DEFAULT 7;
CREATE UNIQUE INDEX ON fk (a, key);
COPY fk (a, key, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', CONFLICT_COLUMNS 'a, key');
1,7,100
\.
SELECT * FROM fk ORDER BY a;

-- A CHECK constraint may read tableoid: the rows it refuses are refused, on the direct path,
-- and a superseded row that passes it passes.
CREATE TABLE tc (id int PRIMARY KEY, v int,
                 CONSTRAINT c CHECK (tableoid <> 'tc'::regclass OR v > 0));
INSERT INTO tc VALUES (1, 1);
\set VERBOSITY sqlstate
COPY tc FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,-5
2,-7
\.
\set VERBOSITY default
INSERT INTO tc VALUES (1, -5) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v;
SELECT * FROM tc ORDER BY id;
CREATE TABLE ts (id int PRIMARY KEY, v int, CONSTRAINT c CHECK (tableoid = 'ts'::regclass));
COPY ts FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,1
1,2
\.
SET ingest.direct_apply = off;
COPY ts FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
2,1
2,2
\.
RESET ingest.direct_apply;
SELECT * FROM ts ORDER BY id;

-- ingest._merge_rows() serves a chunk only to the merge's own statement: called from a
-- default or a CHECK while rows are read or applied, it fails (and the COPY with it, nothing
-- loaded); the server stays up.
CREATE FUNCTION steal() RETURNS int LANGUAGE sql AS
  $$ SELECT count(*)::int FROM ingest._merge_rows(0) AS s(a int, b int, n bigint, seq bigint) $$;
CREATE TABLE sd (id int PRIMARY KEY, v int, x int DEFAULT steal());
\set VERBOSITY sqlstate
COPY sd (id, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,1
2,2
\.
\set VERBOSITY default
SET ingest.direct_apply = off;
CREATE TABLE sc (id int PRIMARY KEY, v int CHECK (v + steal() > -1000));
\set VERBOSITY sqlstate
COPY sc (id, v) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,1
1,2
\.
\set VERBOSITY default
RESET ingest.direct_apply;
SELECT (SELECT count(*) FROM sd) AS sd_rows, (SELECT count(*) FROM sc) AS sc_rows;
SELECT 1 AS still_up;

DROP TABLE fd, fd_oracle, fk, tc, ts, sd, sc;
DROP FUNCTION steal();
