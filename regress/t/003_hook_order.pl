# COPY ... ON_CONFLICT ends the ProcessUtility hook chain in pg_ingest. A library loaded after
# pg_ingest (here pg_stat_statements) sees the statement and its row count; one loaded before
# it cannot, and the server log says so at start, with the fix.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'pg_stat_statements is not installed'
  unless -e `pg_config --pkglibdir` =~ s/\s+$//r . '/pg_stat_statements.so';

my $warning = qr/pg_ingest is loaded after another library that hooks utility statements/;

sub node_with
{
	my ($name, $libraries) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = '$libraries'\npg_stat_statements.track_utility = on");
	$node->start;
	$node->safe_psql('postgres', q{
		CREATE EXTENSION pg_ingest;
		CREATE EXTENSION pg_stat_statements;
		CREATE TABLE t (k int PRIMARY KEY, v text);
		INSERT INTO t VALUES (1, 'old');
	});
	$node->safe_psql('postgres', 'SELECT pg_stat_statements_reset()');
	# psql reads the script from stdin, so the COPY's rows can follow it inline.
	$node->safe_psql('postgres',
		"COPY t FROM STDIN WITH (FORMAT csv, ON_CONFLICT 'upsert');\n1,new\n2,new\n3,new\n\\.\n");
	return $node;
}

sub tracked_rows
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(rows), -1) FROM pg_stat_statements WHERE query LIKE 'COPY t FROM STDIN%ON_CONFLICT%'");
}

# pg_ingest first: pg_stat_statements, loaded after it, records the COPY and its 3 rows.
my $first = node_with('ingest_first', 'pg_ingest,pg_stat_statements');
is($first->safe_psql('postgres', 'SELECT v FROM t WHERE k = 1'), 'new', 'upsert ran (pg_ingest first)');
is(tracked_rows($first), '3', 'pg_stat_statements loaded after pg_ingest sees COPY ON CONFLICT');
my $log = slurp_file($first->logfile);
unlike($log, $warning, 'no warning when pg_ingest is listed first');
$first->stop;

# pg_ingest second: the statement bypasses pg_stat_statements' hook; the log says so.
my $second = node_with('ingest_second', 'pg_stat_statements,pg_ingest');
is($second->safe_psql('postgres', 'SELECT v FROM t WHERE k = 1'), 'new', 'upsert ran (pg_ingest second)');
is(tracked_rows($second), '-1', 'a library loaded before pg_ingest does not see it');
$log = slurp_file($second->logfile);
like($log, $warning, 'the server log warns at start');
like($log, qr/HINT:\s+List pg_ingest first in shared_preload_libraries/, 'the hint says what to do');
$second->stop;

done_testing();
