# Concurrent COPY ... WITH (ON_CONFLICT ...) on overlapping keys.
#
# For each of upsert, ignore and update (on a plain table with a wide and a narrow key range,
# and on a hash-partitioned table), several sessions start at the same moment (they all wait
# on an advisory lock the test then releases) and each runs several COPY ON CONFLICT
# statements of 2000-20000 rows, keys drawn with repetition from one shared range, every row
# tagged with its session, COPY and row number. Afterwards:
#   - no session saw an error (in particular no deadlock 40P01, no duplicate key 23505), and
#     the server log has none either;
#   - every key's row is exactly a row some COPY wrote for that key: for upsert/update the
#     last occurrence in that session's last COPY writing the key, for ignore the first
#     occurrence in that session's first COPY writing it (or the initial row);
#   - the set of keys is initial + all written (upsert, ignore) or exactly the initial ones
#     (update), and there is one serial order of all COPYs that explains every key's winner;
#   - ingest.last_copy_stats() and the command tags add up.
# A strict run with disjoint key sets per session must succeed everywhere without deadlock.
#
# Environment: PG_INGEST_SEED (replay), PG_INGEST_SESSIONS (default 4).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use IPC::Run;
use Time::HiRes qw(time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(server_log_is_clean ingest_node feature_available test_seed copy_csv_line copy_text_line shuffle);

my $seed     = test_seed();
my $sessions = $ENV{PG_INGEST_SESSIONS} || 4;
my $copies   = 4;          # COPY statements per session
my $range;                 # keys are drawn from 1 .. $range (wide, then narrow: more contention)
my $lock_id  = 4711;
srand($seed);

my $node = ingest_node('concurrency', "log_statement = 'none'", "deadlock_timeout = '200ms'",
	'max_connections = 40');
if (!ok(feature_available($node), 'pg_ingest provides ingest.last_copy_stats()'))
{
	done_testing();
	exit;
}
my $dir = PostgreSQL::Test::Utils::tempdir();
my $psql = $node->installed_command('psql');

# t, and tp: the same hash-partitioned.
$node->safe_psql('postgres', q{
	CREATE TABLE t (k bigint PRIMARY KEY, v text, n int);
	CREATE TABLE tp (k bigint PRIMARY KEY, v text, n int) PARTITION BY HASH (k);
	CREATE TABLE tp0 PARTITION OF tp FOR VALUES WITH (MODULUS 3, REMAINDER 0);
	CREATE TABLE tp1 PARTITION OF tp FOR VALUES WITH (MODULUS 3, REMAINDER 1);
	CREATE TABLE tp2 PARTITION OF tp FOR VALUES WITH (MODULUS 3, REMAINDER 2);
});
my $table;
my %initial;    # k => 1 for the initial rows (every third key of the range; v 'init', n -1)

sub reset_table
{
	%initial = map { $_ => 1 } grep { $_ % 3 == 0 } 1 .. $range;
	$node->safe_psql('postgres',
		"TRUNCATE $table; INSERT INTO $table SELECT k, 'init', -1 FROM generate_series(3, $range, 3) k;");
}

# Rows of one COPY: [k, v, n]; v names session, COPY and row, so each is unique.
sub gen_copy_rows
{
	my ($s, $c, @keys) = @_;
	my $i = 0;
	return [ map { [ $_, "s$s-c$c-r" . ++$i, int(rand(2**31 - 1)) ] } @keys ];
}

sub copy_file
{
	my ($name, $format, $rows) = @_;
	my $path = "$dir/$name.$format";
	open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
	for my $r (@$rows)
	{
		print $fh ($format eq 'csv' ? copy_csv_line(',', @$r) : copy_text_line(@$r));
	}
	close($fh);
	return $path;
}

# Runs one concurrent round: $plan->[s][c] = rows. Returns per-COPY results and the outputs.
sub run_concurrently
{
	my ($mode, $plan) = @_;
	my (@h, @out, @err);
	my $log_offset = -s $node->logfile;

	my $holder = $node->background_psql('postgres');
	$holder->query_safe("SELECT pg_advisory_lock($lock_id)");

	for my $s (1 .. $sessions)
	{
		my $script = "\\set VERBOSITY verbose\nSELECT pg_advisory_lock_shared($lock_id);\n"
		  . "SELECT pg_advisory_unlock_shared($lock_id);\n";
		for my $c (1 .. $copies)
		{
			my $format = ($s + $c) % 2 ? 'csv' : 'text';
			my $file = copy_file("${mode}_${table}_${range}_s${s}_c$c", $format, $plan->[$s][$c]);
			$script .= "\\warn BEGIN_COPY $s $c\n"
			  . "\\copy $table from '$file' with (format $format, on_conflict '$mode')\n"
			  . "\\warn END_COPY $s $c\n"
			  . "\\echo RESULT $s $c :ROW_COUNT\n"
			  . "SELECT 'STATS', $s, $c, inserted, updated, skipped, rejected FROM ingest.last_copy_stats();\n";
		}
		my $sfile = "$dir/${mode}_${table}_${range}_s$s.sql";
		open(my $fh, '>', $sfile) or die;
		print $fh $script;
		close($fh);
		$out[$s] = '';
		$err[$s] = '';
		$h[$s] = IPC::Run::start(
			[ $psql, '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=0',
				'-d', $node->connstr('postgres'), '-f', $sfile ],
			'>', \$out[$s], '2>', \$err[$s],
			IPC::Run::timeout(4 * $PostgreSQL::Test::Utils::timeout_default));
	}

	# All sessions wait on the lock, then they go at once.
	$node->poll_query_until('postgres',
		"SELECT count(*) = $sessions FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
	  or die "sessions did not all reach the starting line";
	$holder->query_safe("SELECT pg_advisory_unlock($lock_id)");
	my $t0 = time();
	for my $s (1 .. $sessions) { $h[$s]->finish; }
	note(sprintf("%s, %s, keys 1..%d: %d sessions done in %.2f s", $mode, $table, $range, $sessions, time() - $t0));
	$holder->quit;

	my %res;    # "s c" => { rows, stats => [i, u, s, r], errors }
	for my $s (1 .. $sessions)
	{
		for my $line (split /\n/, $out[$s])
		{
			$res{"$1 $2"}{rows} = $3 if $line =~ /^RESULT (\d+) (\d+) (\d+)$/;
			$res{"$1 $2"}{stats} = [ $3, $4, $5, $6 ]
			  if $line =~ /^STATS\|(\d+)\|(\d+)\|(\d+)\|(\d+)\|(\d+)\|(\d+)$/;
		}
	}
	my $log = slurp_file($node->logfile, $log_offset);
	return (\%res, \@err, $log);
}

sub check_no_errors
{
	my ($label, $res, $err, $log) = @_;
	my @bad;
	for my $s (1 .. $sessions)
	{
		push @bad, "session $s:\n$err->[$s]" if $err->[$s] =~ /ERROR|FATAL|PANIC/;
	}
	ok(!@bad, "$label: no session got an error") or diag(join("\n", @bad));
	unlike($log, qr/deadlock detected|40P01/, "$label: no deadlock in the server log");
	unlike($log, qr/duplicate key value violates|23505/, "$label: no unique violation in the server log");
	unlike($log, qr/\b(ERROR|FATAL|PANIC):/, "$label: no error at all in the server log")
	  or diag(join("\n", grep { /\b(ERROR|FATAL|PANIC):/ } split /\n/, $log));
	my @missing = grep { !defined $res->{$_}{rows} || !defined $res->{$_}{stats} }
	  map { my $s = $_; map { "$s $_" } 1 .. $copies } 1 .. $sessions;
	ok(!@missing, "$label: every COPY reported its command tag and stats")
	  or diag("missing: @missing");
}

# Checks that the winners of all keys can be explained by one serial order of the COPYs.
# $edges: "a>b" meaning COPY a must come before COPY b.
sub serial_order_exists
{
	my ($edges) = @_;
	my (%succ, %indeg);
	my @nodes = map { my $s = $_; map { "$s $_" } 1 .. $copies } 1 .. $sessions;
	$indeg{$_} = 0 for @nodes;
	for my $e (keys %$edges)
	{
		my ($a, $b) = split />/, $e;
		next if $a eq $b;
		push @{ $succ{$a} }, $b;
		$indeg{$b}++;
	}
	my @ready = grep { !$indeg{$_} } @nodes;
	my $done = 0;
	while (@ready)
	{
		my $n = shift @ready;
		$done++;
		for my $b (@{ $succ{$n} // [] }) { push @ready, $b unless --$indeg{$b}; }
	}
	return $done == @nodes;
}

for my $round (
	[ upsert => 30000, 't' ],
	[ ignore => 30000, 't' ],
	[ update => 30000, 't' ],
	[ upsert => 4000,  't' ],
	[ ignore => 4000,  't' ],
	[ update => 4000,  't' ],
	[ upsert => 4000,  'tp' ],
	[ ignore => 4000,  'tp' ],
	[ update => 4000,  'tp' ])
{
	my $mode = $round->[0];
	($range, $table) = @$round[ 1, 2 ];
	my $label = "$mode, $table, keys 1..$range";
	reset_table();

	# Plan: per session and COPY, keys with repetition from the shared range.
	my $plan = [];
	for my $s (1 .. $sessions)
	{
		for my $c (1 .. $copies)
		{
			my $m = 2000 + int(rand(18001));
			$plan->[$s][$c] = gen_copy_rows($s, $c, map { 1 + int(rand($range)) } 1 .. $m);
		}
	}

	# Per key: for each session, the row that session can leave behind: the last occurrence
	# in its last COPY writing the key (upsert, update), or the first occurrence in its first
	# COPY writing it (ignore). Also every COPY that wrote the key.
	my (%cand, %writers);
	for my $s (1 .. $sessions)
	{
		for my $c (1 .. $copies)
		{
			for my $r (@{ $plan->[$s][$c] })
			{
				my $k = $r->[0];
				$writers{$k}{"$s $c"} = 1;
				if ($mode eq 'ignore') { $cand{$k}{$s} //= $r; }
				else
				{
					$cand{$k}{$s} = $r;
				}
			}
		}
	}

	my ($res, $err, $log) = run_concurrently($mode, $plan);
	check_no_errors($label, $res, $err, $log);

	my %final;
	for my $line (split /\n/, $node->safe_psql('postgres', "SELECT k, v, n FROM $table"))
	{
		my ($k, $v, $n) = split /\|/, $line;
		$final{$k} = [ $v, $n ];
	}

	# Keys present.
	my %expect_keys = %initial;
	if ($mode ne 'update') { $expect_keys{$_} = 1 for keys %writers; }
	is(scalar(keys %final), scalar(keys %expect_keys),
		"$label: row count is |initial" . ($mode eq 'update' ? '|' : ' + written keys|'));
	my @missing = grep { !exists $final{$_} } keys %expect_keys;
	my @extra   = grep { !exists $expect_keys{$_} } keys %final;
	ok(!@missing && !@extra, "$label: exactly the expected keys are present")
	  or diag("missing keys: @missing[0 .. ($#missing > 9 ? 9 : $#missing)]; "
		  . "unexpected keys: @extra[0 .. ($#extra > 9 ? 9 : $#extra)]");

	# Each key's row.
	my (@wrong, %edges, %won);
	for my $k (sort { $a <=> $b } keys %final)
	{
		my ($v, $n) = @{ $final{$k} };
		my $w = $writers{$k};
		if ($v eq 'init')
		{
			push @wrong, "key $k: initial row has n = $n" if $n != -1 || !$initial{$k};
			push @wrong, "key $k: still the initial row although sessions wrote it"
			  if $w && $mode ne 'ignore';
			next;
		}
		if ($mode eq 'ignore' && $initial{$k})
		{
			push @wrong, "key $k: initial row replaced by ($v, $n) in ignore mode";
			next;
		}
		my ($s, $c) = $v =~ /^s(\d+)-c(\d+)-r\d+$/;
		my $want = defined $s ? $cand{$k}{$s} : undef;
		if (!$want || $want->[1] ne $v || $want->[2] != $n)
		{
			push @wrong,
			  "key $k: row ($v, $n) is not one a session could leave behind; candidates: "
			  . join(', ', map { "($_->[1], $_->[2])" } values %{ $cand{$k} // {} });
			next;
		}
		$won{"$s $c"}++;
		# Serial order: the winner comes after (upsert, update) or before (ignore) every
		# other COPY that wrote the key.
		for my $x (keys %$w)
		{
			next if $x eq "$s $c";
			$edges{ $mode eq 'ignore' ? "$s $c>$x" : "$x>$s $c" } = 1;
		}
	}
	ok(!@wrong, "$label: every key holds a row one session wrote for it (whole row, right occurrence)")
	  or diag(join("\n", @wrong[0 .. ($#wrong > 19 ? 19 : $#wrong)]) . "\n" . scalar(@wrong) . " keys wrong");
	for my $s (1 .. $sessions)
	{
		$edges{"$s $_>$s " . ($_ + 1)} = 1 for 1 .. $copies - 1;
	}
	ok(serial_order_exists(\%edges), "$label: one serial order of the COPYs explains the end state");

	# Stats and command tags.
	my @stat_problems;
	my $sum_inserted = 0;
	my $new_keys = grep { !$initial{$_} } keys %writers;
	for my $s (1 .. $sessions)
	{
		for my $c (1 .. $copies)
		{
			my $r = $res->{"$s $c"};
			next unless $r->{stats};
			my ($i, $u, $sk, $rej) = @{ $r->{stats} };
			my $rows = $plan->[$s][$c];
			my $m = @$rows;
			push @stat_problems, "COPY $s/$c: $i+$u+$sk != $m rows" if $i + $u + $sk != $m;
			push @stat_problems, "COPY $s/$c: rejected $rej"      if $rej != 0;
			push @stat_problems, "COPY $s/$c: command tag $r->{rows} != inserted+updated " . ($i + $u)
			  if ($r->{rows} // -1) != $i + $u;
			$sum_inserted += $i;
			if ($mode eq 'update')
			{
				my $hits = grep { $initial{ $_->[0] } } @$rows;
				push @stat_problems, "COPY $s/$c: update stats $i/$u/$sk, expected 0/$hits/" . ($m - $hits)
				  if $i != 0 || $u != $hits;
			}
			elsif ($mode eq 'upsert')
			{
				push @stat_problems, "COPY $s/$c: upsert skipped $sk" if $sk != 0;
			}
			else
			{
				push @stat_problems, "COPY $s/$c: ignore updated $u" if $u != 0;
				push @stat_problems, "COPY $s/$c: inserted $i but " . ($won{"$s $c"} // 0) . " keys hold its rows"
				  if $i != ($won{"$s $c"} // 0);
			}
		}
	}
	my $want_ins = $mode eq 'update' ? 0 : $new_keys;
	push @stat_problems, "sum of inserted $sum_inserted, expected $want_ins new keys"
	  if $sum_inserted != $want_ins;
	ok(!@stat_problems, "$label: last_copy_stats() and command tags add up")
	  or diag(join("\n", @stat_problems));
}

# strict: disjoint new keys per session, no duplicates; everything must load.
{
	my $mode = 'strict';
	$range = 30000;
	$table = 't';
	my $label = 'strict, disjoint keys';
	reset_table();
	my $plan = [];
	my %want;
	my $total = 0;
	for my $s (1 .. $sessions)
	{
		my @keys = shuffle(map { $range + $s + $_ * $sessions } 0 .. 3 * (2000 + int(rand(4000))) - 1);
		my $per = int(@keys / $copies);
		for my $c (1 .. $copies)
		{
			my @mine = splice(@keys, 0, $c == $copies ? scalar(@keys) : $per);
			$plan->[$s][$c] = gen_copy_rows($s, $c, @mine);
			$want{ $_->[0] } = $_ for @{ $plan->[$s][$c] };
			$total += @mine;
		}
	}
	my ($res, $err, $log) = run_concurrently($mode, $plan);
	check_no_errors($label, $res, $err, $log);
	my @bad;
	for my $s (1 .. $sessions)
	{
		for my $c (1 .. $copies)
		{
			my $m = @{ $plan->[$s][$c] };
			my $st = $res->{"$s $c"}{stats} // [];
			push @bad, "COPY $s/$c: stats @$st, tag " . ($res->{"$s $c"}{rows} // 'none') . ", expected $m/0/0/0"
			  unless "@$st" eq "$m 0 0 0" && ($res->{"$s $c"}{rows} // -1) == $m;
		}
	}
	ok(!@bad, "$label: every COPY inserted all its rows") or diag(join("\n", @bad));
	my $got = $node->safe_psql('postgres',
		"SELECT count(*), count(*) FILTER (WHERE v = 'init' AND n = -1) FROM $table");
	is($got, (scalar(keys %initial) + $total) . '|' . scalar(keys %initial),
		"$label: initial rows kept and all new rows present");
	my @wrong;
	for my $line (split /\n/, $node->safe_psql('postgres', "SELECT k, v, n FROM $table WHERE v <> 'init'"))
	{
		my ($k, $v, $n) = split /\|/, $line;
		my $w = $want{$k};
		push @wrong, "key $k: ($v, $n)" unless $w && $w->[1] eq $v && $w->[2] == $n;
	}
	ok(!@wrong, "$label: every loaded row is exactly as written")
	  or diag(join("\n", @wrong[0 .. ($#wrong > 19 ? 19 : $#wrong)]));
}

server_log_is_clean($node);

$node->stop;
done_testing();
