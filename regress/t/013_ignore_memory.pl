# COPY ... ON_CONFLICT with ON_ERROR 'ignore' keeps what a retry row by row needs: each chunk's
# rows with their raw lines, and every row of a key repeated in the chunk (a "hot" key, as a
# CDC stream of one busy row gives), because if a group's winning row fails, its other rows are
# applied one at a time in input order. These must spill to disk as the sort does, not pile up
# in the backend's memory:
#   1. 100,000 rows of ~1 kB for one key: the backend's peak resident memory (VmHWM, read from
#      /proc/self/status in the same session) grows by far less than the group's size;
#   4. a chunk of 4,000 rows of ~25 kB (one chunk: ingest.merge_chunk_rows is 10,000): the
#      same, for wide rows;
#   5. 80,000 rejected rows in one transaction: its memory stays flat;
#   2. a group whose winner breaks a CHECK, with work_mem so small that its rows spill: the rows
#      are applied one at a time in input order, the bad ones rejected with their line numbers,
#      and the table ends as one-at-a-time INSERT ... ON CONFLICT leaves it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(server_log_is_clean ingest_node feature_available);

my $node = ingest_node('hot_key_group', "log_statement = 'none'");
if (!ok(feature_available($node), 'pg_ingest provides ingest.last_copy_stats()'))
{
	done_testing();
	exit;
}
my $dir = PostgreSQL::Test::Utils::tempdir();
$node->safe_psql('postgres',
	"CREATE TABLE hot (k bigint PRIMARY KEY, v text NOT NULL CHECK (v NOT LIKE 'bad%'))");

my $pad = 'x' x 1000;
my $rows = 100_000;
my $big = "$dir/big.csv";
open(my $fh, '>', $big) or die "cannot write $big: $!";
print $fh "1,row $_ $pad\n" for 1 .. $rows;
close($fh);

my $hwm = "(substring(pg_catalog.pg_read_file('/proc/self/status') from 'VmHWM:\\s*(\\d+)'))::bigint";

# Loads `file` (upsert, ON_ERROR 'ignore') in one session; returns the psql output (with a
# STATS line) and how much the backend's peak resident memory (VmHWM) grew meanwhile, in kB.
sub load_measured
{
	my ($file) = @_;
	my $out = $node->safe_psql('postgres', qq{
	SELECT $hwm AS before \\gset
	COPY hot FROM '$file' WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
	SELECT 'STATS', inserted, updated, skipped, rejected FROM ingest.last_copy_stats();
	SELECT 'GROWTH_KB', $hwm - :before;
});
	my ($growth) = $out =~ /^GROWTH_KB\|(-?\d+)$/m;
	ok(defined $growth, 'peak memory read from /proc/self/status') or diag($out);
	return ($out, $growth // 1 << 30);
}

# 1. Peak memory while one ~100 MB group is read and applied.
my ($out, $growth) = load_measured($big);
like($out, qr/^STATS\|1\|99999\|0\|0$/m,
	'counts as one-at-a-time: one insert, then an update per repeat');
note("backend peak resident memory grew by $growth kB for a group of about "
	  . int($rows * 1010 / 1024) . ' kB');
cmp_ok($growth, '<', 40 * 1024, 'the group is not held in memory (growth under 40 MB)');
is($node->safe_psql('postgres', 'SELECT count(*), v = ' . "'row $rows $pad'" . ' FROM hot GROUP BY v'),
	'1|t', 'the last row of the group won');

# 2. The winner (the last row) and one row before it break the CHECK: the chunk fails, the
# group is applied one row at a time from its spilled rows.
my $small = "$dir/small.csv";
open($fh, '>', $small) or die "cannot write $small: $!";
for my $i (1 .. 3000)
{
	my $v = ($i == 1500 || $i == 3000) ? "bad $i" : "row $i $pad";
	print $fh "2,$v\n";
	print $fh "3,row $i\n" if $i % 1000 == 0;
}
close($fh);
$out = $node->safe_psql('postgres', qq{
	SET work_mem = '64kB';
	COPY hot FROM '$small' WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
	SELECT 'STATS', inserted, updated, skipped, rejected FROM ingest.last_copy_stats();
	SELECT 'REJECT', line_number, sqlstate, left(raw_line, 10) FROM ingest.last_copy_rejects()
	  ORDER BY line_number;
	SELECT 'ROW', k, left(v, 12) FROM hot WHERE k IN (2, 3) ORDER BY k;
});
# Lines: key 2 is on every line but 1001, 2002, 3003 (key 3); "bad 1500" is line 1501,
# "bad 3000" line 3002.
like($out, qr/^REJECT\|1501\|23514\|2,bad 1500\nREJECT\|3002\|23514\|2,bad 3000$/m,
	'the two bad rows are rejected with their lines');
like($out, qr/^ROW\|2\|row 2999 xxx$/m, 'key 2 holds its last good row');
like($out, qr/^ROW\|3\|row 3000$/m, 'key 3 holds its last row');
like($out, qr/^STATS\|2\|2999\|0\|2$/m,
	'counts as one-at-a-time: keys 2 and 3 inserted once, updated by their other good rows')
  or diag($out);

# 3. A chunk that spilled to disk and failed on a bad row: retried row by row, and its store's
# temp file is not left behind (at commit a leaked one is a WARNING, which the log check sees).
my $wide = "$dir/wide.csv";
open($fh, '>', $wide) or die "cannot write $wide: $!";
for my $i (1 .. 300)
{
	my $k = 100 + $i;
	print $fh ($i == 150 ? "$k,bad $i\n" : "$k,row $i $pad\n");
	print $fh "$k,again $i\n" if $i % 100 == 0;    # groups of several rows too
}
close($fh);
$out = $node->safe_psql('postgres', qq{
	SET work_mem = '64kB';
	COPY hot FROM '$wide' WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
	SELECT 'STATS', inserted, updated, skipped, rejected FROM ingest.last_copy_stats();
	SELECT 'KEYS', count(*), count(*) FILTER (WHERE v LIKE 'again%') FROM hot WHERE k > 100;
});
like($out, qr/^STATS\|299\|3\|0\|1$/m, 'a spilled chunk with a bad row: 299 keys, 1 rejected')
  or diag($out);
like($out, qr/^KEYS\|299\|3$/m, 'every good row loaded');

# 4. Wide rows: one chunk of 4,000 distinct keys of ~25 kB each, every row kept for a retry.
my $wide_pad = 'y' x 25_000;
my $wider = "$dir/wider.csv";
open($fh, '>', $wider) or die "cannot write $wider: $!";
print $fh (1000 + $_) . ",row $_ $wide_pad\n" for 1 .. 4000;
close($fh);
($out, $growth) = load_measured($wider);
like($out, qr/^STATS\|4000\|0\|0\|0$/m, 'every wide row inserted');
note("backend peak resident memory grew by $growth kB for a chunk of about "
	  . int(4000 * 25_010 / 1024) . ' kB');
cmp_ok($growth, '<', 40 * 1024, 'the chunk is not held in memory (growth under 40 MB)');

# 5. Rejected rows do not pile up in the transaction's memory: 40,000 rows that fail their
# type's input and 40,000 that fail the CHECK when applied, in one transaction. Each caught
# error's copy was kept in TopTransactionContext until the commit (about 200 bytes a row, 16 MB
# here), beyond ingest.copy_rejects_kept, which is what bounds memory spent on rejects.
my $bad = "$dir/bad.csv";
open($fh, '>', $bad) or die "cannot write $bad: $!";
for my $i (1 .. 40_000)
{
	print $fh "x$i,row $i\n";
	print $fh (100_000 + $i) . ",bad $i\n";
}
close($fh);
$out = $node->safe_psql('postgres', qq{
	SET ingest.copy_rejects_kept = 100;
	SET client_min_messages = warning;
	BEGIN;
	SELECT sum(total_bytes) AS before FROM pg_backend_memory_contexts \\gset
	COPY hot FROM '$bad' WITH (FORMAT csv, ON_CONFLICT 'upsert', ON_ERROR 'ignore');
	SELECT 'STATS', inserted, updated, skipped, rejected FROM ingest.last_copy_stats();
	SELECT 'TXN_KB', ((sum(total_bytes) - :before) / 1024)::bigint FROM pg_backend_memory_contexts;
	COMMIT;
});
like($out, qr/^STATS\|0\|0\|0\|80000$/m, 'every bad row rejected') or diag($out);
my ($txn_kb) = $out =~ /^TXN_KB\|(\d+)$/m;
ok(defined $txn_kb, 'memory read from pg_backend_memory_contexts') or diag($out);
note("the backend's memory contexts grew by $txn_kb kB over 80,000 rejects, before the commit");
cmp_ok($txn_kb // 1 << 30, '<', 2048, 'rejects do not pile up in memory (growth under 2 MB)');

ok(server_log_is_clean($node), 'no unexpected errors in the server log');
$node->stop;
done_testing();
