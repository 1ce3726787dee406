# A role that holds a lock on its own job row in an open transaction (a cancel or a retry not
# yet committed) must not stall the workers of the cluster: the claim, the recovery of
# orphaned jobs and the retention pass skip locked rows instead of waiting for them, so another
# role's job still runs. Its own job stays where it was and is handled once the lock is gone.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(ingest_node);

# Retention is long until a test wants it: an aged job is not removed before it is locked.
my $node = ingest_node('jobs_row_locks', 'ingest.max_workers = 2',
	'ingest.launcher_naptime = 1', 'ingest.job_retention = 365d');
sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE TABLE ta (id int PRIMARY KEY, v text);
	CREATE TABLE tb (id int PRIMARY KEY, v text);
	GRANT SELECT, INSERT, UPDATE ON ta TO alice;
	GRANT SELECT, INSERT, UPDATE ON tb TO bob;
});

sub as
{
	my ($role, $query) = @_;
	return $node->safe_psql('postgres', "SET ROLE $role; $query");
}

# A job of $role on $table with one row, submitted; returns its id.
sub submitted_job
{
	my ($role, $table, $id) = @_;
	my $row = as($role, "SELECT id || ' ' || staging FROM ingest.begin_async_load('$table')");
	my ($job, $staging) = split / /, $row;
	as($role, "INSERT INTO $staging VALUES ($id, 'x'); SELECT ingest.submit_async_load($job)");
	return $job;
}

sub state_of
{
	return sql("SELECT state FROM ingest.async_load_job WHERE id = $_[0]");
}

# --- the claim: alice's READY job locked by her uncommitted cancel ---------------------------
# With no worker allowed, her job is submitted first (so every claim looks at it first), her
# session locks its row with a cancel it does not commit, and bob submits his; then workers may
# run.
sub set_conf
{
	$node->append_conf('postgresql.conf', $_[0]);
	$node->reload;
}
sub set_max_workers { set_conf("ingest.max_workers = $_[0]"); }
set_max_workers(0);
# A worker started before the reload took effect may still be about: none may claim below.
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pg_ingest worker'"),
	'no worker is running');
my $a1 = submitted_job('alice', 'ta', 1);
my $holder = $node->background_psql('postgres');
$holder->query_safe('SET ROLE alice');
$holder->query_safe("BEGIN; SELECT ingest.cancel_async_load($a1)");
my $b1 = submitted_job('bob', 'tb', 1);
# Waited for, not just read at once: two launcher passes (naptime 1 s) start no worker.
is(as('bob', "SELECT ingest.wait_async_load($b1, '2 s')"), 'READY', 'no worker runs it while max_workers = 0');
set_max_workers(2);
is(as('bob', "SELECT ingest.wait_async_load($b1, '30 s')"), 'FINISH',
	"bob's job runs while alice's session holds her older job's row");
is(state_of($a1), 'READY', "alice's job was skipped, not claimed");
$holder->query_safe('ROLLBACK');
is(as('alice', "SELECT ingest.wait_async_load($a1, '30 s')"), 'FINISH',
	"alice's job runs once her transaction is gone");

# --- retention: an old FAIL job locked by its owner's uncommitted retry -----------------------
my $a2 = submitted_job('alice', 'ta', 2);
is(as('alice', "SELECT ingest.wait_async_load($a2, '30 s')"), 'FINISH', 'a second job of alice');
# Made to look old and failed, so that every worker's retention pass deletes it.
sql(qq{UPDATE ingest.async_load_job SET state = 'FAIL', finished_at = now() - interval '30 days'
	WHERE id = $a2});
$holder->query_safe('SET ROLE alice');
$holder->query_safe("BEGIN; SELECT ingest.retry_async_load($a2)");
# Now retention would remove it (every worker runs a retention pass when it starts).
set_conf('ingest.job_retention = 1d');
ok($node->poll_query_until('postgres', "SELECT current_setting('ingest.job_retention') = '1d'"),
	'the shorter retention is in effect');
my $b2 = submitted_job('bob', 'tb', 2);
is(as('bob', "SELECT ingest.wait_async_load($b2, '30 s')"), 'FINISH',
	"bob's job runs while alice's session holds an old job's row that retention would remove");
is(state_of($a2), 'FAIL', "the locked row was left alone");
$holder->query_safe('ROLLBACK');
$holder->quit;

$node->stop;
done_testing();
