// Applying one async load job. The apply runs as the job's owner (privileges, row-level
// security and triggers as if the owner ran it) in one transaction that also records FINISH
// and the counts, so a job is FINISH if and only if its rows are in the target.
#include "conflict_target.hpp"
#include "cursor_source.hpp"
#include "guc.hpp"
#include "job_catalog.hpp"
#include "job_shmem.hpp"
#include "job_worker.hpp"
#include "merge.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/partition.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timeout.h"
}

#include <algorithm>
#include <csignal>

namespace pg_ingest::jobs {

namespace {

std::string qualified(Oid rel) {
    return pg_call([&] {
        return quote_qualified_identifier(get_namespace_name(get_rel_namespace(rel)),
                                          get_rel_name(rel));
    });
}

// The loaded columns of a staging table (source_columns without the order columns), and
// whether it is ordered: its row column is an identity (job_catalog.hpp).
std::vector<std::string> staged_columns(Oid staging, bool& ordered) {
    std::vector<std::string> names = source_columns(staging);
    ordered = pg_call([&] {
        HeapTuple tup = SearchSysCacheAttName(staging, k_order_row);
        if (!HeapTupleIsValid(tup))
            return false;
        const bool identity = reinterpret_cast<Form_pg_attribute>(GETSTRUCT(tup))->attidentity;
        ReleaseSysCache(tup);
        return identity;
    });
    if (ordered)
        names.erase(std::remove_if(names.begin(), names.end(),
                                   [](const std::string& n) {
                                       return n == k_order_chunk || n == k_order_row;
                                   }),
                    names.end());
    return names;
}

// The apply itself, as the owner. Throws on any error (the caller rolls back).
void apply(const Job& job, int slot, MergeCounts& counts, const RejectSink& on_reject) {
    if (!pg_call([&] { return SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(job.owner)); }))
        raise(ERRCODE_UNDEFINED_OBJECT, "the role that owns this job no longer exists");
    if (!OidIsValid(job.staging) ||
        !pg_call([&] { return SearchSysCacheExists1(RELOID, ObjectIdGetDatum(job.staging)); }))
        raise(ERRCODE_UNDEFINED_TABLE, "the staging table of this job no longer exists");
    if (!pg_call([&] { return SearchSysCacheExists1(RELOID, ObjectIdGetDatum(job.target)); }))
        raise(ERRCODE_UNDEFINED_TABLE, "the target table of this job no longer exists");

    UserScope as_owner(job.owner, SECURITY_RESTRICTED_OPERATION);
    // The owner's code (triggers, defaults, checks) runs with the worker's reset search_path
    // (the database's default; a role setting of the owner's is not applied), and whatever it
    // sets is discarded after.
    const char* reset_path = pg_call([] { return GetConfigOptionResetString("search_path"); });
    const std::string owner_path = reset_path ? reset_path : "";
    GucScope owner_settings(owner_path.c_str());
    // The owner's rights now, before any lock (a role's rights may have been revoked since the
    // job began; resolve_merge() checks the rest once locked).
    if (job.overwrite == "partition")
        check_schema_usage(job.target);  // the partition's rights below, once it is known
    else
        check_access_before_lock(job.target, ACL_INSERT);
    Relation target = pg_call([&] { return table_open(job.target, RowExclusiveLock); });
    Oid dest_oid = job.target;
    if (job.overwrite == "partition") {
        const bool still = pg_call([&] {
            return SearchSysCacheExists1(RELOID, ObjectIdGetDatum(job.overwrite_partition)) &&
                   get_rel_relispartition(job.overwrite_partition) &&
                   list_member_oid(get_partition_ancestors(job.overwrite_partition), job.target);
        });
        if (!still)
            raise(ERRCODE_WRONG_OBJECT_TYPE,
                  "the overwrite partition of this job is no longer a partition of its target");
        dest_oid = job.overwrite_partition;
    }
    if (dest_oid != job.target)
        check_access_before_lock(dest_oid, ACL_INSERT);
    Relation dest = dest_oid == job.target
                        ? target
                        : pg_call([&] { return table_open(dest_oid, RowExclusiveLock); });
    const std::string dest_name = qualified(dest_oid);
    const std::string staging_name = qualified(job.staging);

    spi::Connection c;
    // Deferred constraints are checked at the end of each statement: the apply is a
    // security-restricted operation, which may not leave trigger events for COMMIT (PostgreSQL
    // refuses with "cannot fire deferred trigger within security-restricted operation").
    spi::exec("SET CONSTRAINTS ALL IMMEDIATE");
    if (job.overwrite != "none") {
        // Readers keep seeing the old rows until this transaction commits (MVCC), then the new
        // ones; DELETE takes only ROW EXCLUSIVE, so they are never blocked.
        const bool only = dest->rd_rel->relkind == RELKIND_RELATION;
        spi::exec("DELETE FROM " + std::string(only ? "ONLY " : "") + dest_name);
    }

    bool ordered = false;
    const std::vector<std::string> names = staged_columns(job.staging, ordered);
    MergeSpec spec;
    spec.target = dest;
    spec.mode = parse_conflict_mode(job.conflict_mode, true);
    spec.columns = match_columns(names, dest);
    spec.conflict_names = job.conflict_columns;
    spec.update_names = job.update_columns;
    spec.ignore_errors = job.exception_mode == "ignore";
    spec.what = format("async load job %lld", (long long)job.id);
    spec.position = "row";  // the staged row's number, as async_load_reject.row_number has it
    spec.on_progress = [slot](const MergeCounts& c) { set_slot_progress(slot, c.written()); };

    if (spec.mode == ConflictMode::none && !spec.ignore_errors) {
        // A strict append is one INSERT ... SELECT: the fastest path, and all or nothing.
        validate_merge(spec);
        std::string cols;
        for (const std::string& n : names)
            cols += (cols.empty() ? "" : ", ") +
                    std::string(pg_call([&] { return quote_identifier(n.c_str()); }));
        // A loaded GENERATED ALWAYS identity column takes the staged value, as in the other
        // modes (whose inserts override it too).
        bool identity_always = false;
        for (AttrNumber a : spec.columns)
            if (TupleDescAttr(RelationGetDescr(dest), a - 1)->attidentity ==
                ATTRIBUTE_IDENTITY_ALWAYS)
                identity_always = true;
        counts.inserted =
            static_cast<int64_t>(spi::exec("INSERT INTO " + dest_name + " (" + cols + ")" +
                                           (identity_always ? " OVERRIDING SYSTEM VALUE" : "") +
                                           " SELECT " + cols + " FROM " + staging_name));
        set_slot_progress(slot, counts.inserted);
    } else {
        // Rows are applied in the order they were staged: that decides which of a key's rows
        // wins, and numbers the rejects. A staging table written by one session is read in
        // that order by a plain scan, unless a synchronized scan starts it mid-table.
        if (!ordered)
            spi::exec("SELECT pg_catalog.set_config('synchronize_seqscans', 'off', true)");
        std::string order;
        if (ordered)
            pg_call([&] {
                order = format(" ORDER BY %s, %s", quote_identifier(k_order_chunk),
                               quote_identifier(k_order_row));
            });
        // With exception mode 'ignore' a staged value its column's type refuses (a domain's
        // CHECK: staging has the base type) is a rejected row too.
        CursorSource src(job.staging, names, dest, spec.columns, spec.ignore_errors, order,
                         spec.ignore_errors ? &on_reject : nullptr);
        counts = run_merge(spec, src, on_reject);
        counts.rejected += src.rejected();
        src.close();
    }
    pg_call([&] {
        if (dest != target)
            table_close(dest, NoLock);
        table_close(target, NoLock);
    });
}

void forget_rejects(int64_t id) {
    spi::exec("DELETE FROM ingest.async_load_reject WHERE job_id = $1", {spi::int8_arg(id)});
}

void insert_reject(int64_t id, const RejectedRow& r) {
    spi::exec(
        "INSERT INTO ingest.async_load_reject (job_id, row_number, raw_row, sqlstate, "
        "message) VALUES ($1, $2, $3, $4, $5)",
        {spi::int8_arg(id), spi::int8_arg(r.line_number),
         r.raw_line.empty() ? spi::text_arg(std::optional<std::string>())
                            : spi::text_arg(r.raw_line),
         spi::text_arg(r.sqlstate), spi::text_arg(r.message)});
}

// ingest.job_timeout. At the timeout the apply is cancelled (57014, which ends it unless the
// job's own code catches it: a PL/pgSQL EXCEPTION WHEN query_canceled); at twice the timeout
// the worker is ended (FATAL, which nothing catches), and its exit records the job for the
// next worker in the database to fail (recover_orphans). Handlers run in signal context.
int g_timeout_slot = -1;
volatile sig_atomic_t g_timeout_fired = 0;
TimeoutId g_cancel_timeout = MAX_TIMEOUTS;
TimeoutId g_end_timeout = MAX_TIMEOUTS;

extern "C" {
static void job_timeout_cancel(void) {
    g_timeout_fired = 1;
    kill(MyProcPid, SIGINT);  // as StatementTimeoutHandler does: a query cancel
}

static void job_timeout_end(void) {
    if (g_timeout_slot >= 0)
        mark_slot_timed_out(g_timeout_slot);
    // As die() does: a FATAL at the next CHECK_FOR_INTERRUPTS.
    ProcDiePending = true;
    InterruptPending = true;
    SetLatch(MyLatch);
}
}

void arm_job_timeout(int slot, int ms) {
    g_timeout_fired = 0;
    if (ms <= 0)
        return;
    g_timeout_slot = slot;
    pg_call([&] {
        if (g_cancel_timeout == MAX_TIMEOUTS) {
            g_cancel_timeout = RegisterTimeout(USER_TIMEOUT, job_timeout_cancel);
            g_end_timeout = RegisterTimeout(USER_TIMEOUT, job_timeout_end);
        }
        EnableTimeoutParams t[2];
        t[0].id = g_cancel_timeout;
        t[0].type = TMPARAM_AFTER;
        t[0].delay_ms = ms;
        t[0].fin_time = 0;
        t[1] = t[0];
        t[1].id = g_end_timeout;
        t[1].delay_ms = ms > INT_MAX / 2 ? INT_MAX : 2 * ms;
        enable_timeouts(t, 2);
    });
}

void disarm_job_timeout() {
    if (g_cancel_timeout == MAX_TIMEOUTS)
        return;
    pg_call([] {
        DisableTimeoutParams t[2];
        t[0].id = g_cancel_timeout;
        t[0].keep_indicator = false;
        t[1].id = g_end_timeout;
        t[1].keep_indicator = false;
        disable_timeouts(t, 2);
    });
}

// Rejects kept in memory for a job with a reject_limit, to be recorded with its failure when
// it goes past the limit (the job's transaction, which recorded them as they came, rolls back).
constexpr size_t k_rejects_kept_over_limit = 10000;

// Attempts of a job whose transaction a deadlock or serialization failure rolled back, before
// it fails with that error.
constexpr int k_rollback_attempts = 5;

}  // namespace

void run_job(int slot, int64_t id) {
    const Oid service = pg_call([] { return GetUserId(); });
    MergeCounts counts;
    // Rejects go to ingest.async_load_reject as they come, so that memory stays bounded however
    // many rows a job rejects; past reject_limit the job stops at once.
    std::vector<RejectedRow> first_rejects;
    int64_t rejected = 0;
    bool over_limit = false;
    int requeued_after = 0;  // the attempt a deadlock rolled back, when the job was queued again
    // ingest.job_timeout bounds the apply only: recording the outcome is never cut short.
    const int timeout_ms = guc::job_timeout;
    std::optional<Failure> failure = try_transaction([&] {
        spi::Connection c;
        const std::optional<Job> job = load_job(id);
        if (!job || job->state != "LOADING")
            return;          // removed or changed under us: nothing to do
        forget_rejects(id);  // an earlier attempt's
        arm_job_timeout(slot, timeout_ms);
        apply(*job, slot, counts, [&](RejectedRow&& r) {
            ++rejected;
            if (job->reject_limit) {
                if (first_rejects.size() < k_rejects_kept_over_limit)
                    first_rejects.push_back(r);
                if (rejected > *job->reject_limit) {
                    over_limit = true;
                    raise(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                          format("async load job %lld rejected %lld rows, more than its "
                                 "reject_limit %lld; nothing was applied",
                                 (long long)id, (long long)rejected, (long long)*job->reject_limit),
                          "The job stopped at the first row past the limit.");
                }
            }
            // Called during the apply, as the owner: the reject table is written with the
            // worker's own identity (the superuser background workers connect as; the job's
            // owner may only read it), on the worker's search_path.
            UserScope as_service(service);
            GucScope service_path(k_service_search_path);
            insert_reject(id, r);
        });
        disarm_job_timeout();
        spi::exec(
            "UPDATE ingest.async_load_job SET state = 'FINISH', finished_at = "
            "pg_catalog.clock_timestamp(), "
            "worker_pid = NULL, rows_inserted = $2, rows_updated = $3, rows_skipped = $4, "
            "rows_rejected = $5, staging = CASE WHEN keep_staging THEN staging END "
            "WHERE id = $1",
            {spi::int8_arg(id), spi::int8_arg(counts.inserted), spi::int8_arg(counts.updated),
             spi::int8_arg(counts.skipped), spi::int8_arg(counts.rejected)});
        if (!job->keep_staging)
            drop_staging(id);
        notify_state(id, "FINISH");
    });
    if (!failure) {
        wake_waiters(id);
        return;
    }

    disarm_job_timeout();
    const bool canceled = cancel_requested(slot, id);
    if (!canceled && g_timeout_fired && failure->sqlerrcode == ERRCODE_QUERY_CANCELED)
        failure = failure_of(ERRCODE_QUERY_CANCELED,
                             format("async load job %lld was still applying after "
                                    "ingest.job_timeout (%d ms); nothing was applied",
                                    static_cast<long long>(id), timeout_ms)
                                 .c_str(),
                             nullptr);
    // The outcome is decided; a cancel signal, pending or still to come, must not abort
    // recording it (the job would stay LOADING and run again).
    QueryCancelPending = false;
    // Held off by hand: an error in the recording resets the holdoff count (errfinish), so a
    // RESUME afterwards would underflow it.
    const uint32 cancel_holdoff = QueryCancelHoldoffCount;
    QueryCancelHoldoffCount = cancel_holdoff + 1;
    const std::optional<Failure> f2 = try_transaction([&] {
        spi::Connection c;
        const std::optional<Job> job = load_job(id, true);
        if (!job || job->state != "LOADING")
            return;
        // A deadlock or serialization failure chose this job's transaction as its victim
        // (appends with exception mode 'ignore' running side by side wait on each other's new
        // keys, say): it rolled back whole and is queued again, in its place, up to
        // k_rollback_attempts attempts; the job it met has gone on meanwhile.
        if (!canceled && !over_limit &&
            (failure->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
             failure->sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE) &&
            job->attempts < k_rollback_attempts) {
            spi::exec(
                "UPDATE ingest.async_load_job SET state = 'READY', worker_pid = NULL WHERE id = "
                "$1",
                {spi::int8_arg(id)});
            const std::string why = failure->message;
            pg_call([&] {
                ereport(LOG, (errmsg("pg_ingest: attempt %d of async load job %lld was rolled "
                                     "back (SQLSTATE %s: %s); the job is queued again",
                                     job->attempts, static_cast<long long>(id),
                                     unpack_sql_state(failure->sqlerrcode), why.c_str())));
            });
            notify_state(id, "READY");
            requeued_after = job->attempts;
            return;
        }
        const char* state = canceled ? "CANCEL" : "FAIL";
        if (over_limit) {
            forget_rejects(id);
            for (const RejectedRow& r : first_rejects)
                insert_reject(id, r);
        }
        spi::exec(
            "UPDATE ingest.async_load_job SET state = $2::ingest.job_state, finished_at = "
            "pg_catalog.clock_timestamp(), worker_pid = NULL, error_sqlstate = $3, error_message = "
            "$4, "
            "rows_inserted = 0, rows_updated = 0, rows_skipped = 0, rows_rejected = $5 "
            "WHERE id = $1",
            {spi::int8_arg(id), spi::text_arg(std::string(state)),
             canceled ? spi::text_arg(std::optional<std::string>())
                      : spi::text_arg(std::string(unpack_sql_state(failure->sqlerrcode))),
             spi::text_arg(canceled ? std::string("canceled by request") : failure->message),
             spi::int8_arg(over_limit ? rejected : 0)});
        if (canceled && !job->keep_staging) {
            drop_staging(id);
            spi::exec("UPDATE ingest.async_load_job SET staging = NULL WHERE id = $1",
                      {spi::int8_arg(id)});
        }
        notify_state(id, state);
    });
    QueryCancelHoldoffCount = cancel_holdoff;
    if (f2)
        raise(f2->sqlerrcode, f2->message);
    // Queued again after a deadlock: this worker claims it again, but only after a pause, so
    // that the transaction it met (now unblocked) takes its locks first; claimed at once, the
    // job could take them back first and deadlock again.
    if (requeued_after > 0)
        pg_call([&] {
            (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                            200L * requeued_after, PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();
        });
    wake_waiters(id);
}

}  // namespace pg_ingest::jobs
