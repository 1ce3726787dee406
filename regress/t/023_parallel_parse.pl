# COPY ... ON_CONFLICT with its input converted by parallel workers (parallel_parse.hpp):
#   1. every mode, csv and text, many types, quoted fields with delimiters and newlines,
#      repeated keys and NULLs: the table equals the one loaded without workers, and the
#      DEBUG1 line shows a worker converted rows;
#   2. ordinary options (HEADER, FORCE_NULL, FORCE_NOT_NULL, a column subset with a default);
#   3. bad values: the COPY fails with the error and context plain COPY gives, naming the first
#      bad line, also when it was a worker that converted it; nothing is loaded;
#   4. no worker to be had (max_parallel_workers = 0): the session converts everything itself;
#   5. inside a transaction that has written, and inside a savepoint rolled back;
#   6. types the workers are not used for (a domain) and COPY ... WHERE take the serial path;
#   7. a worker terminated in the middle: the COPY fails, nothing is loaded, the server goes on.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(server_log_is_clean ingest_node feature_available);

my $node = ingest_node('parallel_parse', "log_statement = 'none'");
if (!ok(feature_available($node), 'pg_ingest provides ingest.last_copy_stats()'))
{
	done_testing();
	exit;
}
my $dir = PostgreSQL::Test::Utils::tempdir();

$node->safe_psql('postgres', q{
	CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
	CREATE DOMAIN small_int AS int CHECK (VALUE < 1000000);
	CREATE TABLE base (
		id bigint PRIMARY KEY, n numeric(12,2), d double precision, t text,
		ts timestamptz, j jsonb, u uuid, a int[], m mood, b boolean, dt date,
		filler text DEFAULT 'dflt');
});
my @cols = qw(id n d t ts j u a m b dt);

# Rows as [csv line, text line]; keys repeat (30000 rows over 20000 keys).
sub gen_rows
{
	my ($n, $keys, $shift) = @_;
	my @rows;
	for my $i (1 .. $n)
	{
		my $k   = ($i * 7919 + $shift) % $keys + 1;
		my $t   = $i % 11 == 0 ? undef : "text $i, \"q\"" . ($i % 13 == 0 ? "\nsecond line" : '');
		my $num = sprintf('%d.%02d', $i % 100000, $i % 100);
		my @v   = ($k, $num, $i / 7, $t,
			sprintf('2021-%02d-%02d %02d:%02d:%02d.%06d+0%d', $i % 12 + 1, $i % 28 + 1,
				$i % 24, $i % 60, ($i * 7) % 60, $i % 1000000, $i % 9),
			$i % 10 == 0 ? undef : "{\"id\": $i, \"tag\": \"t" . ($i % 5) . '"}',
			sprintf('%08x-0000-4000-8000-%012x', $i, $i * 3),
			"{$i," . ($i + 1) . '}', (qw(sad ok happy))[ $i % 3 ],
			$i % 2 ? 'true' : 'false',
			sprintf('20%02d-%02d-%02d', $i % 30, $i % 12 + 1, $i % 28 + 1));
		my $csv = join(',', map {
			!defined $_ ? '' : /[",\n]/ ? '"' . ($_ =~ s/"/""/gr) . '"' : $_ } @v);
		my $txt = join("\t", map {
			!defined $_ ? '\N' : ($_ =~ s/\\/\\\\/gr =~ s/\n/\\n/gr =~ s/\t/\\t/gr) } @v);
		push @rows, [ $csv, $txt ];
	}
	return \@rows;
}

sub write_file
{
	my ($path, $content) = @_;
	open(my $fh, '>', $path) or die "cannot write $path: $!";
	print $fh $content;
	close($fh);
	chmod 0644, $path;
}

my $rows = gen_rows(30000, 20000, 0);
my $csv  = "$dir/load.csv";
my $txt  = "$dir/load.txt";
write_file($csv, join('', map { "$_->[0]\n" } @$rows));
write_file($txt, join('', map { "$_->[1]\n" } @$rows));

# Pre-filled so that half the keys exist.
my $prefill = "INSERT INTO %s SELECT i, i, i, 'old', '2000-01-01', '{}', "
  . "md5(i::text)::uuid, '{0}', 'sad', false, '2000-01-01' FROM generate_series(1, 20000, 2) i";

# Runs $sql with DEBUG1 messages on; returns (stdout, stderr).
sub run_debug
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "SET client_min_messages = debug1;\n$sql");
	return ($ret, $out, $err);
}

sub converted_by_workers
{
	my ($err) = @_;
	return $err =~ /(\d+) rows converted by workers and (\d+) by the leader/ ? ($1, $2) : ();
}

sub same_tables
{
	my ($a, $b) = @_;
	return $node->safe_psql('postgres',
		"SELECT (SELECT count(*) FROM (TABLE $a EXCEPT ALL TABLE $b) x) + "
		  . "(SELECT count(*) FROM (TABLE $b EXCEPT ALL TABLE $a) y)") eq '0';
}

# 1. every mode, both formats
for my $format (qw(csv text))
{
	my $file = $format eq 'csv' ? $csv : $txt;
	for my $mode (qw(upsert update ignore strict))
	{
		my $name = "$mode, $format";
		$node->safe_psql('postgres', qq{
			DROP TABLE IF EXISTS par, ser;
			CREATE TABLE par (LIKE base INCLUDING ALL);
			CREATE TABLE ser (LIKE base INCLUDING ALL);
		});
		# strict needs keys that are new and unique: the first occurrence of each key only.
		my $opts = "FORMAT $format, ON_CONFLICT '$mode'";
		my $cols = join(', ', @cols);
		if ($mode ne 'strict')
		{
			$node->safe_psql('postgres', sprintf($prefill, 'par') . ';' . sprintf($prefill, 'ser'));
		}
		my $f = $file;
		if ($mode eq 'strict')
		{
			my %seen;
			my @u = grep { !$seen{ (split /[,\t]/, $_->[0])[0] }++ } @$rows;
			$f = "$dir/strict.$format";
			write_file($f, join('', map { ($format eq 'csv' ? $_->[0] : $_->[1]) . "\n" } @u));
		}
		my ($r1, $o1, $e1) = run_debug(qq{
			COPY par ($cols) FROM '$f' WITH ($opts);
			SELECT inserted, updated, skipped, rejected FROM ingest.last_copy_stats();
		});
		my ($r2, $o2, $e2) = run_debug(qq{
			SET ingest.copy_parse_workers = 0;
			COPY ser ($cols) FROM '$f' WITH ($opts);
			SELECT inserted, updated, skipped, rejected FROM ingest.last_copy_stats();
		});
		is($r1, 0, "$name: COPY with a parse worker succeeds") or diag($e1);
		is($r2, 0, "$name: COPY without workers succeeds") or diag($e2);
		my ($w, $l) = converted_by_workers($e1);
		ok(defined $w && $w > 0, "$name: a worker converted rows") or diag($e1);
		is($w + $l, $mode eq 'strict' ? 20000 : 30000, "$name: workers and leader converted every row");
		ok(!defined((converted_by_workers($e2))[0]), "$name: ingest.copy_parse_workers = 0 reads serially");
		is($o1, $o2, "$name: same counts as without workers");
		ok(same_tables('par', 'ser'), "$name: same table as without workers");
	}
}

# 2. ordinary COPY options, and the leader converting everything (ingest.copy_parse_min_rows
# large) against a worker from the first row
{
	my $hdr = "$dir/header.csv";
	write_file($hdr, "id,t,n\n" . join('', map { "$_,\"\",\n" } 1 .. 3000)
		  . join('', map { "$_,x$_,1.5\n" } 3001 .. 6000));
	my $opts = "FORMAT csv, HEADER, FORCE_NULL (t), FORCE_NOT_NULL (n), ON_CONFLICT 'upsert'";
	$node->safe_psql('postgres', q{
		DROP TABLE IF EXISTS o1, o2;
		CREATE TABLE o1 (id bigint PRIMARY KEY, t text, n text, filler text DEFAULT 'dflt');
		CREATE TABLE o2 (LIKE o1 INCLUDING ALL);
	});
	my ($r1, $o1, $e1) = run_debug("SET ingest.copy_parse_min_rows = 0; COPY o1 (id, t, n) FROM '$hdr' WITH ($opts);");
	my ($r2, $o2, $e2) = run_debug("SET ingest.copy_parse_min_rows = 100000; COPY o2 (id, t, n) FROM '$hdr' WITH ($opts);");
	is($r1 + $r2, 0, 'options: both COPYs succeed') or diag("$e1\n$e2");
	ok(((converted_by_workers($e1))[0] // 0) > 0, 'options: min_rows 0 starts a worker at once');
	is((converted_by_workers($e2))[0], 0, 'options: below min_rows no worker converts');
	ok(same_tables('o1', 'o2'), 'options: the same table either way');
	is($node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE t IS NULL), count(*) FILTER (WHERE n = ''), "
		  . "count(*) FILTER (WHERE filler = 'dflt'), count(*) FROM o1"),
		'3000|3000|6000|6000', 'options: FORCE_NULL, FORCE_NOT_NULL, HEADER and the default applied');
}

# 3. bad values, converted by the worker or by the leader
{
	my @lines = map { $_->[0] } @$rows[ 0 .. 24999 ];
	# COPY numbers physical lines: a quoted newline starts one.
	my @first_line = (1);
	push @first_line, $first_line[-1] + 1 + ($lines[ $_ - 1 ] =~ tr/\n//) for 1 .. $#lines;
	my $bad1  = 20001;
	my $bad2  = 24000;
	my @b     = @lines;
	$b[ $bad1 - 1 ] =~ s/^(\d+),[^,]*,/$1,12x.5,/ or die;
	$b[ $bad2 - 1 ] =~ s/^(\d+),[^,]*,/$1,zz,/ or die;
	my $badf = "$dir/bad.csv";
	write_file($badf, join('', map { "$_\n" } @b));
	for my $min (0, 10000)
	{
		$node->safe_psql('postgres',
			"DROP TABLE IF EXISTS bad; CREATE TABLE bad (LIKE base INCLUDING ALL); " . sprintf($prefill, 'bad'));
		my ($ret, $out, $err) = $node->psql('postgres',
			"\\set VERBOSITY verbose\nSET ingest.copy_parse_min_rows = $min;\n"
			  . "COPY bad (" . join(', ', @cols) . ") FROM '$badf' WITH (FORMAT csv, ON_CONFLICT 'upsert');");
		isnt($ret, 0, "bad value (min_rows $min): the COPY fails");
		like($err, qr/ERROR:  22P02: invalid input syntax for type numeric: "12x\.5"/,
			"bad value (min_rows $min): the first bad value's error and SQLSTATE");
		my $at = $first_line[ $bad1 - 1 ];
		like($err, qr/CONTEXT:  COPY bad, line $at, column n: "12x\.5"/,
			"bad value (min_rows $min): plain COPY's context, naming the first bad line");
		is($node->safe_psql('postgres', "SELECT count(*), count(*) FILTER (WHERE t <> 'old') FROM bad"),
			'10000|0', "bad value (min_rows $min): nothing loaded");
	}
	# A row with a field too many or too few, as plain COPY reports them.
	for my $case ([ 'extra data after last expected column', ',extra' ],
		[ 'missing data for column "dt"', undef ])
	{
		my ($msg, $add) = @$case;
		my @c = @lines;
		if (defined $add) { $c[20099] .= $add; }
		else { $c[20099] =~ s/,[^,]*$// or die; }
		write_file("$dir/count.csv", join('', map { "$_\n" } @c));
		my ($ret, $out, $err) = $node->psql('postgres',
			"COPY bad (" . join(', ', @cols) . ") FROM '$dir/count.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');");
		my $at = $first_line[20099];
		like($err, qr/ERROR:  \Q$msg\E\nCONTEXT:  COPY bad, line $at: "/,
			"field count: '$msg' names the line and shows it");
	}
}

# 4. no worker to be had
{
	$node->safe_psql('postgres', 'DROP TABLE IF EXISTS nw; CREATE TABLE nw (LIKE base INCLUDING ALL)');
	my ($ret, $out, $err) = run_debug(
		"SET max_parallel_workers = 0; COPY nw (" . join(', ', @cols) . ") FROM '$csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');");
	is($ret, 0, 'no worker: the COPY succeeds') or diag($err);
	like($err, qr/0 of 1 parse workers, 0 rows converted by workers and 30000 by the leader/,
		'no worker: the session converts every row');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM nw'), '20000', 'no worker: every key loaded');
}

# 5. in a transaction that has written, and a savepoint rolled back
{
	$node->safe_psql('postgres', 'DROP TABLE IF EXISTS tx; CREATE TABLE tx (LIKE base INCLUDING ALL)');
	my $cols = join(', ', @cols);
	my ($ret, $out, $err) = run_debug(qq{
		BEGIN;
		INSERT INTO tx (id, t) VALUES (-1, 'before');
		SAVEPOINT s;
		COPY tx ($cols) FROM '$csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');
		ROLLBACK TO SAVEPOINT s;
		SELECT 'after rollback', count(*) FROM tx;
		COPY tx ($cols) FROM '$csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');
		COMMIT;
		SELECT 'end', count(*) FROM tx;
	});
	is($ret, 0, 'transaction: succeeds') or diag($err);
	like($out, qr/after rollback\|1/, 'transaction: the rolled-back COPY left nothing');
	like($out, qr/end\|20001/, 'transaction: the second COPY and the earlier INSERT committed');
	my @w = $err =~ /(\d+) rows converted by workers/g;
	ok(@w == 2 && $w[0] > 0 && $w[1] > 0, 'transaction: both COPYs used a worker') or diag($err);
}

# 6. the serial path for a domain column and for COPY ... WHERE
{
	$node->safe_psql('postgres', q{
		DROP TABLE IF EXISTS dom;
		CREATE TABLE dom (id bigint PRIMARY KEY, v small_int);
	});
	write_file("$dir/dom.csv", join('', map { "$_,$_\n" } 1 .. 20000));
	my ($ret, $out, $err) = run_debug("COPY dom FROM '$dir/dom.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');");
	is($ret, 0, 'domain: loaded') or diag($err);
	unlike($err, qr/parse workers/, 'domain: no parse workers for a domain column');
	($ret, $out, $err) = run_debug(
		"COPY dom FROM '$dir/dom.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert') WHERE id > 10;");
	is($ret, 0, 'WHERE: loaded') or diag($err);
	unlike($err, qr/parse workers/, 'WHERE: no parse workers with COPY ... WHERE');
}

# 7. a worker terminated in the middle
{
	my $big = "$dir/big.csv";
	open(my $fh, '>', $big) or die;
	for my $i (1 .. 1500000)
	{
		print $fh "$i,$i.5,$i,text $i,2021-01-01 00:00:00+00,\"{\"\"i\"\": $i}\","
		  . sprintf('%08x-0000-4000-8000-%012x', $i, $i) . ",\"{$i}\",ok,true,2020-01-01\n";
	}
	close($fh);
	chmod 0644, $big;
	$node->safe_psql('postgres', 'DROP TABLE IF EXISTS kill; CREATE TABLE kill (LIKE base INCLUDING ALL); '
		  . sprintf($prefill, 'kill'));
	my ($out, $stderr) = ('', '');
	my $h = IPC::Run::start(
		[ $node->installed_command('psql'), '-X', '-A', '-t', '-q', '-d', $node->connstr('postgres'),
			'-c', "COPY kill (" . join(', ', @cols) . ") FROM '$big' WITH (FORMAT csv, ON_CONFLICT 'upsert')" ],
		'>', \$out, '2>', \$stderr,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	my $killed = 0;
	for (1 .. 2000)
	{
		$killed = $node->safe_psql('postgres', q{
			SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE backend_type = 'parallel worker'
			  AND query = 'pg_ingest: converting the input of COPY public.kill ... ON_CONFLICT'});
		last if $killed;
		select(undef, undef, undef, 0.02);
	}
	ok($killed, 'kill: a parse worker was running and was terminated');
	$h->finish;
	# 57P01, as for any backend terminated by an administrator: retryable for the client.
	like($stderr, qr/ERROR:  terminating background worker "parallel worker" due to administrator command\nCONTEXT:  parallel worker/,
		'kill: the COPY fails with the worker\'s error') or diag($stderr);
	is($node->safe_psql('postgres', "SELECT count(*), count(*) FILTER (WHERE t <> 'old') FROM kill"),
		'10000|0', 'kill: nothing loaded');
	is($node->safe_psql('postgres', 'SELECT 1'), '1', 'kill: the server goes on');
}

server_log_is_clean($node);

$node->stop;
done_testing();
