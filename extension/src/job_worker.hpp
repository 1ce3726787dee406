// Async load workers: the launcher (one per cluster, connected to no database) starts a
// worker in a database when a job there is submitted or retried (woken at commit), at start
// (every database, to recover jobs a crash left in LOADING), and every ingest.launcher_naptime
// (retention). A worker recovers orphaned jobs, applies retention, then claims and applies
// READY jobs until none is left, and exits.
#pragma once

#include "boundary.hpp"

extern "C" {
#include "access/xact.h"
#include "utils/snapmgr.h"
}

#include <exception>
#include <new>
#include <optional>
#include <string>

namespace pg_ingest::jobs {

void register_launcher();  // from _PG_init

// Applies one claimed job (job_apply.cpp): FINISH with its counts in one transaction, or FAIL
// / CANCEL with the error in another.
void run_job(int slot, int64_t id);

struct Failure {
    int sqlerrcode;
    std::string message;
};

// The failure to record; if even that cannot be allocated, "out of memory" (short enough not
// to allocate), so that the caller still rolls back and records something.
inline Failure failure_of(int sqlerrcode, const char* message, const char* detail) noexcept {
    try {
        Failure f{sqlerrcode, message};
        if (detail)
            f.message += std::string(" (") + detail + ")";
        return f;
    } catch (...) {
        return Failure{ERRCODE_OUT_OF_MEMORY, "out of memory"};
    }
}

// A unit of work in its own transaction (worker processes only). On an error, in the work or
// in its COMMIT (a deferred constraint, a serialization failure), the transaction is rolled
// back and the error returned (code and text copied out first: the rollback frees the error
// data); success commits.
template <typename F>
std::optional<Failure> try_transaction(F&& f) {
    pg_call([] {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        PushActiveSnapshot(GetTransactionSnapshot());
    });
    std::optional<Failure> failure;
    try {
        f();
        pg_call([] {
            PopActiveSnapshot();
            CommitTransactionCommand();
        });
        return std::nullopt;
    } catch (const PgError& e) {
        failure = failure_of(e.sqlerrcode(), e.what(), e.data()->detail);
    } catch (const ServerError& e) {
        failure = failure_of(e.sqlerrcode(), e.what(), nullptr);
    } catch (const std::bad_alloc&) {
        failure = Failure{ERRCODE_OUT_OF_MEMORY, "out of memory"};
    } catch (const std::exception& e) {
        failure = failure_of(ERRCODE_INTERNAL_ERROR, e.what(), nullptr);
    }
    pg_call([] { AbortCurrentTransaction(); });
    return failure;
}

}  // namespace pg_ingest::jobs

extern "C" {
PGDLLEXPORT void pg_ingest_launcher_main(Datum arg);
PGDLLEXPORT void pg_ingest_worker_main(Datum arg);
}
