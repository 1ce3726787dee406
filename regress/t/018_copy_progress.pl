# COPY ... ON_CONFLICT reports in pg_stat_progress_copy as plain COPY does: bytes, rows read
# (tuples_processed) and rows filtered out by WHERE (tuples_excluded). The rows are read while a
# program still writes the input: its output is read in 64 kB pieces, so all but its last piece
# has been read while it sleeps, which another session watches.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(server_log_is_clean ingest_node);

my $node = ingest_node('copy_progress');
$node->safe_psql('postgres', 'CREATE TABLE prog (k int PRIMARY KEY, v int)');

my $loader = $node->background_psql('postgres');
# 200,000 rows (about 1.6 MB), a quarter of them filtered out by WHERE, then 4 s of silence.
$loader->query_until(qr/started/, q{
\echo started
COPY prog FROM PROGRAM 'seq 1 200000 | sed "s/$/,1/"; sleep 4'
  WITH (FORMAT csv, ON_CONFLICT 'upsert') WHERE k % 4 <> 0;
});

ok( $node->poll_query_until(
		'postgres', q{
	SELECT tuples_processed > 140000 AND tuples_excluded > 45000 AND bytes_processed > 1000000
	FROM pg_stat_progress_copy WHERE relid = 'prog'::regclass}),
	'pg_stat_progress_copy shows the rows read and excluded while the input is still open');
my $seen = $node->safe_psql('postgres',
	q{SELECT command, type, tuples_processed, tuples_excluded FROM pg_stat_progress_copy});
note("progress seen: $seen");

$loader->quit;
is($node->safe_psql('postgres', 'SELECT count(*) FROM prog'), '150000', 'the COPY loaded its rows');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_stat_progress_copy'),
	'0', 'the progress row goes when the COPY ends');

ok(server_log_is_clean($node), 'no unexpected errors in the server log');
$node->stop;
done_testing();
