// Test-only functions for the error boundary and the async load worker slots, in their own
// library (pg_ingest_test, extension/test/Makefile) that `make install` leaves out. The tests
// that use them (regress/sql/01_boundary.sql, regress/t/001_boundary.pl and
// 019_launcher_slots.pl) declare them with CREATE FUNCTION ... AS 'pg_ingest_test',
// 'pgi_test_...'. They call into the preloaded pg_ingest library, so they test its boundary.
#include "boundary.hpp"
#include "guc.hpp"
#include "job_shmem.hpp"

extern "C" {
#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

PG_MODULE_MAGIC;
}

#include <atomic>
#include <optional>
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
    if (kind == "bad_alloc_in_pg_call")  // a C++ exception inside pg_call's PG_TRY
        pg_ingest::pg_call([] { throw std::bad_alloc(); });
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

namespace {
bool fail_subxact_commit = false;

extern "C" {
// What another extension's pre-commit step (postgres_fdw's remote RELEASE SAVEPOINT) may do.
static void failing_subxact_callback(SubXactEvent event, SubTransactionId, SubTransactionId,
                                     void*) {
    if (event == SUBXACT_EVENT_PRE_COMMIT_SUB && fail_subxact_commit) {
        fail_subxact_commit = false;
        ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
                        errmsg("test failure at subtransaction commit")));
    }
}
}
}  // namespace

// As recover(), but the subtransaction's commit fails: its work must be rolled back.
PGI_FUNCTION(pgi_test_recover_failed_commit) {
    static bool registered = false;
    if (!registered) {
        pg_ingest::pg_call([] { RegisterSubXactCallback(failing_subxact_callback, nullptr); });
        registered = true;
    }
    const std::string sql = arg_string(fcinfo, 0);
    std::string outcome = "ok";
    try {
        pg_ingest::with_subtransaction([&] {
            run_sql(sql);
            fail_subxact_commit = true;
        });
    } catch (const pg_ingest::PgError& e) {
        outcome = std::string(unpack_sql_state(e.sqlerrcode())) + ": " + e.what();
    }
    fail_subxact_commit = false;
    return PointerGetDatum(pg_ingest::string_to_text(outcome));
}

// Async load worker slots (regress/t/019_launcher_slots.pl).

// Reserves a worker slot for the current database the way the launcher does, without starting
// a worker: what a launcher that dies right after reserving leaves behind. Returns
// "slot:generation", or NULL when max_workers slots are in use.
PGI_FUNCTION(pgi_test_reserve_worker_slot) {
    const std::optional<pg_ingest::jobs::SlotTicket> t =
        pg_ingest::jobs::reserve_slot(MyDatabaseId);
    if (!t)
        PG_RETURN_NULL();
    const std::string s = std::to_string(t->slot) + ":" + std::to_string(t->generation);
    return PointerGetDatum(pg_ingest::string_to_text(s));
}

// The worker slots in use (reserved or attached), all databases.
PGI_FUNCTION(pgi_test_worker_slots_in_use) {
    PG_RETURN_INT32(pg_ingest::jobs::running_workers());
}

// Starts a worker for a reservation made earlier (a worker that a dead launcher started and
// that attaches late) and waits until it has exited. Returns false when it could not be
// started.
PGI_FUNCTION(pgi_test_start_worker) {
    const int32 slot = pg_ingest::pg_call([&] { return PG_GETARG_INT32(0); });
    const int64 generation = pg_ingest::pg_call([&] { return PG_GETARG_INT64(1); });
    if (slot < 0 || slot >= pg_ingest::guc::max_worker_slots)
        pg_ingest::raise(ERRCODE_INVALID_PARAMETER_VALUE, "slot out of range");
    BackgroundWorkerHandle* h =
        pg_ingest::jobs::start_worker({slot, static_cast<uint64_t>(generation)});
    if (!h)
        PG_RETURN_BOOL(false);
    pg_ingest::pg_call([&] { (void)WaitForBackgroundWorkerShutdown(h); });
    PG_RETURN_BOOL(true);
}
