// An async load worker in one database: recovery of orphaned jobs, retention, then claim and
// apply READY jobs until none is left (see job_worker.hpp).
#include "job_worker.hpp"

#include "guc.hpp"
#include "job_catalog.hpp"
#include "job_shmem.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
}

#include <cstring>

namespace pg_ingest::jobs {

namespace {

// Serialises claims and recovery within a database: a transaction-scoped lock on a
// sub-object of the pg_ingest extension that no SQL command names (extensions have no
// sub-objects; ALTER/DROP/COMMENT lock sub-object 0), so no role can take and hold it to stall
// the workers, as it could an advisory lock.
constexpr int32 claim_lock_subid = 0x7067;

// READY jobs of this installation whose turn it is: jobs on one target apply in queue order,
// except that plain appends (no conflict mode, no overwrite; exception mode 'strict', or a
// target without a unique index) may run beside each other. Jobs
// restored from a dump are never claimed, but keep their place in their target's queue: a
// later job on the target waits for them to be resumed (or canceled).
// "One target" is one partition tree branch: a job writes its overwrite partition, else its
// target, and the partitions below; two jobs whose relations are the same or one is a
// partition (at any depth) of the other apply in queue order. The partition ancestors are
// looked up only for the few unfinished jobs the other conditions leave.
std::string eligible_sql() {
    const std::string j_rel = "coalesce(j.overwrite_partition, j.target)::oid";
    const std::string p_rel = "coalesce(p.overwrite_partition, p.target)::oid";
    auto ancestors = [](const std::string& rel) {
        return "ARRAY(SELECT a::oid FROM pg_catalog.pg_partition_ancestors(" + rel + ") a)";
    };
    const std::string overlap = "(" + p_rel + " = " + j_rel + " OR " + p_rel + " = ANY (" +
                                ancestors(j_rel) + ") OR " + j_rel + " = ANY (" + ancestors(p_rel) +
                                "))";
    return "SELECT j.id FROM ingest.async_load_job j WHERE j.state = 'READY' AND " +
           of_this_installation("j") +
           " AND NOT EXISTS ("
           " SELECT FROM ingest.async_load_job p WHERE " +
           overlap +
           " AND p.id <> j.id AND p.state IN ('READY', 'LOADING')"
           " AND (p.state = 'LOADING' OR p.queue_position < j.queue_position)"
           " AND (p.conflict_mode <> 'none' OR j.conflict_mode <> 'none' OR p.overwrite <> 'none'"
           "      OR j.overwrite <> 'none'"
           // Appends with exception mode 'ignore' into a table with a unique index or an
           // exclusion constraint (on it or a partition): side by side they would wait on each
           // other's new keys, in no common order, and deadlock.
           "      OR ((p.exception_mode = 'ignore' OR j.exception_mode = 'ignore') AND EXISTS ("
           "          SELECT FROM pg_catalog.pg_index x WHERE (x.indisunique OR x.indisexclusion)"
           // (pg_partition_tree() lists nothing for a table that is not in a partition tree)
           "          AND (x.indrelid IN (" +
           j_rel + ", " + p_rel +
           ") OR x.indrelid IN (SELECT relid FROM pg_catalog.pg_partition_tree(" + j_rel +
           ") UNION ALL SELECT relid FROM pg_catalog.pg_partition_tree(" + p_rel +
           ")))))))"
           " ORDER BY j.queue_position";
}

void lock_claims() {
    pg_call([] {
        LockDatabaseObject(ExtensionRelationId, get_extension_oid("pg_ingest", false),
                           claim_lock_subid, ExclusiveLock);
    });
}

void check_failure(const std::optional<Failure>& f) {
    if (f)
        raise(f->sqlerrcode, f->message);
}

bool extension_installed() {
    bool installed = false;
    check_failure(try_transaction([&] {
        installed = pg_call([] {
            if (!OidIsValid(get_extension_oid("pg_ingest", true)))
                return false;
            Oid nsp = get_namespace_oid("ingest", true);
            return OidIsValid(nsp) && OidIsValid(get_relname_relid("async_load_job", nsp));
        });
    }));
    if (!installed)
        return false;
    // A job catalog the workers cannot trust (see service_user()) is left alone: the job
    // functions refuse to queue jobs there too.
    if (const std::optional<Failure> f = try_transaction([] { (void)service_user(); })) {
        check_failure(try_transaction([&] {  // for the database's name
            pg_call([&] {
                ereport(WARNING,
                        (errcode(f->sqlerrcode),
                         errmsg("pg_ingest: async load jobs of database \"%s\" are not run: %s",
                                get_database_name(MyDatabaseId), f->message.c_str())));
            });
        }));
        return false;
    }
    return true;
}

// Jobs of this installation in LOADING that no live worker runs (their worker died, or the
// server crashed) go back to READY in their old queue position; their partial work was rolled
// back. A LOADING job restored from a dump waits for ingest.resume_restored_jobs().
void recover_orphans() {
    // Jobs whose worker was ended at twice ingest.job_timeout (job_apply.cpp) are not orphans
    // to run again: they failed. Taken from shared memory once; lost if this pass fails (then
    // queued again, as after a crash).
    const std::vector<int64_t> timed_out = take_timed_out_jobs(MyDatabaseId);
    std::vector<int64_t> failed;
    check_failure(try_transaction([&] {
        spi::Connection c;
        lock_claims();
        if (!timed_out.empty()) {
            std::string list = "{";
            for (int64_t id : timed_out)
                list += (list.size() > 1 ? "," : "") + std::to_string(id);
            list += "}";
            const uint64 n = spi::exec(
                "UPDATE ingest.async_load_job SET state = 'FAIL', finished_at = "
                "pg_catalog.clock_timestamp(), worker_pid = NULL, error_sqlstate = '57014', "
                "error_message = pg_catalog.format('async load job %s was still applying at "
                "twice ingest.job_timeout (%s ms): its own code caught the cancel at the "
                "timeout, so its worker was ended; nothing was applied', id, $2), "
                "rows_inserted = 0, rows_updated = 0, rows_skipped = 0, rows_rejected = 0 "
                "WHERE id = ANY($1::bigint[]) AND state = 'LOADING' RETURNING id",
                {spi::text_arg(list), spi::text_arg(std::to_string(guc::job_timeout))});
            for (uint64 i = 0; i < n; i++)
                failed.push_back(spi::get_int64(i, 1));
            for (int64_t id : failed)
                notify_state(id, "FAIL");
        }
        std::string running = "{";
        for (int64_t id : running_job_ids())
            running += (running.size() > 1 ? "," : "") + std::to_string(id);
        running += "}";
        // A row locked by a user's open transaction is skipped (recovered at a later pass),
        // not waited for under the claim lock.
        const uint64 n = spi::exec(
            "UPDATE ingest.async_load_job j SET state = 'READY', worker_pid = NULL "
            "WHERE j.id IN (SELECT o.id FROM ingest.async_load_job o WHERE o.state = 'LOADING' "
            "AND o.id <> ALL($1::bigint[]) AND " +
                of_this_installation("o") + " FOR UPDATE SKIP LOCKED) RETURNING j.id",
            {spi::text_arg(running)});
        std::vector<int64_t> ids;
        for (uint64 i = 0; i < n; i++)
            ids.push_back(spi::get_int64(i, 1));
        for (int64_t id : ids) {
            notify_state(id, "READY");
            pg_call([&] {
                ereport(LOG, (errcode(ERRCODE_WARNING),
                              errmsg("pg_ingest: async load job %lld was interrupted while "
                                     "loading and is queued again",
                                     (long long)id)));
            });
        }
    }));
    for (int64_t id : failed)
        wake_waiters(id);
}

// Ended jobs past ingest.job_retention go, with their rejects and staging tables: this
// installation's only (a restore may be loading a restored job's rejects or staging rows).
void apply_retention() {
    check_failure(try_transaction([&] {
        spi::Connection c;
        // Rows locked by a user's open transaction (a retry of an old failed job) are skipped,
        // left for a later pass, not waited for: every new worker runs this.
        const uint64 n = spi::exec(
            "SELECT o.id FROM ingest.async_load_job o WHERE o.state IN ('FINISH', 'FAIL', "
            "'CANCEL') AND o.finished_at < pg_catalog.now() - $1 * interval '1 second' AND " +
                of_this_installation("o") + " FOR UPDATE SKIP LOCKED",
            {spi::int8_arg(guc::job_retention)});
        std::vector<int64_t> ids;
        for (uint64 i = 0; i < n; i++)
            ids.push_back(spi::get_int64(i, 1));
        // A staging table that cannot be dropped (another role's view depends on it) keeps its
        // job, so that a later pass drops both; the other jobs go on.
        for (int64_t id : ids)
            if (drop_staging(id))
                spi::exec("DELETE FROM ingest.async_load_job WHERE id = $1", {spi::int8_arg(id)});
    }));
}

// Jobs restored from a dump (of another installation, or dumped before 0.5.0) are left alone
// until ingest.resume_restored_jobs(); they are reported once when found, and again when they
// change.
void report_restored() {
    check_failure(try_transaction([&] {
        if (!has_installations())
            return;
        spi::Connection c;
        spi::exec(
            "SELECT count(*), count(*) FILTER (WHERE j.state IN ('READY', 'LOADING')), "
            "coalesce(min(j.id), 0), coalesce(max(j.id), 0), "
            "coalesce(sum(pg_catalog.hashtext(j.id::text || ':' || j.state::text)), 0) "
            "FROM ingest.async_load_job j WHERE NOT coalesce(" +
            of_this_installation("j") + ", false)");
        const int64_t restored = spi::get_int64(0, 1);
        const int64_t waiting = spi::get_int64(0, 2);
        uint64_t signature = 0;
        if (restored > 0)
            for (int col = 1; col <= 5; col++)
                signature = signature * 1000003u ^ static_cast<uint64_t>(spi::get_int64(0, col));
        if (!note_restored_jobs(MyDatabaseId, signature) || restored == 0)
            return;
        pg_call([&] {
            ereport(WARNING,
                    (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                     errmsg_plural("pg_ingest: database \"%s\" has %lld async load job "
                                   "restored from a dump (%lld READY or LOADING), which workers "
                                   "leave alone",
                                   "pg_ingest: database \"%s\" has %lld async load jobs "
                                   "restored from a dump (%lld of them READY or LOADING), which "
                                   "workers leave alone",
                                   static_cast<unsigned long>(restored),
                                   get_database_name(MyDatabaseId), (long long)restored,
                                   (long long)waiting),
                     errdetail("A restore writes the job table before the targets' rows, keys "
                               "and privileges and before the staging tables' rows, so restored "
                               "jobs are not applied, recovered or removed until they are "
                               "resumed."),
                     errhint("Once the restore is complete, run SELECT "
                             "ingest.resume_restored_jobs(); as the jobs' owners or a member of "
                             "ingest_admin, or cancel jobs with ingest.cancel_async_load(id).")));
        });
    }));
}

std::optional<int64_t> claim(int slot) {
    std::optional<int64_t> claimed;
    bool more = false;
    const std::optional<Failure> f = try_transaction([&] {
        spi::Connection c;
        lock_claims();
        // SKIP LOCKED: a job row that a user's open transaction locked (a cancel, a retry)
        // must not stall the claim, which holds the claim lock every worker of the cluster
        // waits for; it still holds back the jobs after it on its target (NOT EXISTS above).
        if (spi::exec(eligible_sql() + " LIMIT 1 FOR UPDATE OF j SKIP LOCKED") == 0)
            return;
        const int64_t id = spi::get_int64(0, 1);
        // Before commit: recovery in another worker must see that this job has a runner.
        set_slot_job(slot, id);
        spi::exec(
            "UPDATE ingest.async_load_job SET state = 'LOADING', started_at = "
            "pg_catalog.clock_timestamp(), "
            "worker_pid = $2, attempts = attempts + 1 WHERE id = $1",
            {spi::int8_arg(id), spi::Arg{INT4OID, Int32GetDatum(MyProcPid)}});
        notify_state(id, "LOADING");
        more = spi::exec(eligible_sql() + " LIMIT 1") > 0;
        claimed = id;
    });
    if (f) {
        set_slot_job(slot, 0);
        check_failure(f);
    }
    if (more)
        request_worker(MyDatabaseId);  // another job can run beside this one
    return claimed;
}

// Runs one of the worker's own steps (each its own transaction); false when it failed because
// pg_ingest was dropped meanwhile (DROP EXTENSION, pg_restore --clean): no error of the
// worker's, which then ends quietly.
template <typename F>
bool step(Oid dboid, F&& f) {
    try {
        f();
        return true;
    } catch (const ServerError&) {
        if (extension_installed())
            throw;
        set_has_extension(dboid, false);
        return false;
    }
}

void run_worker(int slot) {
    pg_call([] {
        pqsignal(SIGHUP, SignalHandlerForConfigReload);
        pqsignal(SIGTERM, die);
        BackgroundWorkerUnblockSignals();
    });
    SlotTicket ticket{slot, 0};
    memcpy(&ticket.generation, MyBgworkerEntry->bgw_extra, sizeof(ticket.generation));
    if (!worker_attach(ticket))
        return;  // the launcher gave up on this start (or died, and its next run freed the slot)
    const Oid dboid = slot_database(slot);
    pg_call([&] {
        BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
        pgstat_report_appname("pg_ingest worker");
    });
    // The worker's own statements run as the extension owner: on a search_path nobody else can
    // put an operator or function in (ALTER DATABASE ... SET search_path included).
    check_failure(try_transaction([] {
        pg_call([] {
            (void)set_config_option("search_path", k_service_search_path, PGC_USERSET,
                                    PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);
        });
    }));
    const bool installed = extension_installed();
    set_has_extension(dboid, installed);
    if (!installed)
        return;
    if (!step(dboid, recover_orphans) || !step(dboid, apply_retention) ||
        !step(dboid, report_restored))
        return;
    for (;;) {
        pg_call([] {
            // A cancel aimed at the previous job must neither hit the next one nor end the
            // worker here.
            QueryCancelPending = false;
            CHECK_FOR_INTERRUPTS();
            if (ConfigReloadPending) {
                ConfigReloadPending = false;
                ProcessConfigFile(PGC_SIGHUP);
            }
        });
        std::optional<int64_t> id;
        if (!step(dboid, [&] { id = claim(slot); }) || !id)
            break;
        pg_call([&] {
            pgstat_report_activity(STATE_RUNNING,
                                   psprintf("applying async load job %lld", (long long)*id));
        });
        run_job(slot, *id);
        set_slot_job(slot, 0);
        pg_call([] { pgstat_report_activity(STATE_IDLE, NULL); });
    }
}

}  // namespace

}  // namespace pg_ingest::jobs

extern "C" void pg_ingest_worker_main(Datum arg) {
    pg_ingest::guard([&] { pg_ingest::jobs::run_worker(DatumGetInt32(arg)); });
}
