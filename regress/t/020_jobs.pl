# Async load jobs with a real server: notifications, latch-driven start, reload of
# ingest.max_workers, submission order on one target, cancel during LOADING, crash safety
# (kill -9 of the worker, immediate shutdown) and retention.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use POSIX ();
use Time::HiRes qw(time sleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(ingest_node);

my $node = ingest_node('jobs', 'ingest.launcher_naptime = 1', 'ingest.merge_chunk_rows = 1000', "log_min_messages = 'log'",
	'restart_after_crash = on');

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub job_field
{
	my ($id, $field) = @_;
	return sql("SELECT $field FROM ingest.get_async_load_job($id)");
}

# A job on t (bigint key, text) with rows 1..$n staged, value $tag.
sub staged_job
{
	my ($n, $tag, %opt) = @_;
	my $args = join '', map { ", $_ => $opt{$_}" } sort keys %opt;
	my ($id, $staging) = split /\|/, sql("SELECT id, staging FROM ingest.begin_async_load('t'$args)");
	sql("INSERT INTO $staging SELECT g, '$tag' FROM generate_series(1, $n) g");
	return $id;
}

sub wait_state
{
	my ($id, $want, $what) = @_;
	ok($node->poll_query_until('postgres',
			"SELECT state = '$want' FROM ingest.get_async_load_job($id)"),
		$what // "job $id reaches $want");
}

sql('CREATE TABLE t (k bigint PRIMARY KEY, v text)');

# --- notifications and start latency -------------------------------------------------------
{
	my $id = staged_job(3, 'n');
	my $out = $node->safe_psql('postgres', qq{
		LISTEN ingest_async_load;
		SELECT ingest.submit_async_load($id);
		SELECT ingest.wait_async_load($id, '30 s');
		SELECT 1;
	});
	for my $state (qw(READY LOADING FINISH))
	{
		like($out, qr/payload "$id:$state"/, "NOTIFY ingest_async_load '$id:$state'");
	}
	my $t0 = time;
	my $id2 = staged_job(1, 'latency');
	sql("SELECT ingest.submit_async_load($id2)");
	is(sql("SELECT ingest.wait_async_load($id2, '30 s')"), 'FINISH', '1-row job finishes');
	my $elapsed = time - $t0;
	# Latch-driven: far below the 1 s naptime would be typical; the bound is generous for CI.
	cmp_ok($elapsed, '<', 5, sprintf('submitted job finished in %.3f s (no polling delay)', $elapsed));
}

# --- ingest.max_workers takes effect on reload -----------------------------------------------
{
	$node->append_conf('postgresql.conf', 'ingest.max_workers = 0');
	$node->reload;
	sleep 0.5;
	my $id = staged_job(5, 'w');
	sql("SELECT ingest.submit_async_load($id)");
	sleep 2;
	is(job_field($id, 'state'), 'READY', 'with max_workers = 0 a submitted job waits');
	$node->append_conf('postgresql.conf', 'ingest.max_workers = 2');
	$node->reload;
	wait_state($id, 'FINISH', 'after reload with max_workers = 2 it runs');
}

# --- jobs on one target apply in submission order --------------------------------------------
{
	my @ids = map { staged_job(200, "order$_") } 1 .. 4;
	sql("SELECT ingest.submit_async_load($_)") for @ids;
	wait_state($ids[-1], 'FINISH');
	wait_state($_, 'FINISH') for @ids;
	is(sql("SELECT string_agg(DISTINCT v, ',') FROM t WHERE k <= 200"), 'order4',
		'the last submitted upsert wins');
	my $starts = sql('SELECT string_agg(id::text, \',\' ORDER BY started_at) FROM ingest.async_load_job WHERE id IN (' . join(',', @ids) . ')');
	is($starts, join(',', @ids), 'jobs on one target started in submission order');
}

# --- many short jobs, workers starting and exiting: each job runs once ------------------------
# The launcher once freed a stopped worker's slot after it had already given that slot to a new
# worker that had not attached yet: the new worker ran unseen, its job looked orphaned to the
# next worker's recovery and was applied a second time. Appends on three targets, submitted one
# transaction at a time, keep workers starting and exiting.
{
	my $log_offset = -s $node->logfile;
	sql("CREATE TABLE a$_ (id int, v text)") for 1 .. 3;
	sql(q{
		CREATE PROCEDURE submit_many(first int, n int) LANGUAGE plpgsql AS $$
		DECLARE
			j record;
		BEGIN
			FOR i IN first .. first + n - 1 LOOP
				SELECT * INTO j FROM ingest.begin_async_load(format('a%s', i % 3 + 1)::regclass, 'none');
				EXECUTE format('INSERT INTO %s SELECT g, %L FROM generate_series(1, 10) g', j.staging, i);
				PERFORM ingest.submit_async_load(j.id);
				COMMIT;
				PERFORM pg_sleep(0.003 * (i % 4));
			END LOOP;
		END $$});
	# Three sessions at once, so that submits often land while a worker is exiting.
	my @children;
	for my $k (0 .. 2)
	{
		my $pid = fork();
		die "fork: $!" unless defined $pid;
		if ($pid == 0)
		{
			my ($rc) = $node->psql('postgres', 'CALL submit_many(' . ($k * 100 + 1) . ', 100)');
			POSIX::_exit($rc);
		}
		push @children, $pid;
	}
	my $failed = 0;
	for my $pid (@children)
	{
		waitpid($pid, 0);
		$failed++ if $? != 0;
	}
	is($failed, 0, 'three sessions submit 100 jobs each');
	my $ours = "target::text IN ('a1', 'a2', 'a3')";
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 300 FROM ingest.async_load_job WHERE $ours AND state = 'FINISH'"),
		'300 short jobs finish');
	is(sql('SELECT (SELECT count(*) FROM a1) + (SELECT count(*) FROM a2) + (SELECT count(*) FROM a3)'),
		'3000', 'their 3000 rows are each loaded once');
	is(sql("SELECT count(*) FROM ingest.async_load_job WHERE $ours AND attempts <> 1"), '0',
		'no job was claimed twice');
	my $log = slurp_file($node->logfile, $log_offset);
	unlike($log, qr/was interrupted while loading/, 'no running job was taken for an orphan');
}

# --- live progress of a LOADING job ----------------------------------------------------------
{
	sql('TRUNCATE t');
	# A trigger waits on an advisory lock at key 5000, after four 1000-row chunks are applied.
	sql(q{
		CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.k = 5000 THEN PERFORM pg_advisory_lock(4242); PERFORM pg_advisory_unlock(4242); END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER stall BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION stall();
	});
	my $bg = $node->background_psql('postgres');
	$bg->query_safe('SELECT pg_advisory_lock(4242)');
	my $id = staged_job(8000, 'progress');
	sql("SELECT ingest.submit_async_load($id)");
	ok($node->poll_query_until('postgres',
			"SELECT state = 'LOADING' AND rows_applied >= 4000 FROM ingest.get_async_load_job($id)"),
		'a LOADING job shows the rows applied so far');
	is(sql('SELECT count(*) FROM t'), '0', 'while nothing is visible in the target yet');
	$bg->query_safe('SELECT pg_advisory_unlock(4242)');
	$bg->quit;
	wait_state($id, 'FINISH');
	is(job_field($id, 'rows_applied'), '8000', 'FINISH shows every row applied');
	sql('DROP TRIGGER stall ON t');
}

# --- pg_dump keeps the job catalog ------------------------------------------------------------
{
	my $dump = `pg_dump -h @{[$node->host]} -p @{[$node->port]} -d postgres 2>&1`;
	like($dump, qr/COPY ingest\.async_load_job /, 'pg_dump dumps ingest.async_load_job');
	like($dump, qr/COPY ingest\.async_load_reject /, 'pg_dump dumps ingest.async_load_reject');
}

# Holds an ACCESS EXCLUSIVE lock on t so that a claimed job stays in LOADING.
sub lock_target
{
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_safe('BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE;');
	return $bg;
}

sub loading_pid
{
	my ($id) = @_;
	ok($node->poll_query_until('postgres',
			"SELECT state = 'LOADING' AND worker_pid IS NOT NULL FROM ingest.get_async_load_job($id)"),
		"job $id is LOADING");
	return job_field($id, 'worker_pid');
}

# --- cancel during LOADING: CANCEL, target untouched -----------------------------------------
{
	sql('TRUNCATE t');
	my $id = staged_job(1000, 'cancel');
	my $bg = lock_target();
	sql("SELECT ingest.submit_async_load($id)");
	loading_pid($id);
	is(sql("SELECT ingest.cancel_async_load($id)"), 'CANCEL', 'cancel of a LOADING job returns CANCEL');
	$bg->query_safe('COMMIT');
	$bg->quit;
	is(sql('SELECT count(*) FROM t'), '0', 'the canceled job left the target untouched');
	is(sql("SELECT staging IS NULL FROM ingest.get_async_load_job($id)"), 't', 'its staging is dropped');
	my ($rc, $out, $err) = $node->psql('postgres', "SELECT ingest.cancel_async_load($id)");
	like($err, qr/already ended/, 'a second cancel is an error');
}

# --- crash safety: kill -9 of the worker, and an immediate shutdown --------------------------
for my $how ('kill -9 of the worker', 'immediate shutdown')
{
	sql('TRUNCATE t');
	sql("INSERT INTO t SELECT g, 'before' FROM generate_series(1, 500) g");
	my $id = staged_job(20000, 'after');
	my $bg = lock_target();
	sql("SELECT ingest.submit_async_load($id)");
	my $pid = loading_pid($id);
	if ($how =~ /kill/)
	{
		kill 'KILL', $pid;
		eval { $bg->quit };
		# The postmaster restarts every process after a crash.
		ok($node->poll_query_until('postgres', 'SELECT true'), "$how: server back");
	}
	else
	{
		$node->stop('immediate');
		eval { $bg->quit };
		$node->start;
	}
	wait_state($id, 'FINISH', "$how: the job completes after restart");
	is(job_field($id, 'attempts'), '2', "$how: attempts counts the interrupted run");
	is(sql("SELECT count(*), count(*) FILTER (WHERE v = 'after') FROM t"), '20000|20000',
		"$how: the target holds every row exactly once");
	is(job_field($id, 'rows_inserted') + job_field($id, 'rows_updated'), 20000,
		"$how: the counts are those of one complete run");
}

# --- retention --------------------------------------------------------------------------------
{
	my $kept = sql('SELECT count(*) FROM ingest.async_load_job');
	cmp_ok($kept, '>', 0, 'ended jobs are kept under the default retention');
	$node->append_conf('postgresql.conf', 'ingest.job_retention = 0');
	$node->reload;
	# Retention runs in the workers the launcher starts every naptime.
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM ingest.async_load_job WHERE state IN ('FINISH', 'FAIL', 'CANCEL')"),
		'with job_retention = 0 ended jobs are removed');
	is(sql("SELECT count(*) FROM pg_class WHERE relnamespace = 'ingest_staging'::regnamespace"), '0',
		'and their staging tables');
}

# Only the kill -9 above may have crashed anything; no WARNING except the crash notices.
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal (?!9)\d+|TRAP:|PANIC/, 'no backend crashed on its own');
my @warnings = grep { /WARNING/ && !/terminating connection because of crash of another server process/ }
  split /\n/, $log;
is(scalar(@warnings), 0, 'no unexpected WARNING in the server log') or diag(join("\n", @warnings));
$node->stop;
done_testing();
