# COPY ... ON_CONFLICT with its input converted by parallel workers (parallel_parse.hpp):
#   1. every mode, csv and text, many types, quoted fields with delimiters and newlines,
#      repeated keys and NULLs: the table equals the one loaded without workers, and the
#      DEBUG1 line shows a worker converted rows;
#   2. ordinary options (HEADER, FORCE_NULL, FORCE_NOT_NULL, a column subset with a default);
#   3. bad values, fields too many or too few, unreadable input: the COPY fails with the error
#      and context the serial path gives (plus "parallel worker" when a worker raised it),
#      naming the first bad line; nothing is loaded;
#   4. no worker to be had (max_parallel_workers = 0): the session reads on by itself;
#   5. inside a transaction that has written, inside a savepoint rolled back (also after a
#      failed COPY), into a temporary table, and into a table and enum created in the same
#      transaction;
#   6. types the workers are not used for (a domain) and COPY ... WHERE take the serial path;
#   7. a worker terminated in the middle: the COPY fails, nothing is loaded, the server goes on.
# The first ingest.copy_parse_min_rows rows (10000) are always read by the session alone.
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
	my ($ret, $out, $err) =
	  $node->psql('postgres', "SET client_min_messages = debug1;\n$sql", on_error_stop => 0);
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
		is($w + $l, ($mode eq 'strict' ? 20000 : 30000) - 10000,
			"$name: workers and leader converted every row after the first 10000");
		ok(!defined((converted_by_workers($e2))[0]), "$name: ingest.copy_parse_workers = 0 reads serially");
		is($o1, $o2, "$name: same counts as without workers");
		ok(same_tables('par', 'ser'), "$name: same table as without workers");
	}
}

# 2. ordinary COPY options, with a worker from the first row, against the serial path
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
	my ($r2, $o2, $e2) = run_debug("SET ingest.copy_parse_workers = 0; COPY o2 (id, t, n) FROM '$hdr' WITH ($opts);");
	is($r1 + $r2, 0, 'options: both COPYs succeed') or diag("$e1\n$e2");
	my ($w, $l) = converted_by_workers($e1);
	ok(defined $w && $w > 0 && $w + $l == 6000, 'options: min_rows 0 starts a worker at once')
	  or diag($e1);
	unlike($e2, qr/parse worker/, 'options: the reference is read serially');
	ok(same_tables('o1', 'o2'), 'options: the same table either way');
	is($node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE t IS NULL), count(*) FILTER (WHERE n = ''), "
		  . "count(*) FILTER (WHERE filler = 'dflt'), count(*) FROM o1"),
		'3000|3000|6000|6000', 'options: FORCE_NULL, FORCE_NOT_NULL, HEADER and the default applied');
}

# 3. bad rows and unreadable input, converted by a worker or by the leader: the COPY fails as
# the serial path fails (message, SQLSTATE, first context line), nothing loaded
{
	my @lines = map { $_->[0] } @$rows[ 0 .. 24999 ];
	# COPY numbers physical lines: a quoted newline starts one.
	my @first_line = (1);
	push @first_line, $first_line[-1] + 1 + ($lines[ $_ - 1 ] =~ tr/\n//) for 1 .. $#lines;
	my $cols = join(', ', @cols);

	# Runs $file with a worker (from row $min on) and serially; returns the first's stderr.
	my $compare = sub {
		my ($name, $file, $min) = @_;
		my @res;
		for my $set ("SET ingest.copy_parse_min_rows = $min;", 'SET ingest.copy_parse_workers = 0;')
		{
			$node->safe_psql('postgres',
				"DROP TABLE IF EXISTS bad; CREATE TABLE bad (LIKE base INCLUDING ALL); " . sprintf($prefill, 'bad'));
			my ($ret, $out, $err) = $node->psql('postgres',
				"$set\nCOPY bad ($cols) FROM '$file' WITH (FORMAT csv, ON_CONFLICT 'upsert');\n"
				  . "\\echo SQLSTATE :LAST_ERROR_SQLSTATE");
			my ($first) = $err =~ /(ERROR:  [^\n]*\n(?:DETAIL:  [^\n]*\n)?CONTEXT:  [^\n]*)/;
			push @res, { ret => $ret, out => $out, err => $err, first => $first // "(none in: $err)",
				loaded => $node->safe_psql('postgres',
					"SELECT count(*), count(*) FILTER (WHERE t <> 'old') FROM bad") };
		}
		isnt($res[0]{ret}, 0, "$name (min_rows $min): the COPY fails");
		is($res[0]{first}, $res[1]{first}, "$name (min_rows $min): the serial path's error and context");
		is($res[0]{out}, $res[1]{out}, "$name (min_rows $min): the serial path's SQLSTATE ($res[1]{out})");
		is($res[0]{loaded}, '10000|0', "$name (min_rows $min): nothing loaded");
		return $res[0]{err};
	};
	my $with = sub {
		my ($edit) = @_;
		my @c = @lines;
		$edit->(\@c);
		my $f = "$dir/bad.csv";
		write_file($f, join('', map { "$_\n" } @c));
		return $f;
	};
	my $bad_value = sub { my ($c, $i, $v) = @_; $c->[ $i - 1 ] =~ s/^(\d+),[^,]*,/$1,$v,/ or die; };

	# Two bad values; the first is named.
	my $f = $with->(sub { $bad_value->($_[0], 20001, '12x.5'); $bad_value->($_[0], 24000, 'zz'); });
	for my $min (0, 10000)
	{
		my $err = $compare->('two bad values', $f, $min);
		my $at = $first_line[20000];
		like($err, qr/ERROR:  invalid input syntax for type numeric: "12x\.5"\nCONTEXT:  COPY bad, line $at, column n: "12x\.5"/,
			"two bad values (min_rows $min): the first is named");
	}
	# In the first batch, which goes to the worker: its error, with "parallel worker" added.
	$f = $with->(sub { $bad_value->($_[0], 3, '12x.5') });
	my $err = $compare->('bad value converted by the worker', $f, 0);
	like($err, qr/CONTEXT:  COPY bad, line 3, column n: "12x\.5"\nparallel worker/,
		'bad value converted by the worker: raised by the worker');
	# Fields too many or too few, alone and after a bad value in the same or an earlier batch.
	for my $case ([ 'extra field', sub { $_[0][20099] .= ',extra' } ],
		[ 'missing field', sub { $_[0][20099] =~ s/,[^,]*$// or die } ])
	{
		my ($what, $edit) = @$case;
		$f = $with->($edit);
		$err = $compare->($what, $f, 0);
		my $at = $first_line[20099];
		like($err, qr/CONTEXT:  COPY bad, line $at: "/, "$what: names the line and shows it");
		for my $before (20090, 19000)
		{
			$f = $with->(sub { $edit->($_[0]); $bad_value->($_[0], $before, '12x.5') });
			$err = $compare->("$what after a bad value at row $before", $f, 0);
			like($err, qr/invalid input syntax for type numeric/, "$what after a bad value at row $before: the bad value is named");
		}
	}
	# Input that cannot be read on (an unterminated quoted field at the end) after a bad value.
	$f = $with->(sub { $bad_value->($_[0], 24990, '12x.5'); $_[0][24999] .= ',"open' });
	$err = $compare->('unreadable input after a bad value', $f, 0);
	like($err, qr/invalid input syntax for type numeric/, 'unreadable input after a bad value: the bad value is named');
	$f = $with->(sub { $_[0][24999] .= ',"open' });
	$err = $compare->('unreadable input', $f, 0);
	like($err, qr/unterminated CSV quoted field/, 'unreadable input: COPY\'s own error');
}

# 4. no worker to be had
{
	$node->safe_psql('postgres', 'DROP TABLE IF EXISTS nw; CREATE TABLE nw (LIKE base INCLUDING ALL)');
	my ($ret, $out, $err) = run_debug(
		"SET max_parallel_workers = 0; COPY nw (" . join(', ', @cols) . ") FROM '$csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');");
	is($ret, 0, 'no worker: the COPY succeeds') or diag($err);
	like($err, qr/pg_ingest COPY into nw: no parse worker could be started/,
		'no worker: none started');
	unlike($err, qr/rows converted by workers/, 'no worker: the session reads on by itself');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM nw'), '20000', 'no worker: every key loaded');
}

# 4b. three workers: the same table as one session alone
{
	$node->safe_psql('postgres', 'DROP TABLE IF EXISTS w3; CREATE TABLE w3 (LIKE base INCLUDING ALL)');
	my ($ret, $out, $err) = run_debug("SET ingest.copy_parse_workers = 3; SET ingest.copy_parse_min_rows = 0; "
		  . "COPY w3 (" . join(', ', @cols) . ") FROM '$csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');");
	is($ret, 0, 'three workers: the COPY succeeds') or diag($err);
	like($err, qr/COPY into w3: 3 parse workers, [1-9]\d* rows converted by workers and \d+ by the leader/,
		'three workers: all three started and converted rows');
	ok(same_tables('w3', 'nw'), 'three workers: the same table as the session alone');
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

# 5b. a COPY that fails while its worker runs, inside a savepoint; then another COPY; a
# temporary table; a table and an enum created in the same transaction
{
	my @c = map { $_->[0] } @$rows;
	$c[25999] =~ s/^(\d+),[^,]*,/$1,12x.5,/ or die;
	write_file("$dir/late_bad.csv", join('', map { "$_\n" } @c));
	my $cols = join(', ', @cols);
	my ($ret, $out, $err) = run_debug(qq{
		BEGIN;
		CREATE TYPE mood2 AS ENUM ('sad', 'ok', 'happy');
		CREATE TABLE fresh (id bigint PRIMARY KEY, n numeric(12,2), d double precision, t text,
			ts timestamptz, j jsonb, u uuid, a int[], m mood2, b boolean, dt date);
		CREATE TEMP TABLE tmp (LIKE base INCLUDING ALL);
		SAVEPOINT s;
		COPY fresh ($cols) FROM '$dir/late_bad.csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');
		ROLLBACK TO SAVEPOINT s;
		SELECT 'after failed', count(*) FROM fresh;
		COPY fresh ($cols) FROM '$csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');
		COPY tmp ($cols) FROM '$csv' WITH (FORMAT csv, ON_CONFLICT 'upsert');
		SELECT 'tmp', count(*), count(DISTINCT m) FROM tmp;
		COMMIT;
		SELECT 'fresh', count(*), count(DISTINCT m) FROM fresh;
	});
	like($err, qr/invalid input syntax for type numeric: "12x\.5"/, 'savepoint: the first COPY failed on its bad value');
	like($out, qr/after failed\|0/, 'savepoint: the failed COPY left nothing');
	like($out, qr/^tmp\|20000\|3$/m, 'temporary table: loaded with a worker') or diag("$out\n$err");
	like($out, qr/^fresh\|20000\|3$/m, 'table and enum created in the transaction: loaded') or diag("$out\n$err");
	my @w = $err =~ /(\d+) rows converted by workers/g;
	ok(@w == 2 && $w[0] > 0 && $w[1] > 0, 'temporary and new tables: a worker converted rows') or diag($err);
	is($node->safe_psql('postgres', "SELECT count(*) FROM (SELECT id, n::text, t, m::text FROM fresh "
		  . "EXCEPT SELECT id, n::text, t, m::text FROM nw) x"), '0', 'new table: the same rows as a plain table');
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
