# ingest.merge() checks that the caller has some privilege on the target and the source before
# it locks them: a role with no right on a table cannot take, or queue for, a lock on it (a
# waiting lock request would block everyone queued behind it).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(ingest_node);

my $node = ingest_node('merge_privileges');
$node->safe_psql('postgres', q{
	CREATE TABLE t (id int PRIMARY KEY, v text);
	CREATE TABLE src (id int, v text);
	CREATE ROLE nobody LOGIN;
	GRANT USAGE ON SCHEMA ingest TO nobody;
});

sub merge_as_nobody
{
	my ($ret, $out, $err) = $node->psql('postgres',
		"SET lock_timeout = '3s'; SELECT * FROM ingest.merge('src', 't', 'upsert')",
		extra_params => [ '-U', 'nobody' ]);
	return $err;
}

my $holder = $node->background_psql('postgres');

# No privilege on the target, which another session holds locked.
$holder->query_safe('BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
my $err = merge_as_nobody();
like($err, qr/permission denied for table t/, 'no privilege on the target: refused');
unlike($err, qr/lock timeout/, 'no privilege on the target: refused without waiting for its lock');
$holder->query_safe('COMMIT');

# Privileges on the target, none on the source, which another session holds locked.
$node->safe_psql('postgres', 'GRANT SELECT, INSERT, UPDATE ON t TO nobody');
$holder->query_safe('BEGIN; LOCK TABLE src IN ACCESS EXCLUSIVE MODE');
$err = merge_as_nobody();
like($err, qr/permission denied for table src/, 'no privilege on the source: refused');
unlike($err, qr/lock timeout/, 'no privilege on the source: refused without waiting for its lock');
$holder->query_safe('COMMIT');

# With both, the merge runs.
$node->safe_psql('postgres', q{
	GRANT SELECT ON src TO nobody;
	INSERT INTO src VALUES (1, 'a'), (2, 'b');
});
$err = merge_as_nobody();
is($err, '', 'with the privileges the merge runs');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '2', 'and loads the rows');

$holder->quit;
$node->stop;
done_testing();
