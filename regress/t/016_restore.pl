# pg_dump / pg_restore of a database with async load jobs. A restore writes the job table (a
# pg_extension_config_dump table) before the targets' rows, keys and privileges and before the
# staging tables' rows, while the launcher keeps visiting the database. Jobs restored READY or
# LOADING must not be applied, recovered as orphans or removed by retention on their own, in a
# new database or in one cleaned in place (--clean): pg_restore completes without errors and
# the jobs wait until ingest.resume_restored_jobs() (the caller's jobs; every job for a
# superuser or ingest_admin), then apply with the right rows. Before 0.5.0 an upsert job failed
# (permission denied for its staging table, or no primary key on the target), an append job
# finished and dropped its staging table so that pg_restore failed on its rows, and in a new
# database READY jobs waited forever.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use IPC::Run;
use Time::HiRes ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(ingest_node);

# Room for parallel query beside the launcher and its workers.
my $node = ingest_node('restore', 'ingest.launcher_naptime = 1', 'max_worker_processes = 16');
my $dump = PostgreSQL::Test::Utils::tempdir() . '/src.dump';
my $rows = 500000;    # a restore of some seconds, for the launcher's passes to fall inside

sub sql
{
	my ($db, $query, $role) = @_;
	return $node->safe_psql($db, $query,
		$role ? (extra_params => [ '-U', $role ]) : ());
}

sub set_conf
{
	my ($setting) = @_;
	sql('postgres', "ALTER SYSTEM $setting");
	sql('postgres', 'SELECT pg_reload_conf()');
	sleep 1;    # the launcher and the workers read it
}

# A job on $target with $n rows staged (ids from 1, value $tag), submitted unless asked not to.
sub staged_job
{
	my ($db, $role, $target, $n, $tag, %opt) = @_;
	my $mode = $opt{mode} // 'upsert';
	my ($id, $staging) = split /\|/,
	  sql($db, "SELECT id, staging FROM ingest.begin_async_load('$target', '$mode')", $role);
	sql($db, "INSERT INTO $staging SELECT g, '$tag' FROM generate_series(1, $n) g", $role);
	sql($db, "SELECT ingest.submit_async_load($id)", $role) unless $opt{init};
	return $id;
}

sub restore
{
	my ($db, @opts) = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run [ 'pg_restore', '-h', $node->host, '-p', $node->port, '-U',
		'postgres', @opts, '-d', $db, $dump ], '>', \$out, '2>', \$err;
	my $what = join(' ', 'pg_restore', @opts, 'into', $db);
	ok($ok, "$what succeeds");
	is($err, '', "$what reports no error");
}

# --- the source: a finished job, one LOADING, two READY, one INIT --------------------------
sql('postgres', 'CREATE DATABASE src');
sql('postgres', 'CREATE ROLE alice LOGIN');
sql('src', qq{
	CREATE EXTENSION pg_ingest;
	CREATE TABLE orders (id int PRIMARY KEY, v text);
	INSERT INTO orders SELECT g, 'orig' FROM generate_series(1, $rows) g;
	GRANT SELECT, INSERT, UPDATE ON orders TO alice;
	CREATE TABLE events (at int, what text);
	CREATE TABLE slow (id int PRIMARY KEY, v text);
	CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN
		PERFORM pg_advisory_lock(4242);
		PERFORM pg_advisory_unlock(4242);
		RETURN NEW;
	END \$\$;
	CREATE TRIGGER stall BEFORE INSERT ON slow FOR EACH ROW EXECUTE FUNCTION stall();
});
my $ja = staged_job('src', 'alice', 'orders', 100, 'A');
is(sql('src', "SELECT ingest.wait_async_load($ja, '60 s')", 'alice'), 'FINISH', 'job A finishes');

# L stays LOADING: its target's trigger waits for a lock held here.
my $bg = $node->background_psql('src');
$bg->query_safe('SELECT pg_advisory_lock(4242)');
my $jl = staged_job('src', undef, 'slow', 10, 'L', mode => 'none');
ok($node->poll_query_until('src', "SELECT state = 'LOADING' FROM ingest.get_async_load_job($jl)"),
	'job L is LOADING');

set_conf('SET ingest.max_workers = 0');
my $jb = staged_job('src', 'alice', 'orders', 1000, 'B');
my $jc = staged_job('src', undef, 'events', 500, 'C', mode => 'none');
my $jd = staged_job('src', 'alice', 'orders', 5, 'D', init => 1);
is(sql('src', 'SELECT string_agg(state::text, \',\' ORDER BY id) FROM ingest.async_load_job'),
	'FINISH,LOADING,READY,READY,INIT', 'the source has jobs in every state');

my ($ok, $out, $err) = (undef, '', '');
$ok = IPC::Run::run [ 'pg_dump', '-h', $node->host, '-p', $node->port, '-U', 'postgres', '-Fc',
	'-d', 'src', '-f', $dump ], '>', \$out, '2>', \$err;
ok($ok, 'pg_dump of the source') or diag($err);

# The source goes on without B and C; L finishes there.
sql('src', "SELECT ingest.cancel_async_load($jb), ingest.cancel_async_load($jc)");
$bg->query_safe('SELECT pg_advisory_unlock(4242)');
$bg->quit;
is(sql('src', "SELECT ingest.wait_async_load($jl, '60 s')"), 'FINISH', 'job L finishes in the source');
set_conf('RESET ingest.max_workers');

my $jobs_query = q{SELECT string_agg(format('%s:%s:%s', id, state, restored), ',' ORDER BY id)
	FROM ingest.get_async_load_job()};
my $restored = "$ja:FINISH:t,$jl:LOADING:t,$jb:READY:t,$jc:READY:t,$jd:INIT:t";
my $report = 'database "%s" has 5 async load jobs restored from a dump \(3 of them READY or '
  . 'LOADING\), which workers leave alone';

# Waits until a worker has visited $db after its restore (it reports the restored jobs, within
# a launcher pass or two), and for two more launcher passes.
sub workers_visited
{
	my ($db, $offset) = @_;
	my $re = sprintf($report, $db);
	my $found = 0;
	for (1 .. 300)
	{
		last if $found = slurp_file($node->logfile, $offset) =~ /WARNING:  pg_ingest: $re/;
		Time::HiRes::sleep(0.1);
	}
	ok($found, "a worker in $db reports the restored jobs");
	sleep 2;
}

# The restored jobs are untouched: states, targets, staging; and they are shown as restored.
sub untouched
{
	my ($db) = @_;
	is(sql($db, 'SELECT string_agg(state::text, \',\' ORDER BY id) FROM ingest.async_load_job'),
		'FINISH,LOADING,READY,READY,INIT', "$db: restored jobs keep their states");
	is(sql($db, "SELECT count(*) FILTER (WHERE v = 'B'), count(*) FILTER (WHERE v = 'A') FROM orders"),
		'0|100', "$db: job B was not applied");
	is(sql($db, 'SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM slow)'), '0|0',
		"$db: jobs C and L were not applied");
	is(sql($db, "SELECT (SELECT count(*) FROM ingest_staging.job_$jb), (SELECT count(*) FROM "
			  . "ingest_staging.job_$jc), (SELECT count(*) FROM ingest_staging.job_$jl), "
			  . "(SELECT count(*) FROM ingest_staging.job_$jd)"),
		'1000|500|10|5', "$db: every staging table holds its rows");
	is(sql($db, $jobs_query), $restored, "$db: restored jobs are shown waiting for a resume");
}

# --- restore with --clean into the source itself ---------------------------------------------
{
	my $offset = -s $node->logfile;
	restore('src', '--clean', '--if-exists');
	workers_visited('src', $offset);
	untouched('src');
	is(sql('src', 'SELECT ingest.resume_restored_jobs()'), '5', 'the superuser resumes all 5 jobs');
	is(sql('src', "SELECT ingest.wait_async_load($jb, '60 s'), ingest.wait_async_load($jc, '60 s'), "
			  . "ingest.wait_async_load($jl, '60 s')"),
		'FINISH|FINISH|FINISH', 'jobs B, C and L finish');
	is(sql('src', "SELECT count(*) FILTER (WHERE v = 'B'), (SELECT count(*) FROM events), "
			  . "(SELECT count(*) FROM slow) FROM orders"),
		'1000|500|10', 'with their rows');
}

# --- restore into a new database -------------------------------------------------------------
{
	sql('postgres', 'CREATE DATABASE dst');
	my $offset = -s $node->logfile;
	restore('dst');
	workers_visited('dst', $offset);
	untouched('dst');

	# alice resumes hers (A, B, D): B applies; C and L are not hers and still wait.
	is(sql('dst', 'SELECT ingest.resume_restored_jobs()', 'alice'), '3', 'alice resumes her 3 jobs');
	is(sql('dst', "SELECT ingest.wait_async_load($jb, '60 s')", 'alice'), 'FINISH', 'job B finishes');
	is(sql('dst', $jobs_query, 'alice'), "$ja:FINISH:f,$jb:FINISH:f,$jd:INIT:f",
		'alice sees her jobs adopted');
	is(sql('dst', "SELECT count(*) FILTER (WHERE v = 'B'), count(*) FROM orders"), "1000|$rows",
		'job B upserted its 1000 rows');
	is(sql('dst', "SELECT state, restored FROM ingest.get_async_load_job($jc)"), 'READY|t',
		'job C (not alice\'s) still waits');

	# The superuser resumes the rest.
	is(sql('dst', 'SELECT ingest.resume_restored_jobs()'), '2', 'the superuser resumes C and L');
	is(sql('dst', "SELECT ingest.wait_async_load($jc, '60 s'), ingest.wait_async_load($jl, '60 s')"),
		'FINISH|FINISH', 'jobs C and L finish');
	is(sql('dst', 'SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM slow)'), '500|10',
		'jobs C and L applied their rows once');
	is(sql('dst', "SELECT attempts FROM ingest.get_async_load_job($jl)"), '2',
		'job L counts its interrupted run');
	is(sql('dst', 'SELECT ingest.resume_restored_jobs()'), '0', 'nothing is left to resume');
	# D was begun before the dump: its owner submits it here.
	sql('dst', "SELECT ingest.submit_async_load($jd)", 'alice');
	is(sql('dst', "SELECT ingest.wait_async_load($jd, '60 s')", 'alice'), 'FINISH', 'job D finishes');
}

# --- retention leaves restored jobs alone ----------------------------------------------------
{
	set_conf('SET ingest.job_retention = 0');
	sql('postgres', 'CREATE DATABASE dst2');
	my $offset = -s $node->logfile;
	restore('dst2');
	workers_visited('dst2', $offset);
	untouched('dst2');
	is(sql('dst2', 'SELECT ingest.resume_restored_jobs()'), '5', 'the restored jobs are resumed');
	# Every resumed job but D (INIT, its owner never submits it here) runs, ends and goes.
	ok($node->poll_query_until('dst2', "SELECT count(*) = 0 FROM ingest.async_load_job WHERE state <> 'INIT'"),
		'once resumed, ended jobs go by retention');
	is(sql('dst2', "SELECT count(*) FILTER (WHERE v = 'B'), (SELECT count(*) FROM events), "
			  . "(SELECT count(*) FROM slow) FROM orders"),
		'1000|500|10', 'after they applied their rows (they finished, not failed)');
	set_conf('RESET ingest.job_retention');
}

# --- databases made from one template share ingest.installation's row ---------------------
# A job restored from one into the other is still told apart (the id a job records is made
# particular to its database).
{
	sql('postgres', 'CREATE DATABASE tmpl');
	sql('tmpl', 'CREATE EXTENSION pg_ingest');
	sql('postgres', 'CREATE DATABASE tsrc TEMPLATE tmpl');
	sql('postgres', 'CREATE DATABASE tdst TEMPLATE tmpl');
	is(sql('tsrc', 'SELECT id FROM ingest.installation'),
		sql('tdst', 'SELECT id FROM ingest.installation'), 'both copies have the same row');
	sql('tsrc', 'CREATE TABLE tt (id int PRIMARY KEY, v text)');
	my $job = sql('tsrc', "SELECT id FROM ingest.begin_async_load('tt', 'upsert')");
	is(sql('tsrc', "SELECT restored FROM ingest.get_async_load_job($job)"), 'f',
		'the job is its own database\'s');
	my $tdump = PostgreSQL::Test::Utils::tempdir() . '/tsrc.dump';
	my ($out, $err) = ('', '');
	ok( IPC::Run::run(
			[ 'pg_dump', '-h', $node->host, '-p', $node->port, '-U', 'postgres', '-Fc', '-f',
				$tdump, 'tsrc' ], '>', \$out, '2>', \$err),
		'pg_dump of a template copy') or diag($err);
	# Into a database that has the extension already: "schema ingest already exists" is the one
	# error pg_restore reports (and goes on).
	IPC::Run::run [ 'pg_restore', '-h', $node->host, '-p', $node->port, '-U', 'postgres', '-d',
		'tdst', $tdump ], '>', \$out, '2>', \$err;
	my @errors = grep { /ERROR/ && !/schema "ingest" already exists/ } split /\n/, $err;
	is(scalar(@errors), 0, 'pg_restore into the other copy') or diag($err);
	is(sql('tdst', "SELECT state, restored FROM ingest.get_async_load_job($job)"), 'INIT|t',
		'the job restored into the other copy is a restored one');
}

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|TRAP:|PANIC/, 'no backend crashed');
my @warnings = grep { /WARNING/ && !/restored from a dump/ } split /\n/, $log;
is(scalar(@warnings), 0, 'no other WARNING in the server log') or diag(join("\n", @warnings));
$node->stop;
done_testing();
