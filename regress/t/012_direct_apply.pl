# The merge engine's direct apply path (extension/src/merge_direct.hpp) when another
# transaction inserts one of its new keys in the window between the merge's probe and its
# index entry. The window is opened on purpose: a CHECK constraint whose function waits on an
# advisory lock at key 51, while the merge holds the new rows 41..50 for one multi-insert.
# Meanwhile another session inserts key 50, then:
#   1. commits before the merge goes on: the merge's index entry for 50 meets a unique
#      violation, the chunk is rolled back and redone by statement;
#   2. stays open: the merge waits for it, and the other session rolls back: the merge finishes
#      directly;
#   3. stays open, and commits while the merge waits: as in 1.
#   4. a key the merge has not reached yet (60) is inserted and committed: the merge's batch of
#      index entries, read before, does not hold it, so again its index entry meets the violation;
#   5. an existing key not reached yet (70) is being updated: the merge waits for the updater
#      and updates the newest version.
# Every time the COPY succeeds, the counts are those of INSERT ... ON CONFLICT, and the table
# holds exactly the COPY's rows (key 50 updated when the other row was committed). The path
# taken is read from the merge's DEBUG1 line. Also: with ingest.direct_apply off, for a
# table the direct path must not touch (a trigger, also on a partition), the statement path is
# taken; a partitioned table and a partition loaded directly are applied directly.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(server_log_is_clean ingest_node feature_available);

my $lock_id = 4712;
my $node = ingest_node('direct_apply', "log_statement = 'none'");
if (!ok(feature_available($node), 'pg_ingest provides ingest.last_copy_stats()'))
{
	done_testing();
	exit;
}
my $dir  = PostgreSQL::Test::Utils::tempdir();
my $psql = $node->installed_command('psql');

$node->safe_psql('postgres', qq{
	CREATE FUNCTION gate(k bigint) RETURNS boolean LANGUAGE plpgsql AS \$\$
	BEGIN
		IF k = 51 THEN
			PERFORM pg_advisory_lock_shared($lock_id);
			PERFORM pg_advisory_unlock_shared($lock_id);
		END IF;
		RETURN true;
	END \$\$;
	CREATE TABLE r (k bigint PRIMARY KEY, v text, CHECK (gate(k)));
	CREATE TABLE rt (k bigint PRIMARY KEY, v text);
	CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
	CREATE TRIGGER noop BEFORE INSERT ON rt FOR EACH ROW EXECUTE FUNCTION noop();
	CREATE TABLE pp (k bigint PRIMARY KEY, v text) PARTITION BY RANGE (k);
	CREATE TABLE pp1 PARTITION OF pp FOR VALUES FROM (1) TO (1000);
});

my $file = "$dir/load.csv";
open(my $fh, '>', $file) or die "cannot write $file: $!";
print $fh "$_,a$_\n" for 1 .. 100;
close($fh);

sub reset_table
{
	my ($table) = @_;
	$node->safe_psql('postgres',
		"TRUNCATE $table; INSERT INTO $table SELECT g, 'old' FROM generate_series(1, 40) g");
}

# Starts the COPY of keys 1..100 (1..40 exist) in the background.
sub start_copy
{
	my ($table, $settings) = @_;
	my %run = (out => '', err => '');
	my $script = "$settings\nSET client_min_messages = debug1;\n"
	  . "\\copy $table from '$file' with (format csv, on_conflict 'upsert')\n"
	  . "RESET client_min_messages;\n"
	  . "SELECT 'STATS', inserted, updated, skipped, rejected FROM ingest.last_copy_stats();\n";
	my $sfile = "$dir/copy_$table.sql";
	open(my $sh, '>', $sfile) or die "cannot write $sfile: $!";
	print $sh $script;
	close($sh);
	$run{h} = IPC::Run::start(
		[ $psql, '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
			'-f', $sfile ],
		'>', \$run{out}, '2>', \$run{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return \%run;
}

# Waits for the COPY, then checks its outcome: counts (key 50 updated when the other row was
# committed, inserted when it was not), the apply path and the table.
sub check_copy
{
	my ($label, $run, $table, $want_stats, $want_path) = @_;
	ok($run->{h}->finish, "$label: the COPY succeeded") or diag($run->{err});
	like($run->{out}, qr/^STATS\|\Q$want_stats\E$/m, "$label: counts $want_stats")
	  or diag($run->{out});
	my ($line) = $run->{err} =~ /(pg_ingest merge into $table: .*)/;
	$line //= '(no DEBUG1 line from the merge)';
	like($line, $want_path, "$label: applied $want_path") or diag($run->{err});
	is( $node->safe_psql('postgres',
			"SELECT count(*), count(*) FILTER (WHERE v = 'a' || k) FROM $table"),
		'100|100', "$label: the table holds exactly the COPY's rows");
}

my $holder = $node->background_psql('postgres');

sub wait_for
{
	my ($what, $query) = @_;
	$node->poll_query_until('postgres', $query) or die "timed out waiting for $what";
}

# Applied directly from start to end, rows found by the ordered probe.
my $direct_ordered = qr/\(direct; ordered probe: \d+ batches, \d+ per-row\)$/;

my $at_gate = "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
my $on_xact = "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted";

# 1. The other row is committed while the merge holds 41..50 unindexed.
reset_table('r');
$holder->query_safe("SELECT pg_advisory_lock($lock_id)");
my $run = start_copy('r', '');
wait_for('the COPY to reach key 51', $at_gate);
$node->safe_psql('postgres', "INSERT INTO r VALUES (50, 'other')");
$holder->query_safe("SELECT pg_advisory_unlock($lock_id)");
check_copy('committed first', $run, 'r', '59|41|0|0', qr/\(direct, then statement from a chunk/);

# 2. The other row is still being inserted: the merge waits for it; it rolls back.
reset_table('r');
$holder->query_safe("SELECT pg_advisory_lock($lock_id)");
$run = start_copy('r', '');
wait_for('the COPY to reach key 51', $at_gate);
my $other = $node->background_psql('postgres');
$other->query_safe("BEGIN; INSERT INTO r VALUES (50, 'other')");
$holder->query_safe("SELECT pg_advisory_unlock($lock_id)");
wait_for('the COPY to wait for the other transaction', $on_xact);
$other->query_safe('ROLLBACK');
check_copy('rolled back while the merge waits', $run, 'r', '60|40|0|0', $direct_ordered);

# 3. The same, but the other transaction commits.
reset_table('r');
$holder->query_safe("SELECT pg_advisory_lock($lock_id)");
$run = start_copy('r', '');
wait_for('the COPY to reach key 51', $at_gate);
$other->query_safe("BEGIN; INSERT INTO r VALUES (50, 'other')");
$holder->query_safe("SELECT pg_advisory_unlock($lock_id)");
wait_for('the COPY to wait for the other transaction', $on_xact);
$other->query_safe('COMMIT');
check_copy('committed while the merge waits', $run, 'r', '59|41|0|0',
	qr/\(direct, then statement from a chunk/);

# 4. A key past the gate (60) is inserted and committed while the merge waits. The merge finds
#    rows in a batch of index entries, read to the end of the index before the gate: it does
#    not see the row, and its own index entry for 60 meets the unique violation: as in 1.
reset_table('r');
$holder->query_safe("SELECT pg_advisory_lock($lock_id)");
$run = start_copy('r', '');
wait_for('the COPY to reach key 51', $at_gate);
$node->safe_psql('postgres', "INSERT INTO r VALUES (60, 'other')");
$holder->query_safe("SELECT pg_advisory_unlock($lock_id)");
check_copy('a key committed past the ordered scan', $run, 'r', '59|41|0|0',
	qr/\(direct, then statement from a chunk/);

# 5. An existing key past the gate (70) is being updated by an open transaction: the
#    batch's entry leads to the row being updated: the merge waits for the updater, then
#    updates the newest version.
reset_table('r');
$node->safe_psql('postgres', "INSERT INTO r VALUES (70, 'old')");
$holder->query_safe("SELECT pg_advisory_lock($lock_id)");
$run = start_copy('r', '');
wait_for('the COPY to reach key 51', $at_gate);
$other->query_safe("BEGIN; UPDATE r SET v = 'other' WHERE k = 70");
$holder->query_safe("SELECT pg_advisory_unlock($lock_id)");
wait_for('the COPY to wait for the updating transaction', $on_xact);
$other->query_safe('COMMIT');
check_copy('an update in progress past the gate', $run, 'r', '59|41|0|0', $direct_ordered);

# 6. Another session inserts a key the merge has already updated (30) while the merge is
#    stopped at the gate. The merge made the new version's index entry without a uniqueness
#    check (merge_direct.cpp, insert_update_entries): the other insert must still wait for the
#    merge, on the version it replaced, and then fail with 23505. An upsert of another such key
#    (20) waits too, and updates the merge's row after it commits. An index on v makes the
#    updates non-HOT, so that every updated row gets new index entries.
reset_table('r');
$node->safe_psql('postgres', 'CREATE INDEX r_v ON r (v)');
$holder->query_safe("SELECT pg_advisory_lock($lock_id)");
$run = start_copy('r', '');
wait_for('the COPY to reach key 51', $at_gate);
my %ins = (out => '', err => '');
$ins{h} = IPC::Run::start(
	[ $psql, '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
		'-c', "INSERT INTO r VALUES (30, 'other')" ],
	'>', \$ins{out}, '2>', \$ins{err},
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
wait_for('the INSERT of key 30 to wait for the merge', $on_xact);
my %ups = (out => '', err => '');
$ups{h} = IPC::Run::start(
	[ $psql, '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
		'-c', "INSERT INTO r VALUES (20, 'other') ON CONFLICT (k) DO UPDATE SET v = r.v || '+'" ],
	'>', \$ups{out}, '2>', \$ups{err},
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
wait_for('the upsert of key 20 to wait for the merge',
	"SELECT count(*) = 2 FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted");
$holder->query_safe("SELECT pg_advisory_unlock($lock_id)");
ok($run->{h}->finish, 'insert of an updated key: the COPY succeeded') or diag($run->{err});
like($run->{out}, qr/^STATS\|60\|40\|0\|0$/m, 'insert of an updated key: counts 60|40|0|0')
  or diag($run->{out});
like($run->{err}, qr/pg_ingest merge into r: .*$direct_ordered/,
	'insert of an updated key: applied directly');
ok(!$ins{h}->finish, 'insert of an updated key: the other INSERT failed');
like($ins{err}, qr/duplicate key value violates unique constraint "r_pkey"/,
	'insert of an updated key: with the unique violation');
ok($ups{h}->finish, 'upsert of an updated key: succeeded after the merge') or diag($ups{err});
is( $node->safe_psql('postgres',
		"SELECT count(*), count(DISTINCT k), count(*) FILTER (WHERE v = 'a' || k), "
		  . "max(v) FILTER (WHERE k = 20) FROM r"),
	'100|100|99|a20+', 'insert of an updated key: one row per key, the upsert applied last');
$node->safe_psql('postgres', 'CREATE EXTENSION IF NOT EXISTS amcheck');
is($node->safe_psql('postgres', "SELECT bt_index_check('r_pkey', true)"),
	'', 'insert of an updated key: the primary key indexes every row version (amcheck)');
is($node->safe_psql('postgres', "SELECT bt_index_check('r_v', true)"),
	'', 'insert of an updated key: so does the index on v (amcheck)');
$node->safe_psql('postgres', 'DROP INDEX r_v');
$other->quit;
$holder->quit;

# The statement path: switched off, and for a table with a trigger.
reset_table('r');
check_copy('ingest.direct_apply off', start_copy('r', 'SET ingest.direct_apply = off;'),
	'r', '60|40|0|0', qr/\(statement\)$/);
reset_table('rt');
check_copy('a table with a trigger', start_copy('rt', ''), 'rt', '60|40|0|0',
	qr/\(statement: triggers \(foreign keys and deferrable constraints included\)\)$/);
# A partitioned table is applied directly, each row routed to its partition; so is a partition
# loaded directly (regress 14 checks its partition constraint). A partition the direct path
# cannot write (here one with a trigger) sends the whole merge to the statement.
reset_table('pp');
check_copy('a partitioned table', start_copy('pp', ''), 'pp', '60|40|0|0', $direct_ordered);
$node->safe_psql('postgres', q{
	CREATE TABLE pp2 PARTITION OF pp FOR VALUES FROM (1000) TO (2000);
	CREATE TRIGGER noop BEFORE INSERT ON pp2 FOR EACH ROW EXECUTE FUNCTION noop();
});
reset_table('pp');
check_copy('a partitioned table with a trigger on a partition', start_copy('pp', ''), 'pp',
	'60|40|0|0', qr/\(statement: triggers \(foreign keys and deferrable constraints included\)\)$/);
reset_table('pp1');
check_copy('a partition loaded directly', start_copy('pp1', ''), 'pp1', '60|40|0|0',
	$direct_ordered);

# An error is the statement's, in the statement's order. Row 45 violates another unique index
# (found when the direct path flushes its buffered new rows, after row 46's CHECK violation):
# the statement stops at row 45 with 23505, and so must the COPY.
$node->safe_psql('postgres', q{
	CREATE TABLE u (k bigint PRIMARY KEY, nk int UNIQUE, v int CHECK (v > 0));
	INSERT INTO u VALUES (1000, 45, 1);
});
my $ufile = "$dir/u.csv";
open(my $uh, '>', $ufile) or die "cannot write $ufile: $!";
print $uh "$_,$_," . ($_ == 46 ? -1 : 1) . "\n" for 41 .. 50;
close($uh);
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"\\copy u from '$ufile' with (format csv, on_conflict 'upsert')");
isnt($ret, 0, 'an error in a direct chunk: the COPY fails');
like($stderr, qr/duplicate key value violates unique constraint "u_nk_key"/,
	"an error in a direct chunk: it is the statement's first error (row 45), not row 46's CHECK")
  or diag($stderr);
is($node->safe_psql('postgres', 'SELECT count(*) FROM u'), '1',
	'an error in a direct chunk: nothing loaded');

# Update mode always takes the statement (UPDATE ... FROM sees rows through its snapshot).
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET client_min_messages = debug1;\n\\copy r from '$file' with (format csv, on_conflict 'update')");
like($stderr, qr/pg_ingest merge into r: .*\(statement: conflict mode\)$/m,
	'update mode: applied by statement');

# The ordered probe must find every existing row by itself: a row it missed would make the
# chunk fail on the unique check and be redone by statement, which the path in the DEBUG1 line
# shows. Tables with dead row versions (updates, deletes), loads with keys spread thinly (new
# descents) and dense runs, over many chunks; a text key under an ICU collation (if the server
# has one) with work_mem small enough that chunks go to disk; NULL keys of a nullable unique
# key. Each load is also applied through the statement path, and the two tables compared.
my $coll = $node->safe_psql('postgres',
	"SELECT CASE WHEN EXISTS (SELECT FROM pg_collation WHERE collname = 'und-x-icu') THEN '\"und-x-icu\"' ELSE '\"default\"' END");
my %probe_case = (
	bigint => {
		ddl => 'k bigint PRIMARY KEY, v text, w int',
		fill => q{INSERT INTO %s SELECT g * 7, 'init', 0 FROM generate_series(0, 30000) g;
			UPDATE %s SET w = 1 WHERE k % 3 = 0; UPDATE %s SET w = 2 WHERE k % 5 = 0;
			DELETE FROM %s WHERE k % 11 = 0},
		load => q{SELECT k, 'load ' || k, k % 97 FROM (SELECT generate_series(0, 250000, 1000) AS k
			UNION SELECT generate_series(70000, 75000) UNION SELECT generate_series(300000, 300050)) s
			ORDER BY md5(k::text)},
		settings => 'SET ingest.merge_chunk_rows = 1000;',
	},
	text => {
		ddl => "k text COLLATE $coll UNIQUE, v text",
		fill => q{INSERT INTO %s SELECT 'Key-' || g * 3, 'init' FROM generate_series(0, 20000) g;
			UPDATE %s SET v = 'u' WHERE length(k) % 2 = 0},
		load => q{SELECT k, 'load ' || k FROM (SELECT 'Key-' || generate_series(0, 60000, 17) AS k
			UNION SELECT 'key-' || generate_series(0, 1000) UNION SELECT 'KEY-' || generate_series(0, 300)) s
			ORDER BY md5(k)},
		settings => "SET work_mem = '64kB'; SET ingest.merge_chunk_rows = 2000;",
	},
	# One key with more dead entries than a batch holds (an old snapshot keeps them): it is
	# found by a per-row probe.
	versions => {
		ddl => 'k bigint PRIMARY KEY, v text, w int',
		fill => q{INSERT INTO %s SELECT g, 'init', 0 FROM generate_series(1, 2000) g;
			CREATE INDEX ON %s (w);
			DO $$ BEGIN FOR i IN 1..600 LOOP UPDATE %s SET w = w + 1 WHERE k = 1000; END LOOP; END $$},
		load => q{SELECT g, 'load ' || g, g % 7 FROM generate_series(1, 3000) g ORDER BY md5(g::text)},
		settings => '',
		path => qr/\(direct; ordered probe: \d+ batches, [1-9]\d* per-row\)$/,
	},
	nullable => {
		ddl => 'k bigint UNIQUE, v text',
		fill => q{INSERT INTO %s SELECT CASE WHEN g % 100 = 0 THEN NULL ELSE g * 2 END, 'init'
			FROM generate_series(0, 20000) g; DELETE FROM %s WHERE k % 6 = 0},
		load => q{SELECT CASE WHEN g % 50 = 0 THEN NULL ELSE g END, 'load ' || g
			FROM generate_series(10000, 30000) g ORDER BY md5(g::text)},
		settings => 'SET ingest.merge_chunk_rows = 1000;',
	});
my $old_snapshot = $node->background_psql('postgres');
$old_snapshot->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
for my $case (sort keys %probe_case)
{
	my $c = $probe_case{$case};
	my $csv = "$dir/probe_$case.csv";
	$node->safe_psql('postgres', "COPY ($c->{load}) TO '$csv' (FORMAT csv)");
	my %stats;
	for my $da ('on', 'off')
	{
		my $t = "probe_${case}_$da";
		my $fill = $c->{fill};
		$fill =~ s/%s/$t/g;
		$node->safe_psql('postgres',
			"CREATE TABLE $t ($c->{ddl}) WITH (autovacuum_enabled = off); $fill");
		my ($ret, $out, $err) = $node->psql('postgres',
			"$c->{settings} SET ingest.direct_apply = $da; SET client_min_messages = debug1;\n"
			  . "\\copy $t from '$csv' with (format csv, on_conflict 'upsert')\n"
			  . "RESET client_min_messages;\n"
			  . "SELECT inserted, updated FROM ingest.last_copy_stats()");
		is($ret, 0, "ordered probe, $case, direct_apply $da: the COPY succeeded") or diag($err);
		my ($line) = $err =~ /(pg_ingest merge into $t: .*)/;
		like($line // '(no DEBUG1 line)',
			$da eq 'on' ? ($c->{path} // $direct_ordered) : qr/\(statement\)$/,
			"ordered probe, $case, direct_apply $da: applied " . ($da eq 'on' ? 'directly, no redo' : 'by statement'));
		$stats{$da} = $out;
	}
	is($stats{on}, $stats{off}, "ordered probe, $case: the counts are the statement's ($stats{off})");
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM ((TABLE probe_${case}_on EXCEPT ALL TABLE probe_${case}_off) "
			  . "UNION ALL (TABLE probe_${case}_off EXCEPT ALL TABLE probe_${case}_on)) d"),
		'0', "ordered probe, $case: the table is the statement's");
}
$old_snapshot->query_safe('COMMIT');
$old_snapshot->quit;

# Repeated upserts of the same keys, no VACUUM between: the direct path makes an updated row's
# index entries without the uniqueness check and the bottom-up deletion hint only where the key
# had one entry (insert_update_entries), so later loads clean up old versions as the statement
# path does and the primary key grows about as much (at 1M rows: the same size; without the
# hint on later loads it was 37% larger at this size).
{
	my $n = 50000;
	my $load = "$dir/repeat.csv";
	$node->safe_psql('postgres',
		"COPY (SELECT g, md5(g::text) FROM generate_series(1, $n) g ORDER BY md5(g::text)) "
		  . "TO '$load' WITH (FORMAT csv)");
	my %pages;
	for my $da ('on', 'off')
	{
		my $t = "repeat_$da";
		$node->safe_psql('postgres',
			"CREATE TABLE $t (k bigint PRIMARY KEY, v text) WITH (autovacuum_enabled = off); "
			  . "INSERT INTO $t SELECT g, 'base' FROM generate_series(1, $n) g; VACUUM ANALYZE $t");
		for my $round (1 .. 3)
		{
			my ($ret, $out, $err) = $node->psql('postgres',
				"SET ingest.direct_apply = $da; SET client_min_messages = debug1;\n"
				  . "\\copy $t from '$load' with (format csv, on_conflict 'upsert')");
			is($ret, 0, "repeated upsert $round, direct_apply $da: the COPY succeeded") or diag($err);
			my ($line) = $err =~ /(pg_ingest merge into $t: .*)/;
			like($line // '(no DEBUG1 line)', $da eq 'on' ? $direct_ordered : qr/\(statement\)$/,
				"repeated upsert $round, direct_apply $da: the path");
		}
		$pages{$da} = $node->safe_psql('postgres', "SELECT pg_relation_size('${t}_pkey') / 8192");
	}
	ok($pages{on} <= $pages{off} * 1.15,
		"repeated upserts: the primary key has $pages{on} pages, the statement path's $pages{off}");
}

server_log_is_clean($node);

$node->stop;
done_testing();
