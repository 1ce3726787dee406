-- Conflict targets: composite keys, non-PK unique indexes, CONFLICT_COLUMNS, UPDATE_COLUMNS,
-- column subsets, quoted mixed-case identifiers and schemas, NULL keys.
CREATE EXTENSION IF NOT EXISTS pg_ingest;
CREATE SCHEMA "Load Zone";
CREATE TABLE "Load Zone"."Orders" (
    "Region" text, "OrderId" bigint, "Amount" numeric(10,2), note text DEFAULT 'none',
    PRIMARY KEY ("Region", "OrderId"));
INSERT INTO "Load Zone"."Orders" VALUES ('eu', 1, 10, 'first'), ('us', 1, 20, 'first');

-- Composite primary key inferred; note keeps its default for new rows and is untouched for
-- updated ones (it is not in the column list).
COPY "Load Zone"."Orders" ("Region", "OrderId", "Amount") FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
eu,1,11.5
eu,2,12
us,1,21
eu,2,13
\.
SELECT * FROM "Load Zone"."Orders" ORDER BY 1, 2;
SELECT * FROM ingest.last_copy_stats();

-- Explicit CONFLICT_COLUMNS with quoted names, in any order.
COPY "Load Zone"."Orders" ("OrderId", "Region", "Amount", note) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', CONFLICT_COLUMNS '"OrderId", "Region"');
1,eu,100,updated
\.
SELECT * FROM "Load Zone"."Orders" WHERE "OrderId" = 1 ORDER BY 1;

-- UPDATE_COLUMNS: only note changes, Amount keeps its value.
COPY "Load Zone"."Orders" FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', UPDATE_COLUMNS 'note');
us,1,999,only note
\.
SELECT * FROM "Load Zone"."Orders" WHERE "Region" = 'us';

-- A non-PK unique index: the only unique index is found without CONFLICT_COLUMNS.
CREATE TABLE public.users (id serial, email text NOT NULL UNIQUE, name text);
INSERT INTO users (email, name) VALUES ('a@x', 'Ann');
COPY users (email, name) FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
a@x,Ann B.
b@x,Bob
\.
SELECT email, name FROM users ORDER BY email;
-- the serial default was evaluated once per input row, as INSERT ... ON CONFLICT does
-- (the conflicting row used up id 2), not twice
SELECT id, email FROM users ORDER BY id;

-- Several unique indexes and a primary key: the primary key is the default target;
-- CONFLICT_COLUMNS picks another one.
CREATE TABLE accounts (id int PRIMARY KEY, login text UNIQUE, balance int);
INSERT INTO accounts VALUES (1, 'ann', 10);
COPY accounts FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert', CONFLICT_COLUMNS 'login', UPDATE_COLUMNS 'balance');
1,ann,15
\.
SELECT * FROM accounts;

-- NULL in a nullable unique key never conflicts (NULLs are distinct), so both rows insert;
-- with NULLS NOT DISTINCT they are one key.
CREATE TABLE nk (a int, b int, v text, UNIQUE (a, b));
COPY nk FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,,x
1,,y
1,2,p
1,2,q
\.
SELECT * FROM nk ORDER BY a, b, v;
CREATE TABLE nnd (a int, b int, v text, UNIQUE NULLS NOT DISTINCT (a, b));
COPY nnd FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,,x
1,,y
\.
SELECT * FROM nnd;
-- update mode finds the NULL key too
COPY nnd FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'update');
1,,z
\.
SELECT * FROM nnd;

-- Keys compare with the index's own equality: numeric 1.0 and 1.00 are one key (stored as
-- first written: keys are never updated), and timestamps keep their microseconds.
CREATE TABLE nums (k numeric PRIMARY KEY, v text);
COPY nums FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1.0,first
1.00,second
\.
SELECT * FROM nums;
CREATE TABLE ts (k timestamp PRIMARY KEY, v text);
COPY ts FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
2026-01-01 00:00:00.000001,a
2026-01-01 00:00:00.000002,b
2026-01-01 00:00:00.000001,c
\.
SELECT * FROM ts ORDER BY k;

-- Text keys under a non-default collation: the index's collation decides equality.
CREATE TABLE ci (k text COLLATE "C" PRIMARY KEY, v int);
COPY ci FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'update');
\.
INSERT INTO ci VALUES ('A', 1), ('a', 2);
COPY ci FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'update');
a,20
b,30
\.
SELECT * FROM ci ORDER BY k;

-- No primary key and two unique indexes on the same column (a duplicate index): one conflict
-- target, as INSERT ... ON CONFLICT (k) infers both. Indexes on different columns stay
-- ambiguous (13_copy_errors).
CREATE TABLE twin (k int NOT NULL, v text);
CREATE UNIQUE INDEX twin_a ON twin (k);
CREATE UNIQUE INDEX twin_b ON twin (k);
INSERT INTO twin VALUES (1, 'old');
COPY twin FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,new
2,two
\.
SELECT * FROM twin ORDER BY k;

DROP SCHEMA "Load Zone" CASCADE;
DROP TABLE users, accounts, nk, nnd, nums, ts, ci, twin;
