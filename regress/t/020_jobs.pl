# Async load jobs with a real server: notifications of every state, latch-driven start (under a
# 60 s naptime), reload of ingest.max_workers, submission order on one target (one job after
# the other), cancel mid-apply, crash safety mid-apply (kill -9 of the worker, immediate
# shutdown) and retention.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use POSIX ();
use Time::HiRes qw(time sleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(ingest_node add_stall_trigger wait_stalled);

my $node = ingest_node('jobs', 'ingest.launcher_naptime = 1', 'ingest.merge_chunk_rows = 1000', "log_min_messages = 'warning'",
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

# The payloads of NOTIFY ingest_async_load for job $id that psql printed in $out, in order.
sub payloads
{
	my ($out, $id) = @_;
	return [ $out =~ /payload "($id:[A-Z]+)"/g ];
}

# --- notifications: every state change, READY .. FINISH, CANCEL and FAIL ----------------------
{
	my $id = staged_job(3, 'n');
	my $out = $node->safe_psql('postgres', qq{
		LISTEN ingest_async_load;
		SELECT ingest.submit_async_load($id);
		SELECT ingest.wait_async_load($id, '30 s');
		SELECT 1;
	});
	is_deeply(payloads($out, $id), [ "$id:READY", "$id:LOADING", "$id:FINISH" ],
		"NOTIFY ingest_async_load '$id:READY', '$id:LOADING', '$id:FINISH', in that order");

	# CANCEL of a job that no worker runs yet (sent by the canceling backend).
	$out = $node->safe_psql('postgres', q{
		LISTEN ingest_async_load;
		SELECT id AS cid FROM ingest.begin_async_load('t') \gset
		SELECT ingest.cancel_async_load(:cid);
		SELECT 'cid=' || :cid;
	});
	my ($cid) = $out =~ /cid=(\d+)/;
	is_deeply(payloads($out, $cid), [ "$cid:INIT", "$cid:CANCEL" ],
		"NOTIFY ingest_async_load '<id>:INIT', then '<id>:CANCEL' when an INIT job is canceled");

	# FAIL (sent by the worker): a strict job whose second row violates a CHECK constraint.
	sql(q{CREATE TABLE f (k bigint PRIMARY KEY, v text CHECK (v <> 'bad'))});
	my ($fid, $fstaging) = split /\|/, sql("SELECT id, staging FROM ingest.begin_async_load('f')");
	sql("INSERT INTO $fstaging VALUES (1, 'good'), (2, 'bad')");
	$out = $node->safe_psql('postgres', qq{
		LISTEN ingest_async_load;
		SELECT ingest.submit_async_load($fid);
		SELECT ingest.wait_async_load($fid, '30 s');
		SELECT 1;
	});
	like($out, qr/^FAIL$/m, 'a job violating a CHECK constraint ends FAIL');
	is_deeply(payloads($out, $fid), [ "$fid:READY", "$fid:LOADING", "$fid:FAIL" ],
		"NOTIFY ingest_async_load '$fid:READY', '$fid:LOADING', '$fid:FAIL', in that order");
	is(sql("SELECT error_sqlstate FROM ingest.get_async_load_job($fid)"), '23514',
		'the failed job records 23514');
	# The CANCEL of a LOADING job (sent by its worker) is checked with the cancel test below.
}

# --- start latency: the launcher is woken by the submit, not by its naptime --------------------
{
	# A naptime far beyond the bounds below: a job that only a periodic pass found would wait a
	# minute. (The launcher also looks for wanted databases once a second whatever the
	# naptime, so a lost wake-up shows as latencies spread up to 1 s: most runs must be well
	# below that.)
	sql('ALTER SYSTEM SET ingest.launcher_naptime = 60');
	$node->reload;
	sleep 1.5;    # the launcher reads its configuration when it next wakes, within 1 s
	is(sql('SHOW ingest.launcher_naptime'), '1min', 'launcher_naptime is 60 s');
	my (@elapsed, @states);
	for my $i (1 .. 8)
	{
		# No worker left that could pick the job up without the launcher.
		$node->poll_query_until('postgres',
			q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pg_ingest worker'})
		  or die 'a pg_ingest worker did not exit';
		my $id = staged_job(1, "latency$i");
		my $t0 = time;
		sql("SELECT ingest.submit_async_load($id)");
		push @states, sql("SELECT ingest.wait_async_load($id, '5 s')");
		push @elapsed, time - $t0;
	}
	my $shown = join(' ', map { sprintf('%.3f', $_) } @elapsed);
	is_deeply(\@states, [ ('FINISH') x 8 ], 'eight 1-row jobs finish under a 60 s naptime');
	cmp_ok((sort { $b <=> $a } @elapsed)[0], '<', 2, "each within 2 s of its submit ($shown s)");
	cmp_ok(scalar(grep { $_ < 0.5 } @elapsed), '>=', 6,
		"at least 6 of 8 within 0.5 s (latch-driven, no 1 s tick): $shown s");
	sql('ALTER SYSTEM RESET ingest.launcher_naptime');
	$node->reload;
	sleep 1.5;
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

# --- jobs on one target apply in submission order, one after the other ----------------------
{
	# Upserts of the same keys: two of them applied at once would overlap in time.
	my @ids = map { staged_job(2000, "order$_") } 1 .. 4;
	sql("SELECT ingest.submit_async_load($_)") for @ids;
	wait_state($_, 'FINISH') for @ids;
	is(sql("SELECT string_agg(DISTINCT v, ',') FROM t WHERE k <= 2000"), 'order4',
		'the last submitted upsert wins');
	my $list = join(',', @ids);
	my $starts = sql("SELECT string_agg(id::text, ',' ORDER BY started_at) FROM ingest.async_load_job WHERE id IN ($list)");
	is($starts, $list, 'jobs on one target started in submission order');
	# Each started only after the one submitted before it had finished.
	my $overlaps = sql(qq{
		SELECT coalesce(string_agg(format('%s started %s, before %s finished %s', id, started_at,
		                                  prev_id, prev_finished), '; '), '')
		  FROM (SELECT id, started_at, lag(id) OVER w AS prev_id, lag(finished_at) OVER w AS prev_finished
		          FROM ingest.get_async_load_job() WHERE id IN ($list) WINDOW w AS (ORDER BY id)) s
		 WHERE prev_id IS NOT NULL AND NOT (started_at > prev_finished)});
	is($overlaps, '', 'each job on the target started after the previous one finished');
	is(sql("SELECT count(*) FROM ingest.get_async_load_job() WHERE id IN ($list) AND started_at IS NOT NULL AND finished_at IS NOT NULL"),
		'4', 'all four have started_at and finished_at');
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

# --- cancel during LOADING, after rows were applied: CANCEL, target untouched ----------------
# The job stalls mid-apply (a trigger waits at key 5000, after four 1000-row chunks). A plain
# append into a table without a key: any of its rows left behind would show.
{
	sql('CREATE TABLE c (k bigint, v text)');
	sql(q{INSERT INTO c SELECT g, 'before' FROM generate_series(1, 100) g});
	add_stall_trigger($node, 'c', 'k', 5000, 4343);
	for my $keep ('false', 'true')
	{
		my $what = "cancel mid-apply (keep_staging $keep)";
		my ($id, $staging) = split /\|/, sql("SELECT id, staging FROM ingest.begin_async_load('c', 'none', exception_mode => 'ignore', keep_staging => $keep)");
		sql("INSERT INTO $staging SELECT g, 'cancel' FROM generate_series(1, 8000) g");
		my $holder = $node->background_psql('postgres');
		$holder->query_safe('SELECT pg_advisory_lock(4343)');
		sql("SELECT ingest.submit_async_load($id)");
		ok(wait_stalled($node, $id, 'j.rows_applied >= 4000'),
			"$what: the job is LOADING with 4000 rows applied, stalled");
		my $pid = job_field($id, 'worker_pid');
		# (cancel waits up to 60 s for the worker to record CANCEL; a cancel that hangs fails.)
		my $out = $node->safe_psql('postgres', qq{
			LISTEN ingest_async_load;
			SELECT ingest.cancel_async_load($id);
			SELECT 1;
		}, timeout => 90);
		like($out, qr/^CANCEL$/m, "$what: cancel returns CANCEL");
		is_deeply(payloads($out, $id), [ "$id:CANCEL" ], "$what: NOTIFY ingest_async_load '$id:CANCEL'");
		# The lock the worker waited for is still held: only the cancel can have ended its wait.
		is(sql("SELECT count(*) FROM pg_locks WHERE pid = $pid AND locktype = 'advisory' AND NOT granted"),
			'0', "$what: when cancel returns, the worker no longer waits in the apply");
		$holder->query_safe('SELECT pg_advisory_unlock(4343)');
		$holder->quit;
		# Whatever the worker might still do comes before it exits.
		ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
			"$what: the worker has ended");
		is(sql(q{SELECT count(*) FILTER (WHERE v = 'cancel'), count(*) FROM c}), '0|100',
			"$what: none of the job's rows are in the target");
		is(sql("SELECT state, rows_inserted, rows_updated, error_message FROM ingest.get_async_load_job($id)"),
			'CANCEL|0|0|canceled by request', "$what: the job is CANCEL with no rows counted");
		if ($keep eq 'true')
		{
			is(sql("SELECT staging::text, (SELECT count(*) FROM $staging) FROM ingest.get_async_load_job($id)"),
				"$staging|8000", "$what: its staging is kept, with every staged row");
		}
		else
		{
			is(sql("SELECT staging IS NULL, to_regclass('$staging') IS NULL FROM ingest.get_async_load_job($id)"),
				't|t', "$what: its staging is dropped");
		}
		my ($rc, $o, $err) = $node->psql('postgres', "SELECT ingest.cancel_async_load($id)");
		like($err, qr/already ended/, "$what: a second cancel is an error");
	}
	sql('DROP TABLE c');
}

# --- crash safety: kill -9 of the worker, and an immediate shutdown, mid-apply ---------------
# The worker is stopped by a trigger at key 5000, rows 1..4999 already written in its
# transaction, then killed. A plain append into a table without a key, so that rows applied
# twice would show as duplicates. The kill -9 hits a chunked apply ('ignore': 1000-row
# statements, four of them done), the immediate shutdown one INSERT ... SELECT (strict).
{
	sql('CREATE TABLE tn (k bigint, v text)');
	add_stall_trigger($node, 'tn', 'k', 5000, 4444);
	for my $how ('kill -9 of the worker', 'immediate shutdown')
	{
		my $exc = $how =~ /kill/ ? 'ignore' : 'strict';
		sql('TRUNCATE tn');
		sql(q{INSERT INTO tn SELECT g, 'before' FROM generate_series(1, 500) g});
		my ($id, $staging) = split /\|/,
		  sql("SELECT id, staging FROM ingest.begin_async_load('tn', 'none', exception_mode => '$exc')");
		sql("INSERT INTO $staging SELECT g, 'after' FROM generate_series(1, 8000) g");
		my $holder = $node->background_psql('postgres', on_error_stop => 0);
		$holder->query_safe('SELECT pg_advisory_lock(4444)');
		sql("SELECT ingest.submit_async_load($id)");
		ok(wait_stalled($node, $id, $exc eq 'ignore' ? 'j.rows_applied >= 4000' : undef),
			"$how: the worker is stopped mid-apply");
		my $pid = job_field($id, 'worker_pid');
		if ($how =~ /kill/)
		{
			kill 'KILL', $pid;
			eval { $holder->quit };
			# The postmaster restarts every process after a crash.
			ok($node->poll_query_until('postgres', 'SELECT true'), "$how: server back");
		}
		else
		{
			$node->stop('immediate');
			eval { $holder->quit };
			$node->start;
		}
		wait_state($id, 'FINISH', "$how: the job completes after restart");
		is(job_field($id, 'attempts'), '2', "$how: attempts counts the interrupted run");
		is(sql(q{SELECT count(*) FILTER (WHERE v = 'before'), count(*) FILTER (WHERE v = 'after'),
		               count(DISTINCT k) FILTER (WHERE v = 'after'), min(k) FILTER (WHERE v = 'after'),
		               max(k) FILTER (WHERE v = 'after') FROM tn}),
			'500|8000|8000|1|8000', "$how: the target holds each staged row exactly once");
		is(sql("SELECT rows_inserted, rows_updated, rows_skipped, rows_rejected, rows_applied FROM ingest.get_async_load_job($id)"),
			'8000|0|0|0|8000', "$how: the counts are exactly those of one complete run");
	}
	sql('DROP TABLE tn');
}

# --- ingest.job_timeout ------------------------------------------------------------------------
{
	sql(q{CREATE TABLE slow (k bigint PRIMARY KEY, v text);
	      CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql
	        AS $$BEGIN PERFORM pg_sleep(60); RETURN NEW; END$$;
	      CREATE TRIGGER slow BEFORE INSERT ON slow FOR EACH ROW EXECUTE FUNCTION slow_row()});
	$node->append_conf('postgresql.conf', 'ingest.job_timeout = 1500');
	$node->reload;
	ok($node->poll_query_until('postgres', "SELECT current_setting('ingest.job_timeout') = '1500ms'"),
		'job_timeout set');
	my ($id, $staging) = split /\|/, sql("SELECT id, staging FROM ingest.begin_async_load('slow', 'none')");
	sql("INSERT INTO $staging VALUES (1, 'x'), (2, 'y')");
	my $t0 = time;
	sql("SELECT ingest.submit_async_load($id)");
	wait_state($id, 'FAIL', 'a job still applying after ingest.job_timeout fails');
	cmp_ok(time - $t0, '<', 30, 'at the timeout, not when its apply would have ended');
	is(job_field($id, 'error_sqlstate'), '57014', 'with 57014');
	like(job_field($id, 'error_message'), qr/still applying after ingest\.job_timeout \(1500 ms\)/,
		'naming the setting');
	is(sql('SELECT count(*) FROM slow'), '0', 'and nothing applied');

	# A job whose own code catches the cancel (EXCEPTION WHEN query_canceled) is ended at twice
	# the timeout: its worker exits (FATAL) and the next worker records the job FAIL.
	sql(q{CREATE FUNCTION stubborn_row() RETURNS trigger LANGUAGE plpgsql AS $$
	      BEGIN
	        LOOP
	          BEGIN PERFORM pg_sleep(60); EXCEPTION WHEN query_canceled THEN NULL; END;
	        END LOOP;
	      END$$;
	      CREATE TABLE stubborn (k bigint PRIMARY KEY, v text);
	      CREATE TRIGGER stubborn BEFORE INSERT ON stubborn FOR EACH ROW EXECUTE FUNCTION stubborn_row()});
	my ($sid, $sstaging) = split /\|/, sql("SELECT id, staging FROM ingest.begin_async_load('stubborn', 'none')");
	sql("INSERT INTO $sstaging VALUES (1, 'x')");
	$t0 = time;
	sql("SELECT ingest.submit_async_load($sid)");
	wait_state($sid, 'FAIL', 'a job that catches the cancel fails all the same');
	cmp_ok(time - $t0, '<', 30, 'soon after twice the timeout');
	is(job_field($sid, 'error_sqlstate'), '57014', 'with 57014');
	like(job_field($sid, 'error_message'), qr/still applying at twice ingest\.job_timeout \(1500 ms\)/,
		'saying why');
	is(sql('SELECT count(*) FROM stubborn'), '0', 'nothing of it applied');
	sql('DROP TABLE stubborn; DROP FUNCTION stubborn_row()');

	sql('DROP TRIGGER slow ON slow');
	sql("SELECT ingest.retry_async_load($id)");
	wait_state($id, 'FINISH', 'retried once the apply is fast, it finishes');
	is(sql('SELECT count(*) FROM slow'), '2', 'with its rows');
	$node->append_conf('postgresql.conf', 'ingest.job_timeout = 0');
	$node->reload;
	ok($node->poll_query_until('postgres', "SELECT current_setting('ingest.job_timeout') = '0'"),
		'job_timeout reset');
	sql('DROP TABLE slow; DROP FUNCTION slow_row()');
}

# --- retention --------------------------------------------------------------------------------
{
	# A view on a staging table (another role's, say) does not keep its job from ending, nor
	# the other jobs from going: the table is kept with its job, with a WARNING, until the view
	# is dropped.
	my ($pinned, $pinned_staging) = split /\|/, sql("SELECT id, staging FROM ingest.begin_async_load('t', 'upsert')");
	sql("INSERT INTO $pinned_staging VALUES (900001, 'pinned')");
	sql("CREATE VIEW pin_view AS SELECT * FROM $pinned_staging");
	sql("SELECT ingest.submit_async_load($pinned)");
	wait_state($pinned, 'FINISH', 'a job whose staging table a view depends on finishes');
	is(sql("SELECT v FROM t WHERE k = 900001"), 'pinned', 'and its row is loaded');
	is(sql("SELECT to_regclass('$pinned_staging') IS NOT NULL"), 't', 'its staging table is kept');

	my $kept = sql('SELECT count(*) FROM ingest.async_load_job');
	cmp_ok($kept, '>', 1, 'ended jobs are kept under the default retention');
	$node->append_conf('postgresql.conf', 'ingest.job_retention = 0');
	$node->reload;
	# Retention runs in the workers the launcher starts every naptime.
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM ingest.async_load_job WHERE state IN ('FINISH', 'FAIL', 'CANCEL') AND id <> $pinned"),
		'with job_retention = 0 ended jobs are removed');
	is(sql("SELECT count(*) FROM pg_class WHERE relnamespace = 'ingest_staging'::regnamespace AND oid <> '$pinned_staging'::regclass"), '0',
		'and their staging tables');
	is(sql("SELECT state FROM ingest.get_async_load_job($pinned)"), 'FINISH',
		'the job whose staging table cannot be dropped is kept');
	sql('DROP VIEW pin_view');
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_class WHERE relnamespace = 'ingest_staging'::regnamespace"),
		'once the view is gone, retention drops the table');
	is(sql("SELECT count(*) FROM ingest.async_load_job WHERE id = $pinned"), '0', 'and its job');
}

# Only the kill -9 above may have crashed anything; no WARNING except the crash notices.
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal (?!9)\d+|TRAP:|PANIC/, 'no backend crashed on its own');
# (log_min_messages = warning: WARNINGs reach the log.) Expected: the crash notices, and the
# pinned staging table of the retention test, kept with a WARNING at its end and every pass.
my @kept = grep { /WARNING:.*staging table .* of async load job \d+ is kept: other objects depend on it/ }
  split /\n/, $log;
cmp_ok(scalar(@kept), '>=', 2, 'the kept staging table was reported with a WARNING');
my @warnings = grep {
	/WARNING/
	  && !/terminating connection because of crash of another server process/
	  && !/is kept: other objects depend on it/
} split /\n/, $log;
is(scalar(@warnings), 0, 'no unexpected WARNING in the server log') or diag(join("\n", @warnings));
$node->stop;
done_testing();
