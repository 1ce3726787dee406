-- Async load jobs: lifecycle, modes, overwrite, rejects, and every bad input with its SQLSTATE.
-- Workers run in the background; ingest.wait_async_load() waits for them.
CREATE EXTENSION IF NOT EXISTS pg_ingest;
\set VERBOSITY default
SET client_min_messages = warning;

CREATE TABLE orders (id bigint PRIMARY KEY, qty int CHECK (qty >= 0), note text);
INSERT INTO orders VALUES (1, 1, 'old'), (2, 2, 'old');

-- upsert: stage from two transactions, submit, wait; the target gets the rows, staging goes
SELECT id AS j1, staging AS s1 FROM ingest.begin_async_load('orders', job_key => 'ckpt-1') \gset
SELECT state, staging::text, rows_staged, attempts FROM ingest.get_async_load_job(:j1);
INSERT INTO :s1 VALUES (2, 20, 'new'), (3, 3, 'new');
BEGIN;
INSERT INTO :s1 VALUES (3, 30, 'newer'), (4, 4, 'new');
COMMIT;
SELECT ingest.submit_async_load(:j1);
SELECT ingest.wait_async_load(:j1, '60 s');
-- a timeout too long to count in microseconds is no bound, a negative one an error
SELECT ingest.wait_async_load(:j1, '300000 years') AS huge_timeout;
SELECT ingest.wait_async_load(:j1, '-1 s');
SELECT state, rows_staged, rows_inserted, rows_updated, rows_skipped, rows_rejected, attempts,
       staging, error_sqlstate, rows_applied
  FROM ingest.get_async_load_job(:j1);
SELECT * FROM orders ORDER BY id;
SELECT to_regclass(:'s1') IS NULL AS staging_dropped;
-- the same key returns the same job, whatever its state: a restarted loader never loads twice
SELECT id = :j1 AS same_job, state FROM ingest.begin_async_load('orders', job_key => 'ckpt-1');
-- filtering by target works as with Relyt
SELECT count(*) FROM ingest.get_async_load_job() WHERE target::regclass = 'orders'::regclass;
-- submit closes staging to every writer, a superuser (as here) included: rows added after it
-- could never be applied (here in submit's own transaction, which is then rolled back)
SELECT id AS jc, staging AS sc FROM ingest.begin_async_load('orders') \gset
INSERT INTO :sc VALUES (9, 9, 'staged');
SELECT set_config('test.sc', :'sc', false) IS NOT NULL AS noted;
BEGIN;
SELECT ingest.submit_async_load(:jc);
DO $$
DECLARE c text;
BEGIN
    EXECUTE format('INSERT INTO %s VALUES (10, 10, %L)', current_setting('test.sc'), 'late');
    RAISE WARNING 'a row was added after submit';
EXCEPTION WHEN check_violation THEN
    GET STACKED DIAGNOSTICS c = CONSTRAINT_NAME;
    RAISE WARNING 'refused after submit: % (%)', SQLSTATE, c;
END $$;
ROLLBACK;
SELECT state, (SELECT count(*) FROM pg_constraint WHERE conrelid = :'sc'::regclass) AS constraints
  FROM ingest.get_async_load_job(:jc);
SELECT ingest.cancel_async_load(:jc);

-- plain append (conflict mode none) needs no unique key
CREATE TABLE events (at int, what text);
SELECT id AS j2, staging AS s2 FROM ingest.begin_async_load('events', 'none') \gset
INSERT INTO :s2 VALUES (1, 'a'), (1, 'a'), (2, 'b');
SELECT ingest.submit_async_load(:j2);
SELECT ingest.wait_async_load(:j2, '60 s');
SELECT rows_inserted, rows_updated FROM ingest.get_async_load_job(:j2);
SELECT * FROM events ORDER BY at, what;
-- an append with exception mode ignore applies chunks of ingest.merge_chunk_rows while it
-- reads the staging table 1000 rows at a time; a chunk size that is not a multiple of that
-- must not lose the rows read ahead (nor the worker)
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET ingest.merge_chunk_rows = 1500', current_database()); END $$;
CREATE TABLE events_chunked (at int CHECK (at > 0), what text);
SELECT id AS j2c, staging AS s2c FROM ingest.begin_async_load('events_chunked', 'none', exception_mode => 'ignore') \gset
INSERT INTO :s2c SELECT i, 'e' || i FROM generate_series(1, 3500) i;
INSERT INTO :s2c VALUES (-1, 'bad');
SELECT ingest.submit_async_load(:j2c);
SELECT ingest.wait_async_load(:j2c, '60 s');
SELECT state, rows_inserted, rows_rejected FROM ingest.get_async_load_job(:j2c);
SELECT count(*), count(DISTINCT at), min(at), max(at) FROM events_chunked;
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET ingest.merge_chunk_rows', current_database()); END $$;

-- exception mode ignore: a CHECK violation is rejected with its row, the rest load
SELECT id AS j3, staging AS s3
  FROM ingest.begin_async_load('orders', exception_mode => 'ignore', keep_staging => true) \gset
INSERT INTO :s3 VALUES (5, 5, 'ok'), (6, -1, 'bad'), (7, 7, 'ok');
SELECT ingest.submit_async_load(:j3);
SELECT ingest.wait_async_load(:j3, '60 s');
SELECT rows_inserted, rows_rejected, staging IS NOT NULL AS kept FROM ingest.get_async_load_job(:j3);
SELECT row_number, raw_row, sqlstate, message FROM ingest.async_load_reject WHERE job_id = :j3;
SELECT id FROM orders WHERE id >= 5 ORDER BY id;

-- past reject_limit the job fails and nothing of it is applied; retry after fixing the cause
SELECT id AS j4, staging AS s4
  FROM ingest.begin_async_load('orders', exception_mode => 'ignore', reject_limit => 1) \gset
INSERT INTO :s4 VALUES (8, 8, 'ok'), (9, -1, 'bad'), (10, -2, 'bad');
SELECT ingest.submit_async_load(:j4);
SELECT ingest.wait_async_load(:j4, '60 s');
SELECT state, error_sqlstate, error_message, rows_rejected FROM ingest.get_async_load_job(:j4);
SELECT count(*) AS rejects_recorded FROM ingest.async_load_reject WHERE job_id = :j4;
SELECT count(*) AS applied FROM orders WHERE id = 8;
ALTER TABLE orders DROP CONSTRAINT orders_qty_check;
SELECT ingest.retry_async_load(:j4);
SELECT ingest.wait_async_load(:j4, '60 s');
SELECT state, rows_inserted, rows_rejected, attempts FROM ingest.get_async_load_job(:j4);
SELECT id, qty FROM orders WHERE id BETWEEN 8 AND 10 ORDER BY id;

-- strict: the first bad row fails the job
ALTER TABLE orders ADD CONSTRAINT qty_small CHECK (qty < 1000);
SELECT id AS j5, staging AS s5 FROM ingest.begin_async_load('orders') \gset
INSERT INTO :s5 VALUES (11, 1, 'ok'), (12, 5000, 'too big');
SELECT ingest.submit_async_load(:j5);
SELECT ingest.wait_async_load(:j5, '60 s');
SELECT state, error_sqlstate, error_message FROM ingest.get_async_load_job(:j5);
SELECT count(*) FROM orders WHERE id IN (11, 12);

-- overwrite the whole table: readers see old or new rows, never a mix
CREATE TABLE dim (k int PRIMARY KEY, v text);
INSERT INTO dim SELECT g, 'old' FROM generate_series(1, 5) g;
SELECT id AS j6, staging AS s6 FROM ingest.begin_async_load('dim', overwrite => 'table') \gset
INSERT INTO :s6 VALUES (10, 'new'), (11, 'new');
SELECT ingest.submit_async_load(:j6);
SELECT ingest.wait_async_load(:j6, '60 s');
SELECT * FROM dim ORDER BY k;

-- overwrite one partition; rows outside it fail the job
CREATE TABLE sales (day date, amount int) PARTITION BY RANGE (day);
CREATE TABLE sales_jan PARTITION OF sales FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE sales_feb PARTITION OF sales FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
INSERT INTO sales VALUES ('2026-01-05', 1), ('2026-02-05', 2);
SELECT id AS j7, staging AS s7
  FROM ingest.begin_async_load('sales', 'none', overwrite => 'partition',
                               overwrite_partition => 'sales_jan') \gset
INSERT INTO :s7 VALUES ('2026-01-10', 10), ('2026-01-11', 11);
SELECT ingest.submit_async_load(:j7);
SELECT ingest.wait_async_load(:j7, '60 s');
SELECT * FROM sales ORDER BY day;
SELECT id AS j8, staging AS s8
  FROM ingest.begin_async_load('sales', 'none', overwrite => 'partition',
                               overwrite_partition => 'sales_jan') \gset
INSERT INTO :s8 VALUES ('2026-02-10', 99);
SELECT ingest.submit_async_load(:j8);
SELECT ingest.wait_async_load(:j8, '60 s');
SELECT state, error_sqlstate FROM ingest.get_async_load_job(:j8);
SELECT count(*) FROM sales_jan;

-- columns: only these are staged and loaded; the others get their defaults
CREATE TABLE withdef (k int PRIMARY KEY, v text, at text NOT NULL DEFAULT 'default');
SELECT id AS j11, staging AS s11 FROM ingest.begin_async_load('withdef', columns => '{k,v}') \gset
SELECT attname FROM pg_attribute WHERE attrelid = :'s11'::regclass AND attnum > 0 ORDER BY attnum;
INSERT INTO :s11 VALUES (1, 'x');
SELECT ingest.submit_async_load(:j11);
SELECT ingest.wait_async_load(:j11, '60 s');
SELECT * FROM withdef;
SELECT * FROM ingest.begin_async_load('withdef', columns => '{k,nope}');
SELECT * FROM ingest.begin_async_load('withdef', columns => '{k,k}');
SELECT * FROM ingest.begin_async_load('withdef', columns => '{v}');

-- cancel before loading; cancel of an ended job is an error
SELECT id AS j9 FROM ingest.begin_async_load('orders') \gset
SELECT ingest.cancel_async_load(:j9);
SELECT state, staging FROM ingest.get_async_load_job(:j9);
SELECT ingest.cancel_async_load(:j9);
SELECT ingest.cancel_async_load(:j1);

-- state errors
SELECT ingest.submit_async_load(:j1);
SELECT ingest.retry_async_load(:j1);
SELECT id AS j10 FROM ingest.begin_async_load('orders') \gset
SELECT ingest.retry_async_load(:j10);
-- waiting in the transaction that submitted can never end
BEGIN;
SELECT ingest.submit_async_load(:j10);
SELECT ingest.wait_async_load(:j10, '1 s');
ROLLBACK;
-- a timeout returns the current state
SELECT ingest.wait_async_load(:j10, '10 ms');

-- bad input
SELECT ingest.submit_async_load(999999);
SELECT ingest.get_async_load_job(999999);
SELECT * FROM ingest.begin_async_load('no_such_table');
CREATE VIEW orders_v AS SELECT * FROM orders;
SELECT * FROM ingest.begin_async_load('orders_v');
SELECT * FROM ingest.begin_async_load('orders', 'merge');
SELECT * FROM ingest.begin_async_load('orders', conflict_columns => '{nope}');
SELECT * FROM ingest.begin_async_load('orders', conflict_columns => '{note}');
-- an empty list names nothing (NULL is the default)
SELECT * FROM ingest.begin_async_load('orders', update_columns => '{}');
SELECT * FROM ingest.begin_async_load('orders', update_columns => '{id}');
SELECT * FROM ingest.begin_async_load('orders', update_columns => '{nope}');
SELECT * FROM ingest.begin_async_load('orders', 'ignore', update_columns => '{note}');
SELECT * FROM ingest.begin_async_load('events');
SELECT * FROM ingest.begin_async_load('orders', overwrite => 'everything');
SELECT * FROM ingest.begin_async_load('orders', overwrite => 'partition');
SELECT * FROM ingest.begin_async_load('sales', 'none', overwrite => 'partition',
                                      overwrite_partition => 'orders');
-- an overwrite deletes the old rows first: 'update' would find none and empty the table
SELECT * FROM ingest.begin_async_load('orders', 'update', overwrite => 'table');
SELECT * FROM ingest.begin_async_load('sales', 'update', overwrite => 'partition',
                                      overwrite_partition => 'sales_jan');
SELECT * FROM ingest.begin_async_load('orders', exception_mode => 'lenient');
SELECT * FROM ingest.begin_async_load('orders', reject_limit => 3);
SELECT * FROM ingest.begin_async_load('orders', exception_mode => 'ignore', reject_limit => -1);
SELECT * FROM ingest.begin_async_load('events', job_key => 'ckpt-1');

-- jobs restored from a dump were begun in another installation of pg_ingest (the restore's
-- CREATE EXTENSION made a new installation id; a dump of 0.4.0 has none): the workers leave
-- them alone, not claimed, not recovered as orphans, until ingest.resume_restored_jobs().
-- Here jobs are made to look restored by hand.
SELECT restored FROM ingest.get_async_load_job(:j1);
CREATE TABLE restored_t (id int PRIMARY KEY, v text);
CREATE TABLE restored_other (id int PRIMARY KEY);
SELECT id AS r1, staging AS rs1 FROM ingest.begin_async_load('restored_t') \gset
INSERT INTO :rs1 VALUES (1, 'r1'), (2, 'r1');
SELECT id AS r2, staging AS rs2 FROM ingest.begin_async_load('restored_t') \gset
INSERT INTO :rs2 VALUES (2, 'r2'), (3, 'r2');
SELECT id AS r3 FROM ingest.begin_async_load('restored_t') \gset
SELECT id AS r4, staging AS rs4 FROM ingest.begin_async_load('restored_other') \gset
INSERT INTO :rs4 VALUES (4);
-- r1 READY of another installation, r2 LOADING from a dump of 0.4.0, r3 and r4 INIT
UPDATE ingest.async_load_job SET state = 'READY', submitted_at = now(),
       queue_position = nextval('ingest.async_load_queue_seq'), installation = gen_random_uuid()
 WHERE id = :r1;
UPDATE ingest.async_load_job SET state = 'LOADING', submitted_at = now(), started_at = now(),
       queue_position = nextval('ingest.async_load_queue_seq'), attempts = 1, worker_pid = 1,
       installation = NULL
 WHERE id = :r2;
UPDATE ingest.async_load_job SET installation = gen_random_uuid() WHERE id IN (:r3, :r4);
SELECT state, restored, attempts FROM ingest.get_async_load_job() WHERE id IN (:r1, :r2, :r3, :r4)
 ORDER BY id;
-- a submit is the owner's own act: the job becomes this installation's and runs; the worker
-- that applies it neither claims r1 (first in the queue) nor recovers r2
SELECT ingest.submit_async_load(:r4);
SELECT ingest.wait_async_load(:r4, '60 s');
SELECT state, restored, attempts FROM ingest.get_async_load_job() WHERE id IN (:r1, :r2, :r3, :r4)
 ORDER BY id;
SELECT count(*) FROM restored_t;
-- they keep their place in their target's queue: a later job there waits for them
SELECT id AS r5, staging AS rs5 FROM ingest.begin_async_load('restored_t') \gset
INSERT INTO :rs5 VALUES (3, 'r5'), (5, 'r5');
SELECT ingest.submit_async_load(:r5);
SELECT ingest.wait_async_load(:r5, '1 s');
-- resumed (a superuser: every job), they apply in their order; r2 counts its interrupted run
SELECT ingest.resume_restored_jobs();
SELECT ingest.wait_async_load(:r1, '60 s'), ingest.wait_async_load(:r2, '60 s'),
       ingest.wait_async_load(:r5, '60 s');
SELECT state, restored, attempts FROM ingest.get_async_load_job() WHERE id IN (:r1, :r2, :r3, :r5)
 ORDER BY id;
SELECT * FROM restored_t ORDER BY id;
SELECT ingest.resume_restored_jobs();
SELECT ingest.cancel_async_load(:r3);

-- (security is in 21_jobs_security)

-- a strict append loads a GENERATED ALWAYS identity column's staged values, as the other modes do
CREATE TABLE idt (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
SELECT id AS i1, staging AS is1 FROM ingest.begin_async_load('idt', 'none') \gset
INSERT INTO :is1 VALUES (100, 'strict append');
SELECT ingest.submit_async_load(:i1);
SELECT ingest.wait_async_load(:i1, '60 s');
SELECT state, error_sqlstate, rows_inserted FROM ingest.get_async_load_job(:i1);
SELECT * FROM idt;

-- a temporary table cannot be a target: the workers' sessions cannot see it
CREATE TEMP TABLE tmp_target (k int PRIMARY KEY);
SELECT * FROM ingest.begin_async_load('tmp_target');

-- workers serialise their claims with a lock that no role can take: a session holding the
-- advisory lock they once used does not stall them
SELECT pg_advisory_lock(8099558377751147380);
SELECT id AS l1, staging AS ls1 FROM ingest.begin_async_load('orders') \gset
INSERT INTO :ls1 VALUES (40, 4, 'claimed');
SELECT ingest.submit_async_load(:l1);
SELECT ingest.wait_async_load(:l1, '30 s');
SELECT pg_advisory_unlock(8099558377751147380);

-- Jobs held up while this session holds an advisory lock: their rows with v = 'hold' wait for
-- it in a trigger.
CREATE FUNCTION hold_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.v = 'hold' THEN PERFORM pg_advisory_xact_lock(7067001); END IF;
    RETURN NEW;
END $$;

-- a wait that the job waits for cannot end: a transaction that read the job's staging table
-- (dropped when the job finishes) gets a deadlock error instead of waiting forever
CREATE TABLE held (id int PRIMARY KEY, v text);
CREATE TRIGGER hold BEFORE INSERT ON held FOR EACH ROW EXECUTE FUNCTION hold_trg();
SELECT pg_advisory_lock(7067001);
SELECT id AS h1, staging AS hs1 FROM ingest.begin_async_load('held') \gset
INSERT INTO :hs1 VALUES (1, 'hold');
SELECT id AS h2, staging AS hs2 FROM ingest.begin_async_load('held') \gset
INSERT INTO :hs2 VALUES (2, 'after');
SELECT ingest.submit_async_load(:h1), ingest.submit_async_load(:h2);
BEGIN;
SELECT count(*) FROM :hs2;
SELECT pg_advisory_unlock(7067001);
SELECT ingest.wait_async_load(:h2, '30 s');
ROLLBACK;
SELECT ingest.wait_async_load(:h1, '60 s'), ingest.wait_async_load(:h2, '60 s');
SELECT * FROM held ORDER BY id;
-- nor can a wait for a job queued behind one whose worker waits for this session (here for its
-- advisory lock): a deadlock error at once, not the end of the timeout
SELECT pg_advisory_lock(7067001);
SELECT id AS q1, staging AS qs1 FROM ingest.begin_async_load('held') \gset
INSERT INTO :qs1 VALUES (3, 'hold');
SELECT id AS q2, staging AS qs2 FROM ingest.begin_async_load('held') \gset
INSERT INTO :qs2 VALUES (4, 'after');
SELECT ingest.submit_async_load(:q1), ingest.submit_async_load(:q2);
SELECT clock_timestamp() AS q_start \gset
SELECT ingest.wait_async_load(:q2, '120 s');
SELECT clock_timestamp() - :'q_start' < interval '60 s' AS failed_before_the_timeout;
SELECT state FROM ingest.get_async_load_job(:q2);
SELECT pg_advisory_unlock(7067001);
SELECT ingest.wait_async_load(:q1, '60 s'), ingest.wait_async_load(:q2, '60 s');
SELECT * FROM held WHERE id > 2 ORDER BY id;

-- jobs on one partition tree apply in queue order: an overwrite of partition pt1 (through its
-- parent) waits for an earlier upsert aimed at pt1 itself
CREATE TABLE pt (k int PRIMARY KEY, v text) PARTITION BY RANGE (k);
CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (1000);
CREATE TRIGGER hold BEFORE INSERT ON pt1 FOR EACH ROW EXECUTE FUNCTION hold_trg();
INSERT INTO pt VALUES (1, 'old');
SELECT pg_advisory_lock(7067001);
SELECT id AS p1, staging AS ps1 FROM ingest.begin_async_load('pt1') \gset
INSERT INTO :ps1 VALUES (2, 'hold');
SELECT id AS p2, staging AS ps2 FROM ingest.begin_async_load('pt', 'none', overwrite => 'partition',
                                                            overwrite_partition => 'pt1') \gset
INSERT INTO :ps2 VALUES (3, 'overwrite');
SELECT ingest.submit_async_load(:p1), ingest.submit_async_load(:p2);
SELECT ingest.wait_async_load(:p2, '2 s');
SELECT pg_advisory_unlock(7067001);
SELECT ingest.wait_async_load(:p1, '60 s'), ingest.wait_async_load(:p2, '60 s');
SELECT * FROM pt ORDER BY k;
