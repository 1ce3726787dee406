# A job whose transaction a deadlock rolls back is queued again in its place and applied once
# the other transaction has gone on, not failed (up to 5 attempts): a user's session holds row 2
# and then updates row 1 while the job, which updated row 1, waits for row 2. The session's
# deadlock_timeout is long, so the job's deadlock check (1 s after it began to wait, by when the
# session waits too) runs first and the job is the victim.
# Also: two appends with exception mode 'ignore' into a table with a primary key, submitted
# together with overlapping keys in random order, apply one after the other (side by side they
# deadlocked) and both finish, the second rejecting the keys the first loaded; also when only
# the partitions of a partitioned table have the unique index.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(ingest_node server_log_is_clean);

# The statement path: the direct path would catch the deadlock in its chunk's subtransaction
# and redo the chunk by statement, which then waits for the session (also a right outcome).
my $node = ingest_node('jobs_deadlock', 'ingest.max_workers = 2', 'ingest.launcher_naptime = 1',
	"deadlock_timeout = '1s'", 'ingest.direct_apply = off');
sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
	CREATE TABLE dl (k int PRIMARY KEY, v text);
	INSERT INTO dl VALUES (1, 'old'), (2, 'old');
});

my $user = $node->background_psql('postgres');
$user->query_safe("SET deadlock_timeout = '30s'");
$user->query_safe("BEGIN; UPDATE dl SET v = 'user' WHERE k = 2");

my ($job, $staging) = split /\|/, sql("SELECT id, staging FROM ingest.begin_async_load('dl')");
sql("INSERT INTO $staging VALUES (1, 'job'), (2, 'job'); SELECT ingest.submit_async_load($job)");
# The worker has updated row 1 and waits for row 2.
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted")
  or die 'the job never waited for the session';
# The session now waits for row 1: a deadlock, in which the job is the victim; its rollback
# lets this UPDATE through.
$user->query_safe("UPDATE dl SET v = 'user' WHERE k = 1");
# Queued again, claimed again, it waits for the session, which commits.
$node->poll_query_until('postgres',
	"SELECT attempts >= 2 FROM ingest.async_load_job WHERE id = $job")
  or die 'the job was not attempted again: '
  . sql("SELECT row(state, attempts, error_sqlstate, error_message) FROM ingest.async_load_job WHERE id = $job");
$user->query_safe('COMMIT');
$user->quit;
is(sql("SELECT ingest.wait_async_load($job, '60 s')"), 'FINISH',
	'a job rolled back by a deadlock finishes on its next attempt');
is(sql("SELECT attempts, rows_updated, error_sqlstate IS NULL FROM ingest.async_load_job WHERE id = $job"),
	'2|2|t', 'two attempts, both rows updated, no error recorded');
is(sql('SELECT string_agg(v, \',\' ORDER BY k) FROM dl'), 'job,job',
	'the table holds the job\'s rows, applied after the session\'s');
like(slurp_file($node->logfile),
	qr/attempt 1 of async load job $job was rolled back \(SQLSTATE 40P01: deadlock detected.*\); the job is queued again/s,
	'the server log says why it ran again');

# Two ignore-mode appends with overlapping keys in random order.
sql('CREATE TABLE ap (k int PRIMARY KEY, v text)');
my $log_from = -s $node->logfile;
my ($a, $sa) = split /\|/,
  sql("SELECT id, staging FROM ingest.begin_async_load('ap', 'none', exception_mode => 'ignore')");
sql("INSERT INTO $sa SELECT g, 'a' FROM generate_series(1, 20000) g ORDER BY random()");
my ($b, $sb) = split /\|/,
  sql("SELECT id, staging FROM ingest.begin_async_load('ap', 'none', exception_mode => 'ignore')");
sql("INSERT INTO $sb SELECT g, 'b' FROM generate_series(10001, 30000) g ORDER BY random()");
sql("BEGIN; SELECT ingest.submit_async_load($a), ingest.submit_async_load($b); COMMIT");
is(sql("SELECT ingest.wait_async_load($a, '120 s') || ' ' || ingest.wait_async_load($b, '120 s')"),
	'FINISH FINISH', 'two overlapping ignore-mode appends both finish');
is( sql("SELECT string_agg(format('%s:%s:%s:%s', state, attempts, rows_inserted, rows_rejected), ' ' ORDER BY id)"
		  . " FROM ingest.async_load_job WHERE id IN ($a, $b)"),
	'FINISH:1:20000:0 FINISH:1:10000:10000',
	'one attempt each; the second rejects the 10000 keys the first loaded');
is(sql("SELECT count(*) || ' ' || count(*) FILTER (WHERE v = 'a') FROM ap"), '30000 20000',
	'the table holds every key once, the first job\'s where they overlap');

# The same with the unique index only on the partitions of a partitioned table.
sql(q{
	CREATE TABLE pa (k int, v text) PARTITION BY HASH (k);
	CREATE TABLE pa_0 PARTITION OF pa FOR VALUES WITH (MODULUS 2, REMAINDER 0);
	CREATE TABLE pa_1 PARTITION OF pa FOR VALUES WITH (MODULUS 2, REMAINDER 1);
	CREATE UNIQUE INDEX ON pa_0 (k);
	CREATE UNIQUE INDEX ON pa_1 (k);
});
my ($c, $sc) = split /\|/,
  sql("SELECT id, staging FROM ingest.begin_async_load('pa', 'none', exception_mode => 'ignore')");
sql("INSERT INTO $sc SELECT g, 'c' FROM generate_series(1, 20000) g ORDER BY random()");
my ($d, $sd) = split /\|/,
  sql("SELECT id, staging FROM ingest.begin_async_load('pa', 'none', exception_mode => 'ignore')");
sql("INSERT INTO $sd SELECT g, 'd' FROM generate_series(10001, 30000) g ORDER BY random()");
sql("BEGIN; SELECT ingest.submit_async_load($c), ingest.submit_async_load($d); COMMIT");
is(sql("SELECT ingest.wait_async_load($c, '120 s') || ' ' || ingest.wait_async_load($d, '120 s')"),
	'FINISH FINISH', 'the same on a table whose partitions alone have the unique index');
is( sql("SELECT string_agg(format('%s:%s:%s', attempts, rows_inserted, rows_rejected), ' ' ORDER BY id)"
		  . " FROM ingest.async_load_job WHERE id IN ($c, $d)"),
	'1:20000:0 1:10000:10000', 'one after the other there too');
unlike(slurp_file($node->logfile, $log_from), qr/deadlock detected|was rolled back/,
	'no deadlock between them');
server_log_is_clean($node);
$node->stop;
done_testing();
