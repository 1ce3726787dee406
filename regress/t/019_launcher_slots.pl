# Async load worker slots are not lost when the launcher or a worker dies, with
# ingest.max_workers = 1 so that one lost slot stops every job:
#  * a slot the launcher reserved before it died, with no worker attached (the launcher reserves,
#    then starts the worker, and only it could free the slot of a worker that never attaches),
#    is freed by the restarted launcher;
#  * a worker that the dead launcher started and that attaches late runs nothing;
#  * an attached worker frees its slot when it is terminated, and a crash resets the slots.
# Test-only C functions (not in the extension script) reserve a slot the way the launcher does,
# count the slots in use and start a worker for an old reservation.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use Time::HiRes qw(time sleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(ingest_node add_stall_trigger wait_stalled server_log_is_clean);

my $node = ingest_node('slots', 'ingest.max_workers = 1', 'ingest.launcher_naptime = 1',
	'restart_after_crash = on');

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
	CREATE FUNCTION pgi_test_reserve_worker_slot() RETURNS text
		LANGUAGE c AS 'pg_ingest_test', 'pgi_test_reserve_worker_slot';
	CREATE FUNCTION pgi_test_worker_slots_in_use() RETURNS int
		LANGUAGE c AS 'pg_ingest_test', 'pgi_test_worker_slots_in_use';
	CREATE FUNCTION pgi_test_start_worker(slot int, generation bigint) RETURNS boolean
		LANGUAGE c STRICT AS 'pg_ingest_test', 'pgi_test_start_worker';
});

# Bounded polls: a lost slot must fail the test, not hang it for poll_query_until's 180 s.
# Errors (the server restarting after a crash) count as "not yet".
sub poll_until
{
	my ($query, $seconds) = @_;
	my $deadline = time + $seconds;
	while (time < $deadline)
	{
		my ($rc, $out) = $node->psql('postgres', $query);
		return 1 if $rc == 0 && $out eq 't';
		sleep 0.1;
	}
	return 0;
}

my $idle = q{SELECT pgi_test_worker_slots_in_use() = 0
	AND NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_ingest worker')};

# Idle, and still idle a moment later: a launcher that just started frees or reserves slots for
# its start-up pass (one worker per database) in between two polls.
sub idle_settled
{
	my ($seconds) = @_;
	my $deadline = time + $seconds;
	while (time < $deadline)
	{
		return 1 if poll_until($idle, $deadline - time) && (sleep(1.5), poll_until($idle, 0.2));
	}
	return 0;
}

# Reserves a slot as the launcher does; the launcher's start-up pass may take it first, so
# retry while that worker comes and goes.
sub reserve_slot
{
	my $deadline = time + 30;
	while (time < $deadline)
	{
		my $r = sql('SELECT pgi_test_reserve_worker_slot()');
		return split /:/, $r if $r ne '';
		sleep 0.2;
	}
	return;
}

sub launcher_pid
{
	return sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_ingest launcher'});
}

# Terminates the launcher and waits for the postmaster to restart it (bgw_restart_time 5 s).
sub restart_launcher
{
	my ($what) = @_;
	my $old = launcher_pid();
	like($old, qr/^\d+$/, "$what: the launcher runs");
	sql("SELECT pg_terminate_backend($old)");
	ok(poll_until(qq{SELECT EXISTS (SELECT FROM pg_stat_activity
		WHERE backend_type = 'pg_ingest launcher' AND pid <> $old)}, 30),
		"$what: the launcher is restarted");
}

# A submitted job on $table with rows 1..$n staged, value $tag.
sub submit_job
{
	my ($table, $n, $tag) = @_;
	my ($id, $staging) = split /\|/,
	  sql("SELECT id, staging FROM ingest.begin_async_load('$table', 'none')");
	sql("INSERT INTO $staging SELECT g, '$tag' FROM generate_series(1, $n) g");
	sql("SELECT ingest.submit_async_load($id)");
	return $id;
}

sql('CREATE TABLE t (k bigint, v text)');
ok(idle_settled(30), 'the workers started with the server have exited');

# --- a slot reserved by a launcher that died before its worker attached ------------------------
my ($slot, $generation);
{
	($slot, $generation) = reserve_slot();
	like($generation, qr/^\d+$/, 'a slot is reserved, no worker started');
	is(sql('SELECT pgi_test_worker_slots_in_use()'), '1', 'the one slot is in use');
	my $id = submit_job('t', 10, 'first');
	is(sql("SELECT ingest.wait_async_load($id, '2 s')"), 'READY',
		'while it is reserved a submitted job waits');
	my $log_offset = -s $node->logfile;
	restart_launcher('leaked reservation');
	is(sql("SELECT ingest.wait_async_load($id, '20 s')"), 'FINISH',
		'the restarted launcher frees the slot: the job runs');
	ok(poll_until($idle, 20), 'and no slot stays in use');
	like(slurp_file($node->logfile, $log_offset),
		qr/LOG:  pg_ingest launcher freed 1 worker slot that its previous run reserved/,
		'the launcher logs the slot it freed');
}

# --- a worker that the dead launcher started attaches after the slot was given to another ------
{
	my ($slot1, $gen1) = reserve_slot();
	like($gen1, qr/^\d+$/, 'late attach: a slot is reserved');
	restart_launcher('late attach');
	ok(idle_settled(20), 'late attach: the restarted launcher frees the reservation');
	# A worker for the old reservation, while the slot is free: it must not take it.
	is(sql("SELECT pgi_test_start_worker($slot1, $gen1)"), 't',
		'late attach: a worker of the old reservation starts and exits');
	is(sql('SELECT pgi_test_worker_slots_in_use()'), '0', 'late attach: it did not take the free slot');

	# The slot is reserved again for a job that stalls mid-apply; the old reservation's worker
	# starts meanwhile.
	add_stall_trigger($node, 't', 'k', 5, 4646);
	my $holder = $node->background_psql('postgres');
	$holder->query_safe('SELECT pg_advisory_lock(4646)');
	my $id = submit_job('t', 10, 'second');
	ok(wait_stalled($node, $id), 'late attach: a job stalls in the slot reserved again');
	my $pid = sql("SELECT worker_pid FROM ingest.get_async_load_job($id)");
	my $second = submit_job('t', 10, 'third');
	is(sql("SELECT pgi_test_start_worker($slot1, $gen1)"), 't',
		'late attach: a worker of the old reservation starts and exits meanwhile');
	is(sql('SELECT pgi_test_worker_slots_in_use()'), '1', 'late attach: one slot is in use');
	is(sql(qq{SELECT string_agg(pid::text, ',') FROM pg_stat_activity
		WHERE backend_type = 'pg_ingest worker'}), $pid, 'late attach: only the stalled worker runs');
	is(sql("SELECT state FROM ingest.get_async_load_job($second)"), 'READY',
		'late attach: the next job waits for the stalled one');
	$holder->query_safe('SELECT pg_advisory_unlock(4646)');
	$holder->quit;
	is(sql("SELECT ingest.wait_async_load($second, '20 s')"), 'FINISH', 'late attach: both jobs finish');
	is(sql("SELECT string_agg(state || '/' || attempts, ',' ORDER BY id) FROM ingest.get_async_load_job()"),
		'FINISH/1,FINISH/1,FINISH/1', 'late attach: every job ran once');
	is(sql("SELECT string_agg(v || '=' || n, ',' ORDER BY v) FROM (SELECT v, count(*) n FROM t GROUP BY v) s"),
		'first=10,second=10,third=10', 'late attach: each job loaded its rows once');
	ok(poll_until($idle, 20), 'late attach: no slot stays in use');
}

# --- an attached worker that is terminated frees its slot --------------------------------------
{
	my $holder = $node->background_psql('postgres');
	$holder->query_safe('SELECT pg_advisory_lock(4646)');
	my $id = submit_job('t', 10, 'terminated');
	ok(wait_stalled($node, $id), 'terminated worker: a job stalls mid-apply');
	my $pid = sql("SELECT worker_pid FROM ingest.get_async_load_job($id)");
	sql("SELECT pg_terminate_backend($pid)");
	$holder->query_safe('SELECT pg_advisory_unlock(4646)');
	$holder->quit;
	is(sql("SELECT ingest.wait_async_load($id, '20 s')"), 'FINISH',
		'terminated worker: the job is recovered and runs in the freed slot');
	is(sql("SELECT attempts FROM ingest.get_async_load_job($id)"), '2', 'terminated worker: attempts 2');
	ok(poll_until($idle, 20), 'terminated worker: no slot stays in use');
}

server_log_is_clean($node);

# --- a crash of an attached worker: the postmaster resets shared memory, slots included ----------
{
	my $holder = $node->background_psql('postgres', on_error_stop => 0);
	$holder->query_safe('SELECT pg_advisory_lock(4646)');
	my $id = submit_job('t', 10, 'crashed');
	ok(wait_stalled($node, $id), 'crashed worker: a job stalls mid-apply');
	kill 'KILL', sql("SELECT worker_pid FROM ingest.get_async_load_job($id)");
	eval { $holder->quit };
	ok(poll_until('SELECT true', 60), 'crashed worker: server back');
	is(sql("SELECT ingest.wait_async_load($id, '30 s')"), 'FINISH',
		'crashed worker: the job runs again after the restart');
	ok(poll_until($idle, 20), 'crashed worker: no slot stays in use');
	is(sql("SELECT string_agg(v || '=' || n, ',' ORDER BY v) FROM (SELECT v, count(*) n FROM t GROUP BY v) s"),
		'crashed=10,first=10,second=10,terminated=10,third=10', 'every job loaded its rows once');
}

$node->stop;
done_testing();
