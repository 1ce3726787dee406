// Test-only functions for the error boundary. They are not part of the user API: the
// extension script does not create them; regress/sql/boundary.sql declares them in a
// scratch schema with CREATE FUNCTION ... AS 'pg_ingest', 'pgi_test_...'.
#include "boundary.hpp"

extern "C" {
#include "executor/spi.h"
#include "utils/builtins.h"
}

#include <atomic>
#include <string>

namespace {

std::atomic<long> destroyed{0};

// A live C++ object whose destructor must run when an error passes through its frame.
struct Sentinel {
    std::string payload = std::string(64, 'x');  // heap-owning on purpose
    ~Sentinel() { ++destroyed; }
};

void run_sql(const std::string& sql) {
    pg_ingest::pg_call([&] {
        SPI_connect();
        SPI_execute(sql.c_str(), false, 0);
        SPI_finish();
    });
}

std::string arg_string(FunctionCallInfo fcinfo, int n) {
    text* t = pg_ingest::pg_call([&] { return PG_GETARG_TEXT_PP(n); });
    return pg_ingest::text_to_string(t);
}

}  // namespace

PGI_FUNCTION(pgi_test_throw) {
    const std::string kind = arg_string(fcinfo, 0);
    Sentinel live;
    if (kind == "server_error")
        pg_ingest::raise(ERRCODE_INVALID_PARAMETER_VALUE, "test server error", "test detail",
                         "test hint");
    if (kind == "bad_alloc")
        throw std::bad_alloc();
    if (kind == "runtime_error")
        throw std::runtime_error("test runtime error");
    if (kind == "unknown")
        throw 42;
    if (kind == "pg_error")
        pg_ingest::pg_call([] {
            ereport(ERROR, (errcode(ERRCODE_DIVISION_BY_ZERO), errmsg("test postgres error"),
                            errdetail("test postgres detail"), errhint("test postgres hint")));
        });
    if (kind != "none")
        pg_ingest::raise(ERRCODE_INVALID_PARAMETER_VALUE,
                         pg_ingest::format("unknown test kind \"%s\"", kind.c_str()));
    PG_RETURN_VOID();
}

PGI_FUNCTION(pgi_test_destroyed) {
    PG_RETURN_INT64(destroyed.load());
}

// Runs SQL inside C++ code with live objects; its error must come back unchanged.
PGI_FUNCTION(pgi_test_run_sql) {
    Sentinel live;
    run_sql(arg_string(fcinfo, 0));
    PG_RETURN_VOID();
}

// Runs SQL in a subtransaction and recovers from its error: returns "SQLSTATE: message", or
// "ok". The caller's transaction goes on.
PGI_FUNCTION(pgi_test_recover) {
    const std::string sql = arg_string(fcinfo, 0);
    std::string outcome = "ok";
    try {
        pg_ingest::with_subtransaction([&] {
            Sentinel live;
            run_sql(sql);
        });
    } catch (const pg_ingest::PgError& e) {
        outcome = std::string(unpack_sql_state(e.sqlerrcode())) + ": " + e.what();
    }
    return PointerGetDatum(pg_ingest::string_to_text(outcome));
}
