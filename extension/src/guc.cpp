#include "guc.hpp"

#include "boundary.hpp"

extern "C" {
#include "utils/guc.h"
}

#include <climits>

namespace pg_ingest::guc {

int merge_chunk_rows = 10000;
bool direct_apply = true;
int max_workers = 2;
int job_retention = 7 * 24 * 3600;
int launcher_naptime = 10;
int job_timeout = 0;
int copy_rejects_kept = 100000;
int stage_chunk = 0;
int copy_parse_workers = 1;
int copy_parse_min_rows = 10000;

void init() {
    pg_call([] {
        DefineCustomIntVariable(
            "ingest.merge_chunk_rows",
            "Rows applied per merge chunk (one statement, or one "
            "subtransaction of the direct path).",
            "With ON_ERROR 'ignore' this is also the unit that is retried row by row when it "
            "holds a bad row; smaller chunks isolate bad rows faster, larger ones cost less per "
            "row. The direct path uses larger chunks when the input has more than 48 chunks' "
            "worth of rows.",
            &merge_chunk_rows, 10000, 1, 10000000, PGC_USERSET, 0, nullptr, nullptr, nullptr);
        DefineCustomBoolVariable(
            "ingest.direct_apply",
            "Lets merges apply rows without an SQL statement per chunk where that is equivalent.",
            "Used for upsert, update and ignore into plain tables without triggers, rules, "
            "row-level security or generated columns, under READ COMMITTED and ON_ERROR 'stop'; "
            "other merges run INSERT ... ON CONFLICT or UPDATE statements. Off: always the "
            "statements.",
            &direct_apply, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
        DefineCustomIntVariable(
            "ingest.max_workers", "Async load workers that may run at once, in all databases.",
            "Each worker is a background worker process, so max_worker_processes must leave room "
            "for them and the launcher. Takes effect on reload.",
            &max_workers, 2, 0, max_worker_slots, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
        DefineCustomIntVariable(
            "ingest.job_retention", "How long ended async load jobs and their rejects are kept.",
            "Jobs in FINISH, FAIL or CANCEL whose finished_at is older are removed by the "
            "launcher's periodic pass, with their staging tables.",
            &job_retention, 7 * 24 * 3600, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr,
            nullptr);
        DefineCustomIntVariable(
            "ingest.launcher_naptime", "Time between the async load launcher's periodic passes.",
            "Submitted jobs wake the launcher at once; the periodic pass "
            "applies retention and catches anything missed.",
            &launcher_naptime, 10, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
        DefineCustomIntVariable(
            "ingest.job_timeout", "Longest time a worker may spend applying one async load job.",
            "A job still applying after it is cancelled and fails with 57014 (its work rolled "
            "back; ingest.retry_async_load runs it again); one whose own code catches the "
            "cancel is ended at twice the timeout. 0: no limit. Takes effect on reload, for "
            "jobs that start after it.",
            &job_timeout, 0, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
        DefineCustomIntVariable(
            "ingest.copy_rejects_kept",
            "Rows rejected by a COPY ON CONFLICT that ingest.last_copy_rejects() keeps.",
            "Those of the first lines are kept, in the session's memory until its next COPY ON "
            "CONFLICT. Rows past the limit are still counted by ingest.last_copy_stats(), and a "
            "NOTICE says how many "
            "were not kept.",
            &copy_rejects_kept, 100000, 0, INT_MAX, PGC_USERSET, 0, nullptr, nullptr, nullptr);
        DefineCustomIntVariable(
            "ingest.stage_chunk",
            "Chunk number given to rows staged into an ordered async load staging table.",
            "Set it (SET LOCAL, or set_config(..., true)) before each chunk's COPY: an ordered "
            "job applies its rows in chunk order, then in the order each session staged them, "
            "whichever connection staged which chunk.",
            &stage_chunk, 0, 0, INT_MAX, PGC_USERSET, GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);
        DefineCustomIntVariable(
            "ingest.copy_parse_workers",
            "Parallel workers that convert the input of a COPY ... ON_CONFLICT.",
            "The session reads and splits the lines; the workers run the columns' input "
            "functions. Used for text and csv input under ON_ERROR 'stop' when every loaded "
            "column has a base or enum type (or an array of one) with a parallel-safe input "
            "function. Workers come from max_parallel_workers; when none is free the session "
            "converts everything itself. With more than one, an input with several bad lines "
            "may fail on a later one than the first. 0: never.",
            &copy_parse_workers, 1, 0, 32, PGC_USERSET, 0, nullptr, nullptr, nullptr);
        DefineCustomIntVariable(
            "ingest.copy_parse_min_rows",
            "Rows a COPY ... ON_CONFLICT reads before it starts its parse workers.",
            "Smaller COPYs convert their input in the session, without the cost of starting a "
            "worker.",
            &copy_parse_min_rows, 10000, 0, INT_MAX, PGC_USERSET, 0, nullptr, nullptr, nullptr);
        // Nobody else may define ingest.* settings; typos in ingest.* are reported.
        MarkGUCPrefixReserved("ingest");
    });
}

}  // namespace pg_ingest::guc
