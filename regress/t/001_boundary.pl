# The error boundary leaves no leaked resources behind (no WARNING in the server log), the
# backend survives every error path, and without preloading CREATE EXTENSION fails clearly.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('boundary');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_ingest'");
$node->start;

$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_ingest;
    CREATE FUNCTION throw_cpp(kind text) RETURNS void LANGUAGE c STRICT
        AS 'pg_ingest_test', 'pgi_test_throw';
    CREATE FUNCTION run_sql(sql text) RETURNS void LANGUAGE c STRICT
        AS 'pg_ingest_test', 'pgi_test_run_sql';
    CREATE FUNCTION recover(sql text) RETURNS text LANGUAGE c STRICT
        AS 'pg_ingest_test', 'pgi_test_recover';
    CREATE TABLE t (k int PRIMARY KEY);
});

my $log_offset = -s $node->logfile;

# One session walks every error path, then must still answer.
my ($ret, $out, $err) = $node->psql('postgres', q{
    SELECT throw_cpp('server_error');
    SELECT throw_cpp('bad_alloc');
    SELECT throw_cpp('runtime_error');
    SELECT throw_cpp('unknown');
    SELECT throw_cpp('pg_error');
    SELECT run_sql('SELECT * FROM t WHERE k = 1/0');
    BEGIN;
    INSERT INTO t VALUES (1);
    SELECT recover('INSERT INTO t VALUES (1)');
    COMMIT;
    SELECT 'alive:' || count(*) FROM t;
}, on_error_stop => 0);
like($out, qr/alive:1/, 'session answers after every error path, recovered transaction committed');
like($err, qr/ERROR:  test server error/, 'server error reached the client');
like($err, qr/ERROR:  out of memory/, 'bad_alloc reached the client as out of memory');
like($err, qr/ERROR:  division by zero/, 'PostgreSQL error from SQL inside C++ reached the client');

my $log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/WARNING/, 'no WARNING (leaked resources) in the server log');
unlike($log, qr/leak/i, 'no leak reports in the server log');
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no backend crashed');

# Without preloading, CREATE EXTENSION fails with a hint naming the setting.
my $plain = PostgreSQL::Test::Cluster->new('no_preload');
$plain->init;
$plain->start;
($ret, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION pg_ingest');
isnt($ret, 0, 'CREATE EXTENSION fails without preloading');
like($err, qr/must be loaded via shared_preload_libraries/, 'error says what is wrong');
like($err, qr/HINT:.*shared_preload_libraries/, 'hint names the setting');

$node->stop;
$plain->stop;
done_testing();
