// An async load worker in one database: recovery of orphaned jobs, retention, then claim and
// apply READY jobs until none is left (see job_worker.hpp).
#include "job_worker.hpp"

#include "guc.hpp"
#include "job_catalog.hpp"
#include "job_shmem.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
}

#include <cstring>

namespace pg_ingest::jobs {

namespace {

// Serialises claims and recovery within a database ("pgingest" in ASCII).
constexpr int64_t claim_lock_key = 0x7067696e67657374LL;

// READY jobs whose turn it is: jobs on one target apply in queue order, except that plain
// appends (no conflict mode, no overwrite) may run beside each other.
const char* const eligible_sql =
    "SELECT j.id FROM ingest.async_load_job j WHERE j.state = 'READY' AND NOT EXISTS ("
    " SELECT FROM ingest.async_load_job p WHERE p.target::oid = j.target::oid AND p.id <> j.id"
    " AND p.state IN ('READY', 'LOADING')"
    " AND (p.state = 'LOADING' OR p.queue_position < j.queue_position)"
    " AND (p.conflict_mode <> 'none' OR j.conflict_mode <> 'none' OR p.overwrite <> 'none'"
    "      OR j.overwrite <> 'none'))"
    " ORDER BY j.queue_position";

void lock_claims() {
    spi::exec("SELECT pg_catalog.pg_advisory_xact_lock($1)", {spi::int8_arg(claim_lock_key)});
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
    return installed;
}

// Jobs in LOADING that no live worker runs (their worker died, or the server crashed) go
// back to READY in their old queue position; their partial work was rolled back.
void recover_orphans() {
    check_failure(try_transaction([&] {
        spi::Connection c;
        lock_claims();
        std::string running = "{";
        for (int64_t id : running_job_ids())
            running += (running.size() > 1 ? "," : "") + std::to_string(id);
        running += "}";
        const uint64 n = spi::exec(
            "UPDATE ingest.async_load_job SET state = 'READY', worker_pid = NULL "
            "WHERE state = 'LOADING' AND id <> ALL($1::bigint[]) RETURNING id",
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
}

void apply_retention() {
    check_failure(try_transaction([&] {
        spi::Connection c;
        const uint64 n = spi::exec(
            "DELETE FROM ingest.async_load_job WHERE state IN ('FINISH', 'FAIL', 'CANCEL') "
            "AND finished_at < pg_catalog.now() - $1 * interval '1 second' RETURNING id",
            {spi::int8_arg(guc::job_retention)});
        std::vector<int64_t> ids;
        for (uint64 i = 0; i < n; i++)
            ids.push_back(spi::get_int64(i, 1));
        for (int64_t id : ids)
            drop_staging(id);
    }));
}

std::optional<int64_t> claim(int slot) {
    std::optional<int64_t> claimed;
    bool more = false;
    const std::optional<Failure> f = try_transaction([&] {
        spi::Connection c;
        lock_claims();
        if (spi::exec(std::string(eligible_sql) + " LIMIT 1 FOR UPDATE OF j") == 0)
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
        more = spi::exec(std::string(eligible_sql) + " LIMIT 1") > 0;
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

void run_worker(int slot) {
    pg_call([] {
        pqsignal(SIGHUP, SignalHandlerForConfigReload);
        pqsignal(SIGTERM, die);
        BackgroundWorkerUnblockSignals();
    });
    SlotTicket ticket{slot, 0};
    memcpy(&ticket.generation, MyBgworkerEntry->bgw_extra, sizeof(ticket.generation));
    if (!worker_attach(ticket))
        return;  // the launcher gave up on this start and the slot went to another worker
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
    recover_orphans();
    apply_retention();
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
        const std::optional<int64_t> id = claim(slot);
        if (!id)
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
