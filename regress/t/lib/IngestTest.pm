# Shared helpers for the COPY ON CONFLICT TAP tests (010_differential.pl, 011_concurrency.pl):
# a node with pg_ingest preloaded, the random seed, identifier/literal quoting and COPY
# text/csv field encoding.
package IngestTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT_OK = qw(server_log_is_clean ingest_node feature_available test_seed qi ql lit
  copy_text_line copy_csv_line csv_field opt_ident_list shuffle pick add_stall_trigger
  wait_stalled);

# A started node with pg_ingest preloaded and the extension created. UTF8 so that the
# unicode test values are stored as such; C.UTF-8 collation so that text order is bytewise.
sub ingest_node
{
	my ($name, @conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(extra => [ '-E', 'UTF8', '--locale=C.UTF-8' ]);
	$node->append_conf('postgresql.conf',
		join("\n", "shared_preload_libraries = 'pg_ingest'", @conf));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_ingest');
	return $node;
}

# True when the installed pg_ingest has COPY ON CONFLICT (ingest.last_copy_stats()).
sub feature_available
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT to_regprocedure('ingest.last_copy_stats()') IS NOT NULL") eq 't';
}

# The seed from PG_INGEST_SEED, else time based; always reported so a failure can be replayed.
sub test_seed
{
	my $seed = $ENV{PG_INGEST_SEED};
	$seed = (time() ^ ($$ << 10)) & 0x7fffffff
	  unless defined $seed && $seed ne '';
	diag("PG_INGEST_SEED=$seed (set it in the environment to replay this run)");
	return $seed;
}

# SQL identifier, always quoted.
sub qi
{
	my ($s) = @_;
	$s =~ s/"/""/g;
	return qq{"$s"};
}

# SQL string literal (standard_conforming_strings is on) or NULL.
sub ql
{
	my ($s) = @_;
	return 'NULL' unless defined $s;
	$s =~ s/'/''/g;
	return "'$s'";
}

# Typed literal.
sub lit
{
	my ($v, $type) = @_;
	return defined $v ? ql($v) . "::$type" : "NULL::$type";
}

# One line of COPY text format (tab delimited, \N for NULL).
sub copy_text_line
{
	my @f = map {
		my $v = $_;
		if (!defined $v) { '\N' }
		else
		{
			$v =~ s/\\/\\\\/g;
			$v =~ s/\t/\\t/g;
			$v =~ s/\n/\\n/g;
			$v =~ s/\r/\\r/g;
			$v;
		}
	} @_;
	return join("\t", @f) . "\n";
}

# One CSV field: NULL is the unquoted empty string, so the empty string is always quoted.
sub csv_field
{
	my ($v, $delim) = @_;
	$delim //= ',';
	return '' unless defined $v;
	if ($v eq '' || index($v, $delim) >= 0 || $v =~ /["\r\n]/ || $v =~ /^\\\.$/)
	{
		$v =~ s/"/""/g;
		return qq{"$v"};
	}
	return $v;
}

sub copy_csv_line
{
	my ($delim, @vals) = @_;
	return join($delim, map { csv_field($_, $delim) } @vals) . "\n";
}

# A column list as a string option value (CONFLICT_COLUMNS / UPDATE_COLUMNS): comma
# separated identifiers; a name that is not a plain lower-case identifier is double-quoted,
# like in search_path or any other PostgreSQL identifier list.
sub opt_ident_list
{
	return join(',',
		map { /^[a-z_][a-z0-9_]*$/ ? $_ : qi($_) } @_);
}

sub shuffle
{
	my @a = @_;
	for (my $i = $#a; $i > 0; $i--)
	{
		my $j = int(rand($i + 1));
		@a[ $i, $j ] = @a[ $j, $i ];
	}
	return @a;
}

sub pick { return $_[ int(rand(@_)) ]; }

# The server log shows no crashed backend and no WARNING (e.g. leaked resources).
sub server_log_is_clean
{
	my ($node) = @_;
	my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
	Test::More::unlike($log, qr/terminated by signal|server process .* was terminated/,
		'no backend crashed');
	Test::More::unlike($log, qr/WARNING/,
		'no WARNING (e.g. leaked resources) in the server log')
	  or Test::More::diag(join("\n", grep { /WARNING/ } split /\n/, $log));
}

# A BEFORE INSERT trigger on $table that, on the row whose $column is $value, waits until the
# advisory lock $key is free. While another session holds that lock (pg_advisory_lock($key)),
# an async load job that reaches the row stops there mid-apply, with the rows it applied before
# it already written in its transaction. On a partitioned table the trigger is cloned to every
# partition.
sub add_stall_trigger
{
	my ($node, $table, $column, $value, $key) = @_;
	$node->safe_psql('postgres', qq{
		CREATE OR REPLACE FUNCTION public.pgi_stall() RETURNS trigger LANGUAGE plpgsql AS \$\$
		BEGIN
			IF pg_catalog.to_jsonb(NEW) ->> TG_ARGV[0] = TG_ARGV[1] THEN
				PERFORM pg_catalog.pg_advisory_lock(TG_ARGV[2]::bigint);
				PERFORM pg_catalog.pg_advisory_unlock(TG_ARGV[2]::bigint);
			END IF;
			RETURN NEW;
		END \$\$;
		CREATE TRIGGER pgi_stall BEFORE INSERT ON $table FOR EACH ROW
			EXECUTE FUNCTION public.pgi_stall('$column', '$value', '$key');
	});
}

# Polls until the worker applying job $id waits for an advisory lock (a stall trigger fired);
# true if it did in time. $extra: further SQL conditions on the job (alias j), e.g.
# "j.rows_applied >= 2000".
sub wait_stalled
{
	my ($node, $id, $extra) = @_;
	my $and = defined $extra ? " AND $extra" : '';
	return $node->poll_query_until('postgres', qq{
		SELECT EXISTS (SELECT FROM ingest.get_async_load_job($id) j, pg_catalog.pg_locks l
		                WHERE j.state = 'LOADING' AND l.pid = j.worker_pid
		                  AND l.locktype = 'advisory' AND NOT l.granted$and)});
}

1;
