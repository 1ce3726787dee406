# Randomized differential test of COPY ... WITH (ON_CONFLICT ...).
#
# Every round builds a random table (key of 1-3 columns of assorted types, PRIMARY KEY or a
# UNIQUE constraint/index, sometimes partitioned, sometimes with quoted mixed-case names in a
# non-public schema) and a batch with many repeated keys, then for each mode applies the batch
# to one copy of the table with COPY ON CONFLICT and to an identical copy with the oracle: the
# same rows one at a time, in input order, each with the equivalent plain SQL statement:
#
#   upsert  INSERT ... ON CONFLICT (keys) DO UPDATE SET <copied non-key columns> = EXCLUDED...
#   update  UPDATE ... SET <copied non-key columns> WHERE <keys> = ...
#   ignore  INSERT ... ON CONFLICT (keys) DO NOTHING
#   strict  plain INSERTs in one transaction (a 23505 there means the COPY must fail with 23505)
#
# The two tables must then be identical (typed and as text: 1.0 and 1.00 are one numeric key
# but print differently), ingest.last_copy_stats() must equal the oracle's per-row counts, and
# the command tag must report the rows written (inserted + updated).
#
# Environment: PG_INGEST_SEED (replay a run), PG_INGEST_ROUNDS (default 200),
# PG_INGEST_ONLY_ROUND (run just that round of the seed's sequence).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest qw(server_log_is_clean ingest_node feature_available test_seed qi ql lit
  copy_text_line copy_csv_line opt_ident_list shuffle pick);

my @MODES = qw(upsert update ignore strict);
my %ABBR  = (upsert => 'up', update => 'ud', ignore => 'ig', strict => 'st');

my $seed = test_seed();
my $rounds = $ENV{PG_INGEST_ROUNDS} || 200;
my $only   = $ENV{PG_INGEST_ONLY_ROUND};
srand($seed);
my @round_seeds = map { int(rand(2**31)) } 1 .. $rounds;

my $node = ingest_node('differential', "log_statement = 'none'");
if (!ok(feature_available($node), 'pg_ingest provides ingest.last_copy_stats()'))
{
	done_testing();
	exit;
}
my $filedir = $node->basedir . '/copy_files';
make_path($filedir);

# ---------------------------------------------------------------------------------------
# Value generators. A key value is [canonical form, [spellings]]: all spellings of one
# canonical value are equal under the type's equality (they are the same key).

my @TEXT_FRAGS = (
	'a', 'B', 'Mixed Case', ' ', ',', "'", '"', 'x\\y', "\t", "\n", "\r",
	"\xc3\xa9",                    # é
	"\xe6\x97\xa5\xe6\x9c\xac",    # 日本
	"\xf0\x9f\x98\x80",            # emoji
	"\xc3\x9f", 'NULL', '\\N', 'zz', '0', ' lead', 'trail ', '\\\\', ';', 'A');

sub gen_text
{
	my ($max) = @_;
	return join('', map { pick(@TEXT_FRAGS) } 1 .. int(rand($max + 1)));
}

sub key_bigint
{
	my $r = rand();
	my $n;
	if    ($r < 0.7)  { $n = sprintf('%d', int(rand(60)) - 15); }
	elsif ($r < 0.85) { $n = pick('9223372036854775807', '-9223372036854775808', '0', '-1'); }
	else { $n = sprintf('%d', int(rand(1e15)) * (rand() < 0.5 ? -1 : 1)); }
	my @sp = ($n);
	if ($n =~ /^-(\d+)$/) { push @sp, "-0$1"; }
	else                  { push @sp, "+$n", "0$n"; }
	return [ $n, \@sp ];
}

sub key_text
{
	my $s = gen_text(3);
	return [ $s, [$s] ];
}

sub numeric_value
{
	my $r = rand();
	return [ 'NaN', [ 'NaN', 'nan', 'NAN' ] ] if $r < 0.04;
	return [ 'Infinity', [ 'Infinity', 'inf', '+Infinity', 'INF' ] ] if $r < 0.07;
	return [ '-Infinity', [ '-Infinity', '-inf' ] ] if $r < 0.09;
	my $ip = pick('0', '1', '2', '7', '10', '100', '42', '999999999999999999999999');
	my $fr = pick('', '', '5', '25', '001', '123456789012');
	my $zero = ($ip eq '0' && $fr eq '');
	my $sign = (!$zero && rand() < 0.3) ? '-' : '';
	my $canon = $sign . $ip . ($fr ne '' ? ".$fr" : '');
	my $frac0 = $fr ne '' ? ".$fr" : '.';
	my @sp = (
		$canon, $sign . $ip . $frac0 . '0',
		$sign . $ip . $frac0 . '00', $sign . '0' . $ip . ($fr ne '' ? ".$fr" : ''),
		$canon . 'e0');
	push @sp, "+$canon" if $sign eq '';
	push @sp, '-0', '-0.00' if $zero;
	return [ $canon, \@sp ];
}

sub key_numeric { return numeric_value(); }

sub key_timestamp
{
	if (rand() < 0.05)
	{
		my $v = pick('infinity', '-infinity');
		return [ $v, [ $v, ucfirst($v) ] ];
	}
	my ($d, $t, $bc) = @{
		pick(
			[ '2024-01-01', '00:00:00', 0 ],
			[ '1999-12-31', '23:59:59', 0 ],
			[ '2000-02-29', '12:34:56', 0 ],
			[ '1970-01-01', '00:00:00', 0 ],
			[ '0044-03-15', '12:00:00', 1 ])
	};
	my $micro = pick(0, 1, 2, 10, 999999, 500000, 123456);
	my $bcs   = $bc ? ' BC' : '';
	my $f6    = sprintf('.%06d', $micro);
	(my $ft = $f6) =~ s/0+$//;
	$ft = '' if $ft eq '.';
	my @sp = ("$d $t$f6$bcs", "$d $t$ft$bcs");
	push @sp, "${d}T$t$f6" unless $bc;
	push @sp, "$d $t.0$bcs" if $micro == 0;
	return [ "$d $t$f6$bcs", \@sp ];
}

sub key_uuid
{
	my $hex;
	if (rand() < 0.1) { $hex = pick('0' x 32, 'f' x 32); }
	else { $hex = join('', map { sprintf('%x', int(rand(16))) } 1 .. 32); }
	my $c = join('-',
		substr($hex, 0, 8), substr($hex, 8, 4), substr($hex, 12, 4),
		substr($hex, 16, 4), substr($hex, 20, 12));
	return [ $c, [ $c, uc($c), "{$c}", $hex, uc($hex) ] ];
}

my %KEYGEN = (
	bigint    => \&key_bigint,
	text      => \&key_text,
	numeric   => \&key_numeric,
	timestamp => \&key_timestamp,
	uuid      => \&key_uuid);

# Split points for RANGE partitions on the first key column, ascending for the type.
my %RANGE_BOUNDS = (
	bigint  => [ '-5', '5', '20', '1000000' ],
	text    => [ 'E', 'b', 'm', 'x' ],
	numeric => [ '-1', '0.5', '10', '1000000' ],
	timestamp =>
	  [ '1971-01-01', '2000-01-01', '2000-03-01', '2024-01-01 00:00:00.000001' ],
	uuid => [
		'40000000-0000-0000-0000-000000000000', '80000000-0000-0000-0000-000000000000',
		'c0000000-0000-0000-0000-000000000000', 'f0000000-0000-0000-0000-000000000000'
	]);

sub json_str
{
	my ($s) = @_;
	$s =~ s/\\/\\\\/g;
	$s =~ s/"/\\"/g;
	$s =~ s/\t/\\t/g;
	$s =~ s/\n/\\n/g;
	$s =~ s/\r/\\r/g;
	return qq{"$s"};
}

my %VALGEN = (
	int => sub {
		pick('0', '1', '-1', '2147483647', '-2147483648', '+5', '007',
			sprintf('%d', int(rand(1000)) - 500));
	},
	text    => sub { gen_text(6) },
	numeric => sub { pick(@{ numeric_value()->[1] }) },
	bool    => sub { pick(qw(t f true false yes no on off 1 0 TRUE F)) },
	jsonb   => sub {
		pick('{}', '[]', 'null', 'true', '0', '1.50', '"str"',
			'{"a": 1, "b": [1, 2, {"c": null}]}',
			'{"b":1,"a":2}', '[1,"x",false]', '{"s": ' . json_str(gen_text(4)) . '}');
	},
	timestamptz => sub {
		pick(
			'2024-05-06 07:08:09.123456+02', '2024-05-06 07:08:09 UTC',
			'1999-01-08 04:05:06 -8:00',     'epoch',
			'infinity',                      '-infinity',
			'2000-01-01 00:00:00.000001+00', '2024-03-10 02:30:00 America/New_York');
	});

my %DEFAULTS = (
	int         => [ '7',          '-1' ],
	text        => [ q{'dflt'},    q{''} ],
	numeric     => [ '1.50',       q{'NaN'} ],
	bool        => [ 'true',       'false' ],
	jsonb       => [ q{'{"d": 1}'}, q{'[]'} ],
	timestamptz => [ q{'2000-01-01 00:00:00+00'} ]);

# Values that fail input conversion (text/csv rows for ON_ERROR).
my %BAD = (
	bigint      => [ 'x1', '99999999999999999999' ],
	int         => [ 'abc', '2147483648' ],
	numeric     => [ '1.2.3', '--1' ],
	bool        => [ 'maybe' ],
	jsonb       => [ '{bad', '[1,' ],
	timestamp   => [ '2024-13-45 00:00:00', 'yesterday-ish' ],
	timestamptz => [ '2024-02-30 00:00:00+00' ],
	uuid        => [ 'not-a-uuid', '1234' ]);

sub gen_nonkey
{
	my ($type) = @_;
	return undef if rand() < 0.2;
	return $VALGEN{$type}->();
}

# ---------------------------------------------------------------------------------------
# Table and batch generation.

sub gen_spec
{
	my ($round) = @_;
	my %s;
	my $weird = rand() < 0.35;
	$s{schema} =
	    rand() < 0.4 ? 'public'
	  : ($weird || rand() < 0.5) ? "Ing Sch \xc3\x9c$round"
	  :                            "ing_s$round";
	$s{base} = $weird ? "Tbl \xc3\x9c$round" : "t$round";
	my $nk = 1 + int(rand(3));
	my $nv = 1 + int(rand(4));
	my @kn =
	  $weird ? (shuffle('Key A', 'kEy"B', 'k,c', 'select'))[ 0 .. $nk - 1 ] : map { "k$_" } 1 .. $nk;
	my @vn =
	  $weird
	  ? (shuffle('Val One', 'vAl"2', 'v,3', "\xc3\x9cn\xc3\xaf", 'from'))[ 0 .. $nv - 1 ]
	  : map { "v$_" } 1 .. $nv;
	my @keys = map { { name => $_, type => pick(sort keys %KEYGEN), key => 1 } } @kn;
	my @vals = map {
		my $t = pick(sort keys %VALGEN);
		{
			name    => $_,
			type    => $t,
			key     => 0,
			default => (rand() < 0.5 ? pick(@{ $DEFAULTS{$t} }) : undef)
		}
	} @vn;
	my @cols = rand() < 0.5 ? shuffle(@keys, @vals) : (@keys, @vals);

	# Sometimes a stored generated column derived from a non-key column.
	my ($src) = grep { $_->{type} eq 'int' || $_->{type} eq 'text' } @vals;
	if ($src && rand() < 0.15)
	{
		my $qs = qi($src->{name});
		my $g =
		  $src->{type} eq 'int'
		  ? { name => ($weird ? 'Gen Col' : 'g'), type => 'bigint', gen => "coalesce($qs, 0)::bigint * 2 + 1" }
		  : { name => ($weird ? 'Gen Col' : 'g'), type => 'text', gen => "md5(coalesce($qs, '<null>'))" };
		$g->{key} = 0;
		splice(@cols, int(rand(@cols + 1)), 0, $g);
	}
	$s{cols} = \@cols;
	$s{keys} = \@keys;    # key order used by the oracle (ON CONFLICT target)
	$s{vals} = \@vals;    # insertable non-key columns
	$s{constraint} = pick('pk', 'pk', 'unique', 'uindex');
	$s{index_keys} = [ map { $_->{name} } (rand() < 0.5 ? shuffle(@keys) : @keys) ];
	$s{nullkeys} = $s{constraint} ne 'pk' && rand() < 0.3;
	$s{nulls_not_distinct} = $s{nullkeys} && rand() < 0.4;    # PG15: one NULL key, not many

	if (rand() < 0.35)
	{
		my $n = 2 + int(rand(3));
		my %p = (kind => pick('hash', 'range'), n => $n);
		if ($p{kind} eq 'range')
		{
			my @b = @{ $RANGE_BOUNDS{ $keys[0]{type} } };
			my %keep = map { $_ => 1 } (shuffle(0 .. $#b))[ 0 .. $n - 2 ];
			$p{bounds} = [ map { $b[$_] } grep { $keep{$_} } 0 .. $#b ];
			$p{default} = $s{nullkeys} || rand() < 0.3;
		}
		$s{part} = \%p;
	}

	# CONFLICT_COLUMNS: always for a non-PK unique key (usually; else it is the only unique
	# index), sometimes for the primary key too; in any column order.
	my $give = $s{constraint} eq 'pk' ? rand() < 0.3 : rand() < 0.85;
	$s{conflict_opt} = [ map { $_->{name} } shuffle(@keys) ] if $give;

	# COPY column list: the keys plus some non-key columns, in table or random order.
	my @sub = rand() < 0.4 ? @vals : grep { rand() < 0.6 } @vals;
	@sub = (pick(@vals)) if !@sub && rand() < 0.7;    # keys only: now and then
	my %in = map { $_->{name} => 1 } (@keys, @sub);
	my @list = grep { $in{ $_->{name} } } @cols;
	my $all = (@sub == @vals);
	@list = shuffle(@list) if rand() < 0.5;
	$s{copycols} = \@list;
	my $table_order = join("\0", map { $_->{name} } @list) eq
	  join("\0", map { $_->{name} } grep { !$_->{gen} } @cols);
	$s{no_column_list} = $all && $table_order && rand() < 0.5;
	$s{setcols} = [ grep { !$_->{key} } @list ];
	if (@{ $s{setcols} } && rand() < 0.2)
	{
		my @u = grep { rand() < 0.5 } @{ $s{setcols} };
		@u = ($s{setcols}[0]) unless @u;
		$s{update_opt} = [ map { $_->{name} } @u ];
		$s{setcols} = \@u;
	}
	return \%s;
}

sub qname
{
	my ($s, $t) = @_;
	return qi($s->{schema}) . '.' . qi($t);
}

sub tname
{
	my ($s, $mode, $side) = @_;
	return "$s->{base}_$ABBR{$mode}_$side";
}

sub table_ddl
{
	my ($s, $t) = @_;
	my $q = qname($s, $t);
	my @defs;
	for my $c (@{ $s->{cols} })
	{
		my $d = qi($c->{name}) . " $c->{type}";
		$d .= " GENERATED ALWAYS AS ($c->{gen}) STORED" if $c->{gen};
		$d .= " DEFAULT $c->{default}" if defined $c->{default};
		push @defs, $d;
	}
	my $kl = join(', ', map { qi($_) } @{ $s->{index_keys} });
	push @defs, "PRIMARY KEY ($kl)" if $s->{constraint} eq 'pk';
	my $nnd = $s->{nulls_not_distinct} ? ' NULLS NOT DISTINCT' : '';
	push @defs, "UNIQUE$nnd ($kl)" if $s->{constraint} eq 'unique';
	my $sql = "CREATE TABLE $q (\n    " . join(",\n    ", @defs) . "\n)";
	my $p = $s->{part};
	$sql .= " PARTITION BY " . uc($p->{kind}) . ' (' . qi($s->{keys}[0]{name}) . ')' if $p;
	$sql .= ";\n";
	$sql .= "CREATE UNIQUE INDEX ON $q ($kl)$nnd;\n" if $s->{constraint} eq 'uindex';
	if ($p)
	{
		my $i = 0;
		if ($p->{kind} eq 'hash')
		{
			for my $r (0 .. $p->{n} - 1)
			{
				$sql .= "CREATE TABLE " . qname($s, "${t}_p$r")
				  . " PARTITION OF $q FOR VALUES WITH (MODULUS $p->{n}, REMAINDER $r);\n";
			}
		}
		else
		{
			my @b = ('MINVALUE', (map { ql($_) } @{ $p->{bounds} }), 'MAXVALUE');
			for my $r (0 .. $#b - 1)
			{
				$sql .= "CREATE TABLE " . qname($s, "${t}_p$r")
				  . " PARTITION OF $q FOR VALUES FROM ($b[$r]) TO ($b[$r+1]);\n";
			}
			$sql .= "CREATE TABLE " . qname($s, "${t}_pd") . " PARTITION OF $q DEFAULT;\n"
			  if $p->{default};
		}
	}
	return $sql;
}

# Rows are { canon => canonical key (equal canon <=> same key), v => { column => value } }.
my $null_serial = 0;

sub gen_key_row
{
	my ($s, $tuple) = @_;
	my %v;
	my @k = @{ $s->{keys} };
	for my $i (0 .. $#k)
	{
		$v{ $k[$i]{name} } = pick(@{ $tuple->[$i][1] });
	}
	my @canon = map { $_->[0] } @$tuple;
	if ($s->{nullkeys} && rand() < 0.08)
	{
		my $j = int(rand(@k));
		$v{ $k[$j]{name} } = undef;
		# A key with a NULL equals no other key, unless the index has NULLS NOT DISTINCT.
		$canon[$j] = $s->{nulls_not_distinct} ? "\x02NULL" : "\x02NULL#" . ++$null_serial;
	}
	my $canon = join("\x01", @canon);
	return { canon => $canon, v => \%v };
}

sub gen_data
{
	my ($s) = @_;
	my @k = @{ $s->{keys} };
	my $psize = @k == 1 ? 25 : 6;
	my @pools;
	for my $c (@k)
	{
		my (%seen, @pool);
		my $want = 1 + int(rand($psize));
		for (1 .. $want * 4)
		{
			last if @pool >= $want;
			my $kv = $KEYGEN{ $c->{type} }->();
			push @pool, $kv unless $seen{ $kv->[0] }++;
		}
		push @pools, \@pool;
	}
	my $usize = 1 + int(rand(40));
	my (%seen, @universe);
	for (1 .. $usize * 4)
	{
		last if @universe >= $usize;
		my @t = map { pick(@$_) } @pools;
		push @universe, \@t unless $seen{ join("\x01", map { $_->[0] } @t) }++;
	}
	@universe = shuffle(@universe);
	my $ninit = int(rand(@universe * 0.6 + 1));
	my @initial = map {
		my $r = gen_key_row($s, $_);
		$r->{v}{ $_->{name} } = gen_nonkey($_->{type}) for @{ $s->{vals} };
		$r;
	} @universe[ 0 .. $ninit - 1 ];
	my %iseen;    # a NULL put into a key (NULLS NOT DISTINCT) can make two initial keys equal
	@initial = grep { !$iseen{ $_->{canon} }++ } @initial;
	my @bpool = (shuffle(@universe))[ 0 .. int(rand(@universe)) ];
	my $n = rand() < 0.3 ? 1 + int(rand(10)) : 1 + int(rand(300));
	my @batch = map {
		my $r = gen_key_row($s, pick(@bpool));
		$r->{v}{ $_->{name} } = gen_nonkey($_->{type})
		  for grep { !$_->{key} } @{ $s->{copycols} };
		$r;
	} 1 .. $n;
	return (\@initial, \@batch);
}

# ---------------------------------------------------------------------------------------
# SQL and COPY data rendering.

sub insert_values_sql
{
	my ($s, $t, $rows) = @_;
	return '' unless @$rows;
	my @c = grep { !$_->{gen} } @{ $s->{cols} };
	return "INSERT INTO " . qname($s, $t) . ' (' . join(', ', map { qi($_->{name}) } @c) . ")\nVALUES "
	  . join(",\n    ",
		map { my $r = $_; '(' . join(', ', map { lit($r->{v}{ $_->{name} }, $_->{type}) } @c) . ')' } @$rows)
	  . ";\n";
}

sub key_pred
{
	my ($s, $r) = @_;
	my $eq = $s->{nulls_not_distinct} ? ' IS NOT DISTINCT FROM ' : ' = ';
	return join(' AND ',
		map { qi($_->{name}) . $eq . lit($r->{v}{ $_->{name} }, $_->{type}) } @{ $s->{keys} });
}

sub row_cols_vals
{
	my ($s, $r) = @_;
	my @c = @{ $s->{copycols} };
	return (join(', ', map { qi($_->{name}) } @c),
		join(', ', map { lit($r->{v}{ $_->{name} }, $_->{type}) } @c));
}

sub oracle_sql
{
	my ($s, $mode, $t, $batch) = @_;
	my $q = qname($s, $t);
	my $klist = join(', ', map { qi($_->{name}) } @{ $s->{keys} });
	my @set = @{ $s->{setcols} };
	my $sql = '';
	my $i = 0;
	if ($mode eq 'strict')
	{
		$sql .= "DO \$orc\$ BEGIN\n";
		for my $r (@$batch)
		{
			my ($cols, $vals) = row_cols_vals($s, $r);
			$sql .= "INSERT INTO $q ($cols) VALUES ($vals);\n";
		}
		return $sql . "END \$orc\$;\n";
	}
	for my $r (@$batch)
	{
		$i++;
		my ($cols, $vals) = row_cols_vals($s, $r);
		my $pred = key_pred($s, $r);
		my $exists = "EXISTS (SELECT 1 FROM $q WHERE $pred)";
		my $stmt;
		if ($mode eq 'update')
		{
			if (!@set)
			{
				$sql .= "INSERT INTO pg_temp.cnt SELECT '$mode', $i, $exists, 0;\n";
				next;
			}
			$stmt = "UPDATE $q SET "
			  . join(', ', map { qi($_->{name}) . ' = ' . lit($r->{v}{ $_->{name} }, $_->{type}) } @set)
			  . " WHERE $pred";
		}
		else
		{
			my $action =
			  ($mode eq 'upsert' && @set)
			  ? 'DO UPDATE SET ' . join(', ', map { qi($_->{name}) . ' = EXCLUDED.' . qi($_->{name}) } @set)
			  : 'DO NOTHING';
			$stmt = "INSERT INTO $q ($cols) VALUES ($vals) ON CONFLICT ($klist) $action";
		}
		$sql .= "WITH r AS ($stmt RETURNING 1) INSERT INTO pg_temp.cnt SELECT '$mode', $i, $exists, (SELECT count(*) FROM r);\n";
	}
	return $sql;
}

# A column list option value: SQL identifiers, so a plain name may also be written in upper
# case (it folds to lower case), others are double-quoted; commas with or without spaces.
sub ident_option
{
	my $sep = pick(',', ', ', ' , ');
	return ql(join($sep, map { /^[a-z_][a-z0-9_]*$/ && rand() < 0.3 ? uc($_) : opt_ident_list($_) } @_));
}

sub copy_options
{
	my ($s, $mode, $f) = @_;
	my @o = ("ON_CONFLICT '$mode'");
	push @o, 'CONFLICT_COLUMNS ' . ident_option(@{ $s->{conflict_opt} }) if $s->{conflict_opt};
	push @o, 'UPDATE_COLUMNS ' . ident_option(@{ $s->{update_opt} })
	  if $s->{update_opt} && ($mode eq 'upsert' || $mode eq 'update');
	push @o, "DELIMITER ';'" if $f->{delim} && $f->{delim} ne ',';
	push @o, 'HEADER true' if $f->{header};
	push @o, "ON_ERROR '$f->{on_error}'" if $f->{on_error};    # no bad rows: no effect
	@o = shuffle(@o);
	unshift @o, "FORMAT $f->{format}";
	return join(', ', @o);
}

sub column_list_sql
{
	my ($s) = @_;
	return '' if $s->{no_column_list};
	return ' (' . join(', ', map { qi($_->{name}) } @{ $s->{copycols} }) . ')';
}

sub render_data
{
	my ($s, $f, $batch) = @_;
	my @c = @{ $s->{copycols} };
	my $out = '';
	if ($f->{format} eq 'text')
	{
		for my $r (@$batch) { $out .= copy_text_line(map { $r->{v}{ $_->{name} } } @c); }
	}
	else
	{
		my $d = $f->{delim} // ',';
		$out .= copy_csv_line($d, map { "h $_->{name}" } @c) if $f->{header};
		for my $r (@$batch) { $out .= copy_csv_line($d, map { $r->{v}{ $_->{name} } } @c); }
	}
	return $out;
}

sub write_file
{
	my ($path, $data) = @_;
	open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
	print $fh $data;
	close($fh);
}

# ---------------------------------------------------------------------------------------
# One round.

my @cleanup;    # SQL that drops the previous round's objects
my %coverage;   # what the rounds exercised, reported at the end

sub run_round
{
	my ($round) = @_;
	my $s = gen_spec($round);
	my ($initial, $batch) = gen_data($s);

	# Per mode: the format and the batch (strict sometimes gets a conflict-free batch, so that
	# both its success and its failure are exercised).
	my (%fmt, %bat, %bid);
	for my $m (@MODES)
	{
		my %f = (format => pick('text', 'csv', 'binary'));
		$f{transport} = rand() < 0.7 ? 'client' : 'server';
		# ON_ERROR 'ignore' is refused for binary (a bad binary row cannot be skipped). It
		# never turns the conflict itself into a rejected row: strict still fails with 23505.
		$f{on_error} = $f{format} eq 'binary' ? 'stop' : pick('stop', 'ignore')
		  if rand() < 0.2;
		# Small merge chunks cut key groups' winners into many statements; a tiny work_mem
		# makes the sort spill.
		$f{chunk_rows} = pick(1, 2, 3, 7, 50, 10000);
		$f{work_mem} = rand() < 0.3 ? '64kB' : '4MB';
		# Both apply paths of the merge engine: direct where the table allows it, and the
		# INSERT ... ON CONFLICT / UPDATE statements.
		$f{direct_apply} = rand() < 0.5 ? 'on' : 'off';
		# 0: a parallel worker converts the input from the first row on (parallel_parse.hpp).
		$f{parse_min_rows} = pick(0, 10000);
		if ($f{format} eq 'csv')
		{
			$f{delim}  = rand() < 0.25 ? ';' : ',';
			$f{header} = rand() < 0.25;
		}
		$fmt{$m} = \%f;
		$bat{$m} = $batch;
		$bid{$m} = 1;
	}
	if (rand() < 0.4)
	{
		my %init = map { $_->{canon} => 1 } @$initial;
		my %seen;
		my @clean = grep { !$init{ $_->{canon} } && !$seen{ $_->{canon} }++ } @$batch;
		if (@clean) { $bat{strict} = \@clean; $bid{strict} = 2; }
	}

	# Sometimes text/csv input gets rows that fail input conversion. With ON_ERROR 'ignore'
	# they are rejected and the rest loads as if they were not there (the oracle applies the
	# good rows); otherwise the COPY fails and nothing is loaded (the oracle applies nothing).
	my (%in, %bad);    # mode => input rows; mode => 'ignore' | 'stop'
	my @typed = grep { $_->{type} ne 'text' } @{ $s->{copycols} };
	my $with_bad = @typed && rand() < 0.3;
	for my $m (@MODES)
	{
		$in{$m} = $bat{$m};
		next unless $with_bad && $fmt{$m}{format} ne 'binary' && rand() < 0.6;
		my @rows = @{ $bat{$m} };
		for (1 .. 1 + int(rand(3)))
		{
			my $src = pick(@{ $bat{$m} });
			my $c   = pick(@typed);
			my $b   = { canon => $src->{canon}, v => { %{ $src->{v} } }, bad => 1 };
			$b->{v}{ $c->{name} } = $b->{badval} = pick(@{ $BAD{ $c->{type} } });
			splice(@rows, int(rand(@rows + 1)), 0, $b);
		}
		$in{$m} = \@rows;
		if (rand() < 0.7)
		{
			$bad{$m} = $fmt{$m}{on_error} = 'ignore';
		}
		else
		{
			$bad{$m} = 'stop';
			$fmt{$m}{on_error} = pick(undef, 'stop');
			$bat{$m} = [];
		}
	}

	my $ddl_c = table_ddl($s, tname($s, 'upsert', 'c'));
	$coverage{"table: key $s->{constraint}" . ($s->{nulls_not_distinct} ? ' nulls not distinct' : '')}++;
	$coverage{"table: partitioned by $s->{part}{kind}"}++ if $s->{part};
	$coverage{"table: non-public schema"}++ if $s->{schema} ne 'public';
	$coverage{"table: generated column"}++ if grep { $_->{gen} } @{ $s->{cols} };
	$coverage{"table: key of " . scalar(@{ $s->{keys} }) . " columns"}++;
	$coverage{"table: key column of type $_->{type}"}++ for @{ $s->{keys} };
	$coverage{ $s->{part} ? 'table: partitioned' : 'table: not partitioned' }++;
	$coverage{"COPY: subset of the columns"}++ if @{ $s->{copycols} } < grep { !$_->{gen} } @{ $s->{cols} };
	$coverage{"COPY: CONFLICT_COLUMNS"}++ if $s->{conflict_opt};
	$coverage{"COPY: UPDATE_COLUMNS"}++ if $s->{update_opt};
	my $setup = join('', @cleanup);
	@cleanup = ();
	$setup .= 'CREATE SCHEMA IF NOT EXISTS ' . qi($s->{schema}) . ";\n";
	for my $m (@MODES)
	{
		for my $side ('c', 'o')
		{
			my $t = tname($s, $m, $side);
			$setup .= table_ddl($s, $t) . insert_values_sql($s, $t, $initial);
			push @cleanup, 'DROP TABLE IF EXISTS ' . qname($s, $t) . " CASCADE;\n";
		}
	}
	push @cleanup, 'DROP SCHEMA IF EXISTS ' . qi($s->{schema}) . " CASCADE;\n"
	  if $s->{schema} ne 'public';

	# Binary input is produced by the server: load the batch into a scratch table through csv
	# and write it out with COPY ... TO file (FORMAT binary).
	my @cc = @{ $s->{copycols} };
	my $collist = join(', ', map { qi($_->{name}) } @cc);
	my %binfile;
	if (grep { $fmt{$_}{format} eq 'binary' } @MODES)
	{
		my $scratch = qname($s, "$s->{base}_scratch");
		push @cleanup, "DROP TABLE IF EXISTS $scratch;\n";
		$setup .= "CREATE TABLE $scratch (bid int, ord int, "
		  . join(', ', map { qi($_->{name}) . " $_->{type}" } @cc) . ");\n";
		$setup .= "COPY $scratch FROM STDIN (FORMAT csv);\n";
		my %done;
		for my $m (grep { $fmt{$_}{format} eq 'binary' } @MODES)
		{
			next if $done{ $bid{$m} }++;
			my $o = 0;
			for my $r (@{ $bat{$m} })
			{
				$setup .= copy_csv_line(',', $bid{$m}, ++$o, map { $r->{v}{ $_->{name} } } @cc);
			}
		}
		$setup .= "\\.\n";
		for my $b (sort keys %done)
		{
			my $file = "$filedir/r${round}_b$b.bin";
			unlink $file;
			$binfile{$b} = $file;
			$setup .= "COPY (SELECT $collist FROM $scratch WHERE bid = $b ORDER BY ord) TO "
			  . ql($file) . " (FORMAT binary);\n";
		}
	}
	$node->safe_psql('postgres', $setup);

	# COPY ON CONFLICT into the _c tables, all modes in one psql session.
	my $copy_script = "\\set VERBOSITY verbose\n";
	my %copy_cmd;
	for my $m (@MODES)
	{
		my $f = $fmt{$m};
		my $file;
		if ($f->{format} eq 'binary') { $file = $binfile{ $bid{$m} }; }
		else
		{
			$file = "$filedir/r${round}_$m.$f->{format}";
			write_file($file, render_data($s, $f, $in{$m}));
		}
		my $target = qname($s, tname($s, $m, 'c')) . column_list_sql($s);
		my $opts   = copy_options($s, $m, $f);
		my $cmd =
		  $f->{transport} eq 'client'
		  ? "\\copy $target from " . ql($file) . " with ($opts)"
		  : "COPY $target FROM " . ql($file) . " WITH ($opts);";
		$copy_cmd{$m} = $cmd;
		# psql does not set ERROR/SQLSTATE for a failed \copy: the SQLSTATE is taken from the
		# error message between the markers on stderr.
		$copy_script .= "SET ingest.merge_chunk_rows = $f->{chunk_rows};\nSET work_mem = '$f->{work_mem}';\n"
		  . "SET ingest.direct_apply = $f->{direct_apply};\nSET client_min_messages = debug1;\n"
		  . "SET ingest.copy_parse_min_rows = $f->{parse_min_rows};\n"
		  . "\\warn BEGIN_MODE $m\n$cmd\n\\warn END_MODE $m\n\\echo RESULT $m :ROW_COUNT\n"
		  . "RESET client_min_messages;\n"
		  . "SELECT 'STATS', '$m', inserted, updated, skipped, rejected FROM ingest.last_copy_stats();\n"
		  . "SELECT 'REJ', '$m', line_number, sqlstate, encode(convert_to(raw_line, 'UTF8'), 'hex')"
		  . " FROM ingest.last_copy_rejects();\n";
	}
	my ($cret, $cout, $cerr) = $node->psql('postgres', $copy_script, on_error_stop => 0);
	my (%cres, %cstats, %crej, $cur);
	for my $line (split /\n/, $cerr)
	{
		if ($line =~ /^BEGIN_MODE (\w+)$/) { $cur = $1; $cres{$cur} = { sqlstate => '00000', stderr => '' }; next; }
		if ($line =~ /^END_MODE (\w+)$/) { $cur = undef; next; }
		next unless defined $cur;
		$cres{$cur}{stderr} .= "$line\n";
		$cres{$cur}{sqlstate} = $1
		  if $cres{$cur}{sqlstate} eq '00000' && $line =~ /ERROR:  ([0-9A-Z]{5}): /;
	}
	for my $line (split /\n/, $cout)
	{
		if ($line =~ /^RESULT (\w+) (\d+)$/)
		{
			$cres{$1}{rows} = $2;
		}
		elsif ($line =~ /^STATS\|(\w+)\|(\d+)\|(\d+)\|(\d+)\|(\d+)$/)
		{
			$cstats{$1} = [ $2, $3, $4, $5 ];
		}
		elsif ($line =~ /^REJ\|(\w+)\|(\d*)\|(\w*)\|([0-9a-f]*)$/)
		{
			push @{ $crej{$1} }, [ $2, $3, pack('H*', $4) ];
		}
	}

	# The oracle into the _o tables, one statement a row, counting what each statement did.
	my $oracle = "\\set VERBOSITY verbose\nCREATE TEMP TABLE cnt (m text, ord int, existed bool, affected bigint);\n";
	for my $m (qw(upsert ignore update))
	{
		$oracle .= oracle_sql($s, $m, tname($s, $m, 'o'), $bat{$m});
	}
	$oracle .= "SELECT 'OCNT', m, ord, existed, affected FROM pg_temp.cnt ORDER BY m, ord;\n\\echo ORACLE_OK\n";
	$oracle .= oracle_sql($s, 'strict', tname($s, 'strict', 'o'), $bat{strict});
	$oracle .= "\\echo STRICT_OK\n";
	my ($oret, $oout, $oerr) = $node->psql('postgres', $oracle);
	# The oracle failing otherwise is a bug of this test: stop here.
	die "oracle failed unexpectedly in round $round (seed $seed): $oerr"
	  unless $oout =~ /^ORACLE_OK$/m;
	my $strict_ok = $oout =~ /^STRICT_OK$/m;
	die "strict oracle failed with something else than 23505 in round $round (seed $seed): $oerr"
	  if !$strict_ok && $oerr !~ /ERROR:  23505:/;

	my %exp;    # mode => { ins, upd, skip, loose, skip_min }
	for my $m (@MODES) { $exp{$m} = { ins => 0, upd => 0, skip => 0 }; }
	for my $line (split /\n/, $oout)
	{
		next unless $line =~ /^OCNT\|(\w+)\|(\d+)\|([tf])\|(\d+)$/;
		my ($m, $existed, $aff) = ($1, $3 eq 't', $4);
		my $e = $exp{$m};
		if ($m eq 'upsert')
		{
			die "oracle: upsert of a new key did nothing (round $round)" if !$existed && !$aff;
			if    (!$existed) { $e->{ins}++ }
			elsif ($aff)      { $e->{upd}++ }
			else              { $e->{skip}++ }
		}
		elsif ($m eq 'ignore') { $aff ? $e->{ins}++ : $e->{skip}++; }
		else
		{
			$aff ? $e->{upd}++ : $e->{skip}++;
			$e->{skip_min}++ unless $existed;
		}
	}
	$exp{strict}{ins} = scalar @{ $bat{strict} } if $strict_ok;
	# Without any column to set, whether a row on an existing key counts as updated or as
	# skipped is not pinned down; only the sum is checked then.
	$exp{$_}{loose} = !@{ $s->{setcols} } for qw(upsert update);

	# Compare each pair of tables, typed and as text.
	my $cmp = '';
	for my $m (@MODES)
	{
		my $c = qname($s, tname($s, $m, 'c'));
		my $o = qname($s, tname($s, $m, 'o'));
		$cmp .= "SELECT 'CMP', '$m', (SELECT count(*) FROM $c), (SELECT count(*) FROM $o),"
		  . " (SELECT count(*) FROM (SELECT * FROM $c EXCEPT ALL SELECT * FROM $o) x),"
		  . " (SELECT count(*) FROM (SELECT * FROM $o EXCEPT ALL SELECT * FROM $c) x),"
		  . " (SELECT count(*) FROM (SELECT c::text FROM $c c EXCEPT ALL SELECT o::text FROM $o o) x),"
		  . " (SELECT count(*) FROM (SELECT o::text FROM $o o EXCEPT ALL SELECT c::text FROM $c c) x);\n";
	}
	my $cmpout = $node->safe_psql('postgres', $cmp);
	my %cmpres;
	for my $line (split /\n/, $cmpout)
	{
		my ($tag, $m, @n) = split /\|/, $line;
		$cmpres{$m} = \@n if $tag eq 'CMP';
	}

	my $fmt_desc = sub {
		my $f = shift;
		join(' ', map { "$_=" . ($f->{$_} // '') } sort keys %$f);
	};
	for my $m (@MODES)
	{
		my $name = "round $round ($round_seeds[$round-1]) $m";
		my $cr = $cres{$m} // { sqlstate => 'missing' };
		$cr->{rows} //= -1;
		my @problems;
		if ($m eq 'update' && !@{ $s->{setcols} } && $cr->{sqlstate} =~ /^42/)
		{
			# Nothing to update: a clear error is as good as a no-op (the table is compared
			# with the oracle's, which is unchanged, either way).
		}
		elsif (($bad{$m} // '') eq 'stop')
		{
			# A bad row without ON_ERROR 'ignore' fails the COPY (strict may meet a duplicate
			# key first); nothing is loaded (the oracle applied nothing).
			push @problems, "COPY with a bad row and ON_ERROR stop returned SQLSTATE $cr->{sqlstate}"
			  unless $cr->{sqlstate} =~ /^22/ || ($m eq 'strict' && $cr->{sqlstate} eq '23505');
		}
		elsif ($m eq 'strict' && !$strict_ok)
		{
			push @problems, "oracle failed with 23505 but COPY returned SQLSTATE $cr->{sqlstate}"
			  unless $cr->{sqlstate} eq '23505';
		}
		else
		{
			push @problems, "COPY failed: SQLSTATE $cr->{sqlstate}" unless $cr->{sqlstate} eq '00000';
		}
		my ($nc, $no, $c_o, $o_c, $tc_o, $to_c) = @{ $cmpres{$m} };
		push @problems, "row count $nc, oracle $no" if $nc != $no;
		push @problems, "$c_o rows only in COPY table, $o_c only in oracle table (typed comparison)"
		  if $c_o || $o_c;
		push @problems, "$tc_o rows only in COPY table, $to_c only in oracle table (as text)"
		  if $tc_o || $to_c;
		my $ok = ok(!@problems, "$name: table equals the oracle's");
		$coverage{"$m, format $fmt{$m}{format}"}++;
		$coverage{"$m, ingest.direct_apply $fmt{$m}{direct_apply}"}++;
		# The merge's DEBUG1 line says which path it took (the direct one may hand over).
		$coverage{"$m, applied directly into a partitioned table"}++
		  if $s->{part} && $cr->{stderr} =~ /pg_ingest merge into .*\(direct/;
		$coverage{"$m, COPY failed $cr->{sqlstate}"}++ if $cr->{sqlstate} ne '00000';
		$coverage{"$m, input converted by a parallel worker"}++
		  if $cr->{stderr} =~ /[1-9]\d* rows converted by workers/;
		$coverage{"$m, rows failing conversion, ON_ERROR $bad{$m}"}++ if $bad{$m};


		my $stats_ok = 1;
		my @stat_problems;
		if ($cr->{sqlstate} eq '00000' && ($m ne 'strict' || $strict_ok) && ($bad{$m} // '') ne 'stop')
		{
			my $got = $cstats{$m};
			my $e   = $exp{$m};
			if (!$got) { push @stat_problems, 'no ingest.last_copy_stats() row'; }
			else
			{
				my ($gi, $gu, $gs, $gr) = @$got;
				my $n = scalar @{ $bat{$m} };
				if ($e->{loose})
				{
					push @stat_problems, "inserted $gi, expected $e->{ins}" if $gi != $e->{ins};
					push @stat_problems, "updated+skipped " . ($gu + $gs) . ", expected " . ($n - $e->{ins})
					  if $gu + $gs != $n - $e->{ins};
					push @stat_problems, "skipped $gs, expected at least $e->{skip_min}"
					  if $m eq 'update' && $gs < ($e->{skip_min} // 0);
				}
				else
				{
					push @stat_problems, "inserted/updated/skipped $gi/$gu/$gs, expected $e->{ins}/$e->{upd}/$e->{skip}"
					  if $gi != $e->{ins} || $gu != $e->{upd} || $gs != $e->{skip};
				}
				# Rejected rows: the bad ones, with SQLSTATE 22xxx, their raw line holding the bad
				# value, and their line number as COPY counts lines: the header is line 1, and
				# (csv) a line break inside a quoted value may count as a line too, so the
				# number lies between the record's ordinal and that plus such breaks so far.
				my $hdr = $fmt{$m}{header} ? 1 : 0;
				my (@want, $breaks);
				for my $i (0 .. $#{ $in{$m} })
				{
					my $r = $in{$m}[$i];
					$breaks += () = join('', map { $_ // '' } values %{ $r->{v} }) =~ /[\r\n]/g
					  if $fmt{$m}{format} eq 'csv';
					push @want, [ $i + 1 + $hdr, $i + 1 + $hdr + ($breaks // 0), $r->{badval} ]
					  if $r->{bad};
				}
				push @stat_problems, "rejected $gr, expected " . scalar(@want) if $gr != @want;
				my @got_rej = sort { $a->[0] <=> $b->[0] } @{ $crej{$m} // [] };
				my $rej_ok = @got_rej == @want;
				for my $j (0 .. $#want)
				{
					last unless $rej_ok;
					my ($lo, $hi, $val) = @{ $want[$j] };
					my ($line, $state, $raw) = @{ $got_rej[$j] };
					$rej_ok = $line >= $lo && $line <= $hi && $state =~ /^22/ && index($raw, $val) >= 0;
				}
				push @stat_problems,
				  "last_copy_rejects() gave (line, sqlstate): "
				  . join(' ', map { "($_->[0], $_->[1])" } @got_rej)
				  . "; expected lines "
				  . join(' ', map { $_->[0] == $_->[1] ? $_->[0] : "$_->[0]..$_->[1]" } @want)
				  . ' with SQLSTATE 22xxx, raw lines holding '
				  . join(' ', map { "'$_->[2]'" } @want)
				  unless $rej_ok;
				push @stat_problems, "command tag COPY $cr->{rows}, but inserted+updated = " . ($gi + $gu)
				  if $cr->{rows} != $gi + $gu;
			}
			$stats_ok = ok(!@stat_problems, "$name: last_copy_stats() and command tag match the oracle");
		}

		next if $ok && $stats_ok;
		diag("FAILED $name: " . join('; ', @problems, @stat_problems));
		diag("replay: PG_INGEST_SEED=$seed PG_INGEST_ROUNDS=$rounds PG_INGEST_ONLY_ROUND=$round");
		diag("table DDL (all copies alike):\n$ddl_c");
		diag("initial rows:\n" . insert_values_sql($s, tname($s, $m, 'c'), $initial));
		diag("COPY command (format " . $fmt_desc->($fmt{$m}) . "):\n$copy_cmd{$m}");
		diag("COPY stats (inserted/updated/skipped/rejected): "
			  . ($cr->{sqlstate} eq '00000' ? join('/', @{ $cstats{$m} // [] }) : '(COPY failed)')
			  . "; oracle: $exp{$m}{ins}/$exp{$m}{upd}/$exp{$m}{skip}/0"
			  . ($exp{$m}{loose} ? ' (updated vs skipped not pinned)' : ''));
		diag("COPY stderr:\n$cr->{stderr}") if ($cr->{stderr} // '') ne '';
		my $i = 0;
		diag("COPY input rows (as csv; columns: "
			  . join(', ', map { $_->{name} } @cc) . "):\n"
			  . join('', map { sprintf('%4d%s ', ++$i, $_->{bad} ? ' BAD' : '') . render_data($s, { format => 'csv' }, [$_]) } @{ $in{$m} }));
		my $c = qname($s, tname($s, $m, 'c'));
		my $o = qname($s, tname($s, $m, 'o'));
		diag("differing rows:\n"
			  . $node->safe_psql('postgres',
				"(SELECT 'copy only  ', c::text FROM $c c EXCEPT ALL SELECT 'copy only  ', o::text FROM $o o) UNION ALL "
				  . "(SELECT 'oracle only', o::text FROM $o o EXCEPT ALL SELECT 'oracle only', c::text FROM $c c) ORDER BY 1, 2 LIMIT 60"));
	}
}

my $t0 = time();
my $one = defined $only && $only ne '';
die "PG_INGEST_ONLY_ROUND=$only is not a round of 1..$rounds\n"
  if $one && ($only !~ /^\d+$/ || $only < 1 || $only > $rounds);
for my $round (1 .. $rounds)
{
	next if $one && $round != $only;
	srand($round_seeds[ $round - 1 ]);
	run_round($round);
}
note("$rounds rounds in " . (time() - $t0) . " s; cases covered:\n"
	  . join("\n", map { sprintf('%6d  %s', $coverage{$_}, $_) } sort keys %coverage));

# What the issue asks the comparison to cover, each hit at least once by a full run (200
# rounds hit each many times; a short replay of a few rounds is not held to it).
if (!$one && $rounds >= 100)
{
	my @must = ((map { "table: key column of type $_" } sort keys %KEYGEN),
		'table: partitioned', 'table: not partitioned', 'table: key of 2 columns');
	for my $m (@MODES)
	{
		push @must, map { "$m, format $_" } qw(text csv binary);
	}
	push @must, map { "$_, applied directly into a partitioned table" } qw(upsert ignore);
	push @must, map { "$_, input converted by a parallel worker" } @MODES;
	my @missed = grep { !$coverage{$_} } @must;
	ok(!@missed, 'every key type, table kind, mode and format was compared')
	  or diag('never covered: ' . join('; ', @missed));
}

server_log_is_clean($node);

$node->stop;
done_testing();
