# The launcher keeps one entry per database it knows of. More databases than its table once held
# (64) must not leave a new database's jobs READY forever: entries of databases without
# pg_ingest are freed, and the table has room for hundreds.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(ingest_node);

my $node = ingest_node('many_dbs', 'ingest.launcher_naptime = 1', 'fsync = off');

# 80 databases without pg_ingest; a restart makes the launcher look at every one of them.
$node->safe_psql('postgres', "CREATE DATABASE many_$_") for 1 .. 80;
$node->restart;

# A database created after them, with pg_ingest: its job is applied.
$node->safe_psql('postgres', 'CREATE DATABASE late');
$node->safe_psql('late', q{
	CREATE EXTENSION pg_ingest;
	CREATE TABLE t (id bigint PRIMARY KEY, v text);
});
my ($id, $staging) = split /\|/,
  $node->safe_psql('late', "SELECT id, staging FROM ingest.begin_async_load('t')");
$node->safe_psql('late', "INSERT INTO $staging SELECT g, 'x' FROM generate_series(1, 100) g");
$node->safe_psql('late', "SELECT ingest.submit_async_load($id)");
is($node->safe_psql('late', "SELECT ingest.wait_async_load($id, '60 s')"),
	'FINISH', 'a job in the 82nd database is applied');
is($node->safe_psql('late', 'SELECT count(*) FROM t'), '100', 'its rows are in the target');

# After the drops (dropped databases are pruned at each naptime pass; not observable from here,
# since these had no pg_ingest and were already forgotten), a new database still works.
$node->safe_psql('postgres', "DROP DATABASE many_$_") for 1 .. 80;
$node->safe_psql('postgres', 'CREATE DATABASE later');
$node->safe_psql('later', q{
	CREATE EXTENSION pg_ingest;
	CREATE TABLE t (id bigint PRIMARY KEY, v text);
});
($id, $staging) = split /\|/,
  $node->safe_psql('later', "SELECT id, staging FROM ingest.begin_async_load('t')");
$node->safe_psql('later', "INSERT INTO $staging SELECT g, 'y' FROM generate_series(1, 10) g");
$node->safe_psql('later', "SELECT ingest.submit_async_load($id)");
is($node->safe_psql('later', "SELECT ingest.wait_async_load($id, '60 s')"),
	'FINISH', 'a job in a database created after the drops is applied');

# A database with pg_ingest that stops accepting connections gets no worker: one started for it
# would fail at once, at every launcher pass (1 s here). Over 4 passes the log stays quiet.
$node->safe_psql('postgres', 'ALTER DATABASE later ALLOW_CONNECTIONS false');
my $log_from = -s $node->logfile;
sleep 4;
my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile, $log_from);
my $refused = () = $log =~ /database "later" is not currently accepting connections/g;
is($refused, 0, 'no worker is started for a database that accepts no connections');
$node->safe_psql('postgres', 'ALTER DATABASE later ALLOW_CONNECTIONS true');

$node->stop;
done_testing();
