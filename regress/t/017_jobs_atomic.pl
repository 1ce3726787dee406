# Overwrite jobs are atomic for readers: while an overwrite => 'table' or 'partition' job is
# stopped mid-apply (its DELETE done, part of the new rows written) and as it goes on to commit,
# another session reads the target again and again; each read must see exactly the full old
# set or the full new set, never an empty, partial or mixed one, and no read may block.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use Time::HiRes qw(time sleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(ingest_node add_stall_trigger wait_stalled server_log_is_clean);

my $node = ingest_node('atomic', 'ingest.launcher_naptime = 1', 'ingest.merge_chunk_rows = 1000');

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Old rows: k 1..3000 'old'. New rows: k 2001..8000 'new' (overlapping keys, a different count
# and range), so that any mix of the two, or a part of either, reads differently from both.
my $old = '3000|3000|0|1|3000';
my $new = '6000|0|6000|2001|8000';

# Runs one overwrite job ($begin: the begin_async_load arguments) on $table, whose rows below
# k 100000 are read by $read, while a stall trigger at k 5000 stops it.
sub overwrite_case
{
	my ($what, $table, $begin, $read, $rows_cond) = @_;
	add_stall_trigger($node, $table, 'k', 5000, 4545);
	my ($id, $staging) = split /\|/, sql("SELECT id, staging FROM ingest.begin_async_load($begin)");
	sql("INSERT INTO $staging SELECT g, 'new' FROM generate_series(2001, 8000) g");

	my $holder = $node->background_psql('postgres');
	$holder->query_safe('SELECT pg_advisory_lock(4545)');
	# A read that blocked would fail the session's statement_timeout rather than hang.
	my $reader = $node->background_psql('postgres', on_error_stop => 0);
	$reader->query_safe("SET statement_timeout = '5s'");
	my $snapshot = sub { return $reader->query_safe($read); };

	sql("SELECT ingest.submit_async_load($id)");
	ok(wait_stalled($node, $id, $rows_cond), "$what: the job is stopped mid-apply");

	# Stopped: the DELETE and 2999 of the new rows are written, not committed.
	my @bad;
	my $reads = 0;
	for (1 .. 30)
	{
		my $r = $snapshot->();
		$reads++;
		push @bad, $r if $r ne $old;
	}
	is(join('; ', @bad), '', "$what: $reads reads during the stalled apply all see the full old set");

	# Let it go on: reads race with the rest of the apply and its commit.
	$holder->query_safe('SELECT pg_advisory_unlock(4545)');
	my ($n_old, $n_new) = (0, 0);
	@bad = ();
	my $deadline = time + 30;
	while (time < $deadline)
	{
		my $r = $snapshot->();
		if ($r eq $old) { $n_old++; }
		elsif ($r eq $new) { $n_new++; last if $n_new >= 5; }
		else { push @bad, $r; }
	}
	is(join('; ', @bad), '',
		"$what: reads while it finishes see the old set ($n_old) or the new set ($n_new), nothing else");
	cmp_ok($n_new, '>=', 5, "$what: the new set appears");
	is($node->safe_psql('postgres', "SELECT ingest.wait_async_load($id, '30 s')"), 'FINISH', "$what: FINISH");
	is($snapshot->(), $new, "$what: the target holds the new set");
	$reader->quit;
	$holder->quit;
	sql("DROP TRIGGER pgi_stall ON $table");
	return $id;
}

my $read = q{SELECT count(*), count(*) FILTER (WHERE v = 'old'), count(*) FILTER (WHERE v = 'new'),
                    min(k), max(k) FROM %s WHERE k < 100000};

# --- overwrite => 'table': an upsert job (chunked apply, live progress) ------------------------
{
	sql('CREATE TABLE dim (k bigint PRIMARY KEY, v text)');
	sql(q{INSERT INTO dim SELECT g, 'old' FROM generate_series(1, 3000) g});
	is(sql(sprintf($read, 'dim')), $old, 'dim holds the old set');
	overwrite_case("overwrite 'table'", 'dim', q{'dim', overwrite => 'table'}, sprintf($read, 'dim'),
		'j.rows_applied >= 2000');
}

# --- overwrite => 'partition': a plain append (one INSERT ... SELECT) into one partition ----
{
	sql('CREATE TABLE sales (k bigint, v text) PARTITION BY RANGE (k)');
	sql('CREATE TABLE sales_1 PARTITION OF sales FOR VALUES FROM (1) TO (100000)');
	sql('CREATE TABLE sales_2 PARTITION OF sales FOR VALUES FROM (100000) TO (200000)');
	sql(q{INSERT INTO sales SELECT g, 'old' FROM generate_series(1, 3000) g});
	sql(q{INSERT INTO sales SELECT g, 'other' FROM generate_series(100001, 100500) g});
	# The other partition is read too: it must stay as it is throughout.
	my $read_p = sprintf($read, 'sales')
	  . q{ UNION ALL SELECT count(*), 0, 0, min(k), max(k) FROM sales WHERE k >= 100000};
	$old .= "\n500|0|0|100001|100500";
	$new .= "\n500|0|0|100001|100500";
	is(sql($read_p), $old, 'sales_1 holds the old set');
	overwrite_case("overwrite 'partition'", 'sales',
		q{'sales', 'none', overwrite => 'partition', overwrite_partition => 'sales_1'}, $read_p, undef);
}

server_log_is_clean($node);
$node->stop;
done_testing();
