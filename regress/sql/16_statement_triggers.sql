-- Statement-level triggers and transition tables on the target fire once per COPY ON CONFLICT
-- or ingest.merge(), as for one INSERT ... ON CONFLICT (or UPDATE ... FROM for 'update'),
-- however many chunks the rows are applied in; with no rows they still fire once.
CREATE EXTENSION IF NOT EXISTS pg_ingest;
SET ingest.merge_chunk_rows = 2;

CREATE TABLE st_log (n serial, who text, event text, rows_new bigint, rows_old bigint);
CREATE FUNCTION st_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO st_log (who, event) VALUES (TG_ARGV[0], TG_WHEN || ' ' || TG_OP);
    RETURN NULL;
END $$;
CREATE FUNCTION st_note_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO st_log (who, event, rows_new)
        SELECT TG_ARGV[0], 'AFTER INSERT, new table', count(*) FROM new_rows;
    RETURN NULL;
END $$;
CREATE FUNCTION st_note_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO st_log (who, event, rows_new, rows_old)
        SELECT TG_ARGV[0], 'AFTER UPDATE, old and new tables',
               (SELECT count(*) FROM new_rows), (SELECT count(*) FROM old_rows);
    RETURN NULL;
END $$;
-- The same triggers on a table and on its oracle twin, loaded with INSERT ... ON CONFLICT.
CREATE FUNCTION st_triggers(t regclass, who text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER s_before BEFORE INSERT OR UPDATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION st_note(%L)', t, who);
    EXECUTE format('CREATE TRIGGER s_after AFTER INSERT OR UPDATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION st_note(%L)', t, who);
    EXECUTE format('CREATE TRIGGER s_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION st_note_inserted(%L)', t, who);
    EXECUTE format('CREATE TRIGGER s_upd AFTER UPDATE ON %s
                    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION st_note_updated(%L)', t, who);
END $$;
-- The two logs side by side: the same events, as often.
CREATE VIEW st_compare AS
    SELECT event, rows_new, rows_old,
           count(*) FILTER (WHERE who = 'copy') AS copy,
           count(*) FILTER (WHERE who = 'oracle') AS oracle
    FROM st_log GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

CREATE TABLE st (k int PRIMARY KEY, v text);
CREATE TABLE st_oracle (k int PRIMARY KEY, v text);
INSERT INTO st SELECT g, 'old' FROM generate_series(1, 3) g;
INSERT INTO st_oracle SELECT g, 'old' FROM generate_series(1, 3) g;
SELECT st_triggers('st', 'copy'), st_triggers('st_oracle', 'oracle');

-- upsert: 7 rows (key 4 twice) in chunks of 2 rows; 2 existing keys, 4 new ones
COPY st FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
2,a
3,b
4,c
5,d
4,e
6,f
7,g
\.
INSERT INTO st_oracle VALUES (2, 'a'), (3, 'b'), (4, 'e'), (5, 'd'), (6, 'f'), (7, 'g')
    ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v;
SELECT * FROM st_compare;
SELECT (SELECT string_agg(k || ':' || v, ',' ORDER BY k) FROM st) =
       (SELECT string_agg(k || ':' || v, ',' ORDER BY k) FROM st_oracle) AS same_rows;

-- no rows at all: the statement triggers still fire once, as for COPY and INSERT
TRUNCATE st_log;
COPY st FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
\.
INSERT INTO st_oracle SELECT * FROM st_oracle WHERE false ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v;
SELECT * FROM st_compare;

-- ignore: INSERT ... ON CONFLICT DO NOTHING fires the INSERT triggers only
TRUNCATE st_log;
COPY st FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'ignore');
1,x
8,x
9,x
8,y
10,x
\.
INSERT INTO st_oracle VALUES (1, 'x'), (8, 'x'), (9, 'x'), (10, 'x') ON CONFLICT (k) DO NOTHING;
SELECT * FROM st_compare;

-- update: UPDATE ... FROM fires the UPDATE triggers only
TRUNCATE st_log;
COPY st FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'update');
1,u
2,u
3,u
99,u
5,u
\.
UPDATE st_oracle o SET v = s.v FROM (VALUES (1, 'u'), (2, 'u'), (3, 'u'), (99, 'u'), (5, 'u')) s (k, v)
    WHERE o.k = s.k;
SELECT * FROM st_compare;

-- strict: a plain INSERT
TRUNCATE st_log;
COPY st FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'strict');
20,s
21,s
22,s
\.
INSERT INTO st_oracle VALUES (20, 's'), (21, 's'), (22, 's');
SELECT * FROM st_compare;
SELECT (SELECT string_agg(k || ':' || v, ',' ORDER BY k) FROM st) =
       (SELECT string_agg(k || ':' || v, ',' ORDER BY k) FROM st_oracle) AS same_rows;

-- ingest.merge() from a table
TRUNCATE st_log;
CREATE TABLE st_src (k int, v text);
INSERT INTO st_src SELECT g, 'm' FROM generate_series(19, 25) g;
SELECT * FROM ingest.merge('st_src', 'st', 'upsert');
INSERT INTO st_oracle SELECT * FROM st_src ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v;
SELECT * FROM st_compare;

-- A partitioned target: its own statement triggers fire once, as for INSERT into it.
CREATE TABLE stp (k int PRIMARY KEY, v text) PARTITION BY RANGE (k);
CREATE TABLE stp_a PARTITION OF stp FOR VALUES FROM (0) TO (10);
CREATE TABLE stp_b PARTITION OF stp FOR VALUES FROM (10) TO (100);
CREATE TABLE stp_oracle (k int PRIMARY KEY, v text) PARTITION BY RANGE (k);
CREATE TABLE stp_oracle_a PARTITION OF stp_oracle FOR VALUES FROM (0) TO (10);
CREATE TABLE stp_oracle_b PARTITION OF stp_oracle FOR VALUES FROM (10) TO (100);
INSERT INTO stp VALUES (1, 'old'), (15, 'old');
INSERT INTO stp_oracle VALUES (1, 'old'), (15, 'old');
SELECT st_triggers('stp', 'copy'), st_triggers('stp_oracle', 'oracle');
TRUNCATE st_log;
COPY stp FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,p
2,p
15,p
16,p
17,p
\.
INSERT INTO stp_oracle VALUES (1, 'p'), (2, 'p'), (15, 'p'), (16, 'p'), (17, 'p')
    ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v;
SELECT * FROM st_compare;

-- A statement trigger that fails fails the COPY, and nothing is loaded.
CREATE FUNCTION st_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'no loads today' USING ERRCODE = 'P0001';
END $$;
CREATE TRIGGER s_refuse AFTER INSERT ON st FOR EACH STATEMENT EXECUTE FUNCTION st_refuse();
SELECT count(*) FROM st;
COPY st FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
50,z
51,z
52,z
\.
SELECT count(*) FROM st;

-- Only triggers that fire count: a disabled statement trigger leaves the chunks as they are.
-- Seen from an AFTER ROW trigger, whose events fire at the end of each statement: the row count
-- it sees grows chunk by chunk, or is the whole load at once.
CREATE TABLE sd (k int PRIMARY KEY, v text);
CREATE TABLE sd_seen (n bigint);
CREATE FUNCTION sd_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sd_seen SELECT count(*) FROM sd;
    RETURN NULL;
END $$;
CREATE TRIGGER r AFTER INSERT ON sd FOR EACH ROW EXECUTE FUNCTION sd_count();
CREATE TRIGGER s AFTER INSERT ON sd FOR EACH STATEMENT EXECUTE FUNCTION st_note('sd');
ALTER TABLE sd DISABLE TRIGGER s;
COPY sd FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,a
2,b
3,c
4,d
\.
SELECT array_agg(n ORDER BY n) AS disabled FROM sd_seen;
TRUNCATE sd, sd_seen;
ALTER TABLE sd ENABLE TRIGGER s;
COPY sd FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');
1,a
2,b
3,c
4,d
\.
SELECT array_agg(n ORDER BY n) AS enabled FROM sd_seen;
DROP TABLE sd, sd_seen;
DROP FUNCTION sd_count();

RESET ingest.merge_chunk_rows;
DROP TABLE st, st_oracle, st_src, stp, stp_oracle, st_log CASCADE;
DROP FUNCTION st_note(), st_note_inserted(), st_note_updated(), st_triggers(regclass, text),
    st_refuse();
